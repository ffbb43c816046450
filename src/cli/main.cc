// braid: a multimodal inference server and workflow runtime.
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>

#include "cli/commands.h"
#include "core/compute_budget.h"

int main(int argc, char** argv) {
  braid::KeepEnginesSingleThreaded(argv);
  // Logs go to stderr, so stdout carries only results (and later the ready line).
  spdlog::set_default_logger(spdlog::stderr_color_mt("braid"));
  spdlog::set_level(spdlog::level::warn);

  CLI::App app{
      "braid: multimodal inference server and workflow runtime.\n"
      "Serves ONNX Runtime, OCR and speech models with dynamic batching; runs multimodal "
      "workflows as parallel DAGs."};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string(BRAID_VERSION));
  bool verbose = false;
  app.add_flag("-v,--verbose", verbose, "Log progress (info level) to stderr");
  app.parse_complete_callback([&] {
    if (verbose) spdlog::set_level(spdlog::level::info);
  });
  // Options may come from a TOML file, each command's under its own table
  // ([serve], [router], ...); the command line wins. CLI11 reads config files
  // at the top level only, so the commands pass --config (and -v) up to it.
  app.set_config("--config", "",
                 "Read options from a TOML file, each command's under its table: "
                 "[serve] http-port = 9000; the command line wins");
  app.allow_config_extras(CLI::config_extras_mode::error);
  app.fallthrough();

  int exit_code = 0;
  braid::cli::AddModelsCommand(app, &exit_code);
  braid::cli::AddQuantizeCommands(app, &exit_code);
  braid::cli::AddInferCommand(app, &exit_code);
  braid::cli::AddServeCommand(app, &exit_code);
  braid::cli::AddRunCommand(app, &exit_code);
  braid::cli::AddBenchCommand(app, &exit_code);
  braid::cli::AddRouterCommand(app, &exit_code);
  braid::cli::AddAlignCommand(app, &exit_code);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  return exit_code;
}
