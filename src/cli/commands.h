// The `braid` subcommands. Each Add* function registers one subcommand on the
// CLI11 app; the callback runs the command and sets `*exit_code`.
#pragma once

#include <CLI/CLI.hpp>
#include <csignal>
#include <filesystem>
#include <functional>
#include <string>

#include "core/status.h"
#include "frontends/tls_files.h"

namespace braid::cli {

void AddModelsCommand(CLI::App& app, int* exit_code);
void AddInferCommand(CLI::App& app, int* exit_code);
void AddServeCommand(CLI::App& app, int* exit_code);
void AddRunCommand(CLI::App& app, int* exit_code);
void AddBenchCommand(CLI::App& app, int* exit_code);
void AddRouterCommand(CLI::App& app, int* exit_code);
void AddAlignCommand(CLI::App& app, int* exit_code);
// `braid quantize` and `braid models quantize`: after AddModelsCommand.
void AddQuantizeCommands(CLI::App& app, int* exit_code);

// `flag` when given, else the embedded default model repository: `models/`
// beside the braid binary (where the build writes it), else the path
// compiled in at build time.
std::filesystem::path ModelRepositoryOrDefault(const std::string& flag);
// `flag` when given, else the embedded default workflows: `workflows/`
// beside the braid binary, else the path compiled in at build time.
std::filesystem::path WorkflowsOrDefault(const std::string& flag);

// --tls-cert, --tls-key and --tls-client-ca for a command's listening
// ports (`ports`, as in "HTTP and gRPC"). Returns --tls-cert, for flags
// that need it.
CLI::Option* AddTlsFlags(CLI::App& command, TlsFiles& tls, const std::string& ports);

// Blocks SIGTERM, SIGINT and SIGHUP in every thread started after it (call
// it first); returns the set for WaitForStop.
sigset_t BlockStopSignals();
// Waits for SIGTERM or SIGINT and returns it. Each SIGHUP meanwhile calls
// `reload` when `tls` has a certificate (a renewed one goes live without
// dropping a connection; one that does not load leaves the old in place).
int WaitForStop(const sigset_t& signals, const TlsFiles& tls,
                const std::function<Status()>& reload);

}  // namespace braid::cli
