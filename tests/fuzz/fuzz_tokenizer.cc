// The CLIP BPE tokenizer (the clip-text model's tokenizer.json) on
// arbitrary text, and tokenizer.json parsing itself on the same bytes.
#include <cstdlib>

#include "preprocess/tokenizer.h"

namespace {
braid::TokenizerPtr clip;
}

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  const char* models = std::getenv("BRAID_MODELS");
  auto loaded = braid::LoadTokenizer(std::string(models ? models : BRAID_TEST_MODELS) +
                                     "/clip-text/1/tokenizer.json");
  if (loaded.ok()) clip = std::move(loaded).value();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  if (clip) (void)clip->Encode(text);
  (void)braid::ParseTokenizer(text);
  return 0;
}
