// `braid run WORKFLOW --image F --audio F --text "..."`: one workflow run
// without a server; every event is printed (one JSON line each) as it
// happens, as the streaming API would send it.
#include <fmt/core.h>
#include <spdlog/spdlog.h>

#include <condition_variable>
#include <mutex>
#include <thread>

#include "backends/backends.h"
#include "cli/commands.h"
#include "core/compute_budget.h"
#include "core/file_util.h"
#include "frontends/workflow/workflow_api.h"
#include "serving/inference_service.h"

namespace braid::cli {
namespace {

constexpr std::size_t kMaxMediaBytes = std::size_t{256} << 20;

struct RunCliOptions {
  std::string workflow;
  std::string image, audio, text;
  std::string repository, workflows;
  bool serial = false;
};

int RunWorkflow(const RunCliOptions& options) {
  BackendRegistry backends;
  RegisterBuiltinBackends(backends);
  ModelRepository repository(ModelRepositoryOrDefault(options.repository), backends);
  SchedulerOptions scheduler_options;
  scheduler_options.budget = &ProcessComputeBudget();
  InferenceService service(repository, SteadyClock(), scheduler_options);
  // Only the workflow's models load, as its parse asks about them.
  ModelCatalog loaded = MakeModelCatalog(service);
  ModelCatalog catalog = [&](const std::string& model, const std::vector<std::string>& inputs) {
    if (!service.GetModel(model).ok()) (void)service.Load(model);
    return loaded(model, inputs);
  };
  WorkflowRegistry registry;
  if (Status status =
          registry.Load(WorkflowsOrDefault(options.workflows), catalog, options.workflow);
      !status.ok()) {
    fmt::print(stderr, "braid run: {}\n", status.message());
    return 1;
  }
  auto workflow = registry.Get(options.workflow);
  if (!workflow.ok()) {
    fmt::print(stderr, "braid run: {}\n", workflow.status().message());
    return 1;
  }
  NamedTensors inputs;
  for (const auto& [name, source, is_file] : {std::tuple{"image", options.image, true},
                                              {"audio", options.audio, true},
                                              {"text", options.text, false}}) {
    if (source.empty()) continue;
    if (!(*workflow)->FindInput(name)) {
      fmt::print(stderr, "braid run: workflow '{}' takes no {} input\n", options.workflow, name);
      return 1;
    }
    std::string bytes = source;
    if (is_file) {
      auto file = ReadFile(source, kMaxMediaBytes);
      if (!file.ok()) {
        fmt::print(stderr, "braid run: {}\n", file.status().message());
        return 1;
      }
      bytes = std::move(file).value();
    }
    inputs[name] = *Tensor::FromStrings({bytes}, {1});
  }
  for (const auto& input : (*workflow)->inputs) {
    if (!input.optional && !inputs.count(input.name)) {
      fmt::print(stderr, "braid run: workflow '{}' needs --{}\n", options.workflow, input.name);
      return 1;
    }
  }
  ServiceModelRunner runner(service);
  ThreadPool pool(std::max(2u, std::thread::hardware_concurrency()));
  WorkflowExecutor executor(runner, pool, SteadyClock());
  std::mutex mutex;
  std::condition_variable finished;
  bool done = false;
  int exit_code = 0;
  RunOptions run_options;
  run_options.serial = options.serial;
  WorkflowEventWriter writer(*workflow, "local");
  executor.Start(*workflow, std::move(inputs), run_options, [&](const WorkflowEvent& event) {
    fmt::print("{}\n", writer.Json(event));
    std::fflush(stdout);
    if (event.ends_run()) {
      std::lock_guard lock(mutex);
      done = true;
      exit_code = event.type == WorkflowEvent::Type::kError ? 1 : 0;
      finished.notify_all();
    }
  });
  std::unique_lock lock(mutex);
  finished.wait(lock, [&] { return done; });
  return exit_code;
}

}  // namespace

void AddRunCommand(CLI::App& app, int* exit_code) {
  auto options = std::make_shared<RunCliOptions>();
  auto* run = app.add_subcommand(
      "run",
      "Run one workflow without a server and print its events (JSON lines) as they happen.\n"
      "Example: braid run speech-report --audio note.wav --image slide.png");
  run->add_option("WORKFLOW", options->workflow, "Workflow name (see workflows/)")->required();
  run->add_option("--image", options->image, "Image file (JPEG, PNG, WebP, BMP)");
  run->add_option("--audio", options->audio, "Audio file (WAV, FLAC, OGG, MP3)");
  run->add_option("--text", options->text, "Text input");
  run->add_option("-m,--model-repository", options->repository,
                  "Model repository (default: the embedded one)");
  run->add_option("--workflows", options->workflows, "Workflow folder (default: the embedded one)");
  run->add_flag("--serial", options->serial, "Run one node at a time (the benchmark's baseline)");
  run->callback([options, exit_code] { *exit_code = RunWorkflow(*options); });
}

}  // namespace braid::cli
