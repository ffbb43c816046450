// bench_workflows: what running a workflow as a parallel DAG buys, in
// process (no HTTP). For speech-report and image-text-match: one run in
// parallel vs --serial mode, against the slowest branch alone (the critical
// path), the time to the first node_finished event, and throughput of 16
// concurrent runs against the work bound: 1 / Σ(1 / each branch's own
// throughput at concurrency 16), what the machine could do if the branches
// shared it perfectly. All measured in the same run. --per-model-pools
// measures the same with each model on its own spinning thread pool and no
// compute budget (braid before the budget) for a before/after. Beside them,
// the floor the cores put under one parallel run: the CPU time its
// branches took alone, spread over every core of the budget.
#include <fmt/core.h>
#include <sys/resource.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <thread>

#include "backends/backends.h"
#include "backends/onnxruntime/onnxruntime_backend.h"
#include "core/compute_budget.h"
#include "core/file_util.h"
#include "frontends/workflow/workflow_api.h"
#include "serving/inference_service.h"

namespace braid {
namespace {

using Clock = std::chrono::steady_clock;

struct Timing {
  double total_ms = 0;
  double first_node_ms = 0;
};

// Runs `workflow` once and waits; returns the wall time and the time to the
// first node_finished.
Timing RunOnce(WorkflowExecutor& executor, const WorkflowPtr& workflow, const NamedTensors& inputs,
               bool serial) {
  std::mutex mutex;
  std::condition_variable done_cv;
  bool done = false;
  Timing timing;
  const auto start = Clock::now();
  RunOptions options;
  options.serial = serial;
  executor.Start(workflow, inputs, options, [&](const WorkflowEvent& event) {
    const double ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
    std::lock_guard lock(mutex);
    if (event.type == WorkflowEvent::Type::kNodeFinished && timing.first_node_ms == 0 &&
        event.status == "succeeded") {
      timing.first_node_ms = ms;
    }
    if (event.type == WorkflowEvent::Type::kWorkflowFinished ||
        event.type == WorkflowEvent::Type::kError) {
      if (event.type == WorkflowEvent::Type::kError)
        fmt::print(stderr, "run failed: {}\n", event.text);
      timing.total_ms = ms;
      done = true;
      done_cv.notify_all();
    }
  });
  std::unique_lock lock(mutex);
  done_cv.wait(lock, [&] { return done; });
  return timing;
}

double Median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

// The process's CPU time so far (user and system, every thread), in ms.
double CpuMs() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  auto ms = [](const timeval& t) { return t.tv_sec * 1e3 + t.tv_usec / 1e3; };
  return ms(usage.ru_utime) + ms(usage.ru_stime);
}

// Medians of `runs` runs after a warm-up; `cpu_ms`, when given, gets the
// mean CPU time per run.
Timing MedianRun(WorkflowExecutor& executor, const WorkflowPtr& workflow,
                 const NamedTensors& inputs, bool serial, int runs, double* cpu_ms = nullptr) {
  RunOnce(executor, workflow, inputs, serial);  // warm-up
  std::vector<double> totals, firsts;
  const double cpu_before = CpuMs();
  for (int i = 0; i < runs; ++i) {
    Timing t = RunOnce(executor, workflow, inputs, serial);
    totals.push_back(t.total_ms);
    firsts.push_back(t.first_node_ms);
  }
  if (cpu_ms != nullptr) *cpu_ms = (CpuMs() - cpu_before) / runs;
  return {Median(totals), Median(firsts)};
}

// Completed runs per second with `concurrency` runs always in flight.
double Throughput(WorkflowExecutor& executor, const WorkflowPtr& workflow,
                  const NamedTensors& inputs, int concurrency, double seconds) {
  std::atomic<bool> stop{false};
  std::atomic<long> completed{0};
  std::vector<std::thread> clients;
  const auto start = Clock::now();
  for (int c = 0; c < concurrency; ++c) {
    clients.emplace_back([&] {
      while (!stop) {
        RunOnce(executor, workflow, inputs, false);
        if (!stop) ++completed;
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stop = true;
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  for (auto& client : clients) client.join();
  return completed / elapsed;
}

}  // namespace
}  // namespace braid

int main(int argc, char** argv) {
  using namespace braid;
  KeepEnginesSingleThreaded(argv);
  CLI::App app{"bench_workflows: parallel DAG vs serial vs the critical path"};
  std::string repository = BRAID_DEFAULT_MODEL_REPOSITORY;
  std::string workflows_dir = BRAID_DEFAULT_WORKFLOWS;
  std::string fixtures = BRAID_FIXTURES;
  int runs = 10;
  double seconds = 5;
  app.add_option("-m,--model-repository", repository, "Model repository");
  app.add_option("--workflows", workflows_dir, "Workflow folder");
  app.add_option("--fixtures", fixtures, "Fixture folder (tests/fixtures/generate.sh output)");
  app.add_option("--runs", runs, "Timed single runs per mode");
  app.add_option("--seconds", seconds, "Seconds per throughput measurement");
  bool per_model_pools = false;
  app.add_flag("--per-model-pools", per_model_pools,
               "Each model on its own thread pool as its config sizes it, spinning, without the "
               "compute budget (the baseline)");
  int compute_nice = kDefaultRegularNice;
  app.add_option("--compute-nice", compute_nice,
                 "Nice steps of regular batches below priority instances (braid serve's "
                 "--compute-nice)")
      ->check(CLI::Range(0, 19))
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  SetProcessRegularNice(compute_nice);
  if (per_model_pools) UsePerSessionThreadPools();

  BackendRegistry backends;
  RegisterBuiltinBackends(backends);
  ModelRepository models(repository, backends);
  SchedulerOptions scheduler_options;
  if (!per_model_pools) scheduler_options.budget = &ProcessComputeBudget();
  InferenceService service(models, SteadyClock(), scheduler_options);
  if (Status s = service.LoadAll(); !s.ok()) {
    fmt::print(stderr, "bench_workflows: {}\n", s.message());
    return 1;
  }
  WorkflowRegistry registry;
  if (Status s = registry.Load(workflows_dir, MakeModelCatalog(service)); !s.ok()) {
    fmt::print(stderr, "bench_workflows: {}\n", s.message());
    return 1;
  }
  ServiceModelRunner runner(service);
  ThreadPool pool(2);
  WorkflowExecutor executor(runner, pool, SteadyClock());
  auto media = [&](const std::string& file) {
    return *Tensor::FromStrings({*ReadFile(fixtures + "/" + file)}, {1});
  };
  const Tensor image = media("images/text_1_DejaVu-Sans_40.png");
  const Tensor audio = media("speech/say_0.wav");
  const Tensor text = *Tensor::FromStrings({"an invoice with a table of items"}, {1});
  auto parse = [&](const std::string& yaml, const std::string& name) {
    auto workflow = ParseWorkflow(yaml, name, name, MakeModelCatalog(service));
    if (!workflow.ok()) fmt::print(stderr, "{}\n", workflow.status().message());
    return *workflow;
  };

  struct Case {
    std::string name;
    NamedTensors inputs;
    // Each branch alone, as its own workflow.
    std::vector<std::pair<std::string, WorkflowPtr>> branches;
  };
  std::vector<Case> cases = {
      {"speech-report",
       {{"audio", audio}, {"image", image}},
       {{"asr", parse("inputs: {audio: {type: audio}}\nnodes: [{id: t, kind: model, model: asr, "
                      "from: {audio: inputs.audio}}]\n",
                      "asr-only")},
        {"ocr", parse("inputs: {image: {type: image}}\nnodes: [{id: o, kind: model, model: ocr, "
                      "from: {image: inputs.image}}]\n",
                      "ocr-only")}}},
      {"image-text-match",
       {{"image", image}, {"text", text}},
       {{"image branch",
         parse(
             "inputs: {image: {type: image}}\nnodes:\n"
             "  - {id: p, kind: preprocess.image, from: {image: inputs.image}}\n"
             "  - {id: e, kind: model, model: clip-image, from: {pixel_values: p.pixel_values}}\n",
             "image-only")},
        {"text branch",
         parse(
             "inputs: {text: {type: text}}\nnodes:\n"
             "  - {id: t, kind: preprocess.text, tokenizer: clip-text, from: {text: inputs.text}}\n"
             "  - {id: e, kind: model, model: clip-text, from: {input_ids: t.input_ids}}\n",
             "text-only")}}},
  };

  const int cores = per_model_pools ? AvailableCores() : ProcessComputeBudget().threads();
  for (auto& c : cases) {
    WorkflowPtr workflow = *registry.Get(c.name);
    fmt::print(stderr, "{}: single runs\n", c.name);
    Timing parallel = MedianRun(executor, workflow, c.inputs, false, runs);
    Timing serial = MedianRun(executor, workflow, c.inputs, true, runs);
    double slowest = 0;
    std::string slowest_name;
    double inverse_bound = 0;
    double branches_cpu_ms = 0, branches_ms = 0;
    std::vector<std::pair<std::string, double>> branch_rps;
    for (auto& [name, branch] : c.branches) {
      NamedTensors inputs;
      for (const auto& input : branch->inputs) inputs[input.name] = c.inputs.at(input.name);
      double cpu_ms = 0;
      double ms = MedianRun(executor, branch, inputs, false, runs, &cpu_ms).total_ms;
      branches_cpu_ms += cpu_ms;
      branches_ms += ms;
      if (ms > slowest) {
        slowest = ms;
        slowest_name = name;
      }
      fmt::print(stderr, "{}: {} alone at concurrency 16\n", c.name, name);
      const double rps = Throughput(executor, branch, inputs, 16, seconds);
      branch_rps.emplace_back(name, rps);
      inverse_bound += 1 / rps;
    }
    fmt::print(stderr, "{}: throughput at concurrency 16\n", c.name);
    double workflow_rps = Throughput(executor, workflow, c.inputs, 16, seconds);
    const double bound = 1 / inverse_bound;
    fmt::print("\n### {}{}\n\n", c.name, per_model_pools ? " (per-model pools, no budget)" : "");
    fmt::print("| measure | value |\n|---|---:|\n");
    fmt::print("| one run, parallel DAG (median of {}) | {:.1f} ms |\n", runs, parallel.total_ms);
    fmt::print("| one run, --serial | {:.1f} ms |\n", serial.total_ms);
    fmt::print("| slowest branch alone ({}) | {:.1f} ms |\n", slowest_name, slowest);
    fmt::print("| first node_finished | {:.1f} ms |\n", parallel.first_node_ms);
    fmt::print("| runs/s at concurrency 16 | {:.1f} |\n", workflow_rps);
    for (const auto& [name, rps] : branch_rps)
      fmt::print("| {} alone, runs/s at concurrency 16 | {:.1f} |\n", name, rps);
    fmt::print("| work bound, 1 / Σ(1 / branch runs/s) | {:.1f} |\n", bound);
    const double floor_ms = branches_cpu_ms / cores;
    fmt::print("| CPU time of the branches alone, per run (Σ) | {:.1f} ms |\n", branches_cpu_ms);
    fmt::print("| one run's floor on {} cores: that CPU time / cores | {:.1f} ms |\n\n", cores,
               floor_ms);
    fmt::print("- serial / parallel: **{:.2f}×**\n", serial.total_ms / parallel.total_ms);
    fmt::print("- parallel / slowest branch: **{:.2f}×** (goal ≤ 1.1)\n",
               parallel.total_ms / slowest);
    fmt::print("- throughput / work bound at concurrency 16: **{:.2f}×** (goal ≥ 0.9)\n",
               workflow_rps / bound);
    fmt::print(
        "- what these cores allow one run: parallel / slowest branch ≥ **{:.2f}×**, serial / "
        "parallel ≤ **{:.2f}×** (the branches' own times summed over the floor)\n",
        floor_ms / slowest, branches_ms / floor_ms);
  }
  return 0;
}
