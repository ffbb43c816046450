// For benchmarks and tools run from the command line: a failed step ends
// the program with the step's status, prefixed by the program's name.
#pragma once

#include <errno.h>  // program_invocation_short_name (GNU)
#include <fmt/core.h>

#include <cstdlib>
#include <utility>

#include "core/status.h"

namespace braid::testing {

[[noreturn]] inline void Fail(const Status& status) {
  fmt::print(stderr, "{}: {}\n", program_invocation_short_name, status.ToString());
  std::exit(1);
}

// The value of `result`, or the end of the program.
template <typename T>
T Check(Result<T> result) {
  if (!result.ok()) Fail(result.status());
  return std::move(*result);
}

}  // namespace braid::testing
