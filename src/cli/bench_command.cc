// `braid bench`: a load generator against a running server, like Triton's
// perf_analyzer. Closed-loop concurrency sweeps or open-loop Poisson rates
// over KServe v2 (HTTP JSON, HTTP binary, gRPC), the OpenAI embeddings
// endpoint or a workflow run; a table on stdout, CSV, JSON and a
// latency-throughput plot (gnuplot) on request.
#include <fmt/core.h>
#include <fmt/ranges.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>

#include "cli/commands.h"
#include "core/file_util.h"
#include "core/npy.h"
#include "frontends/kserve/kserve.h"
#include "grpc_service.pb.h"
#include "loadgen/load.h"
#include "loadgen/requests.h"

namespace braid::cli {
namespace {

struct BenchOptions {
  std::string url = "http://127.0.0.1:8000";
  std::string grpc = "127.0.0.1:8001";
  std::string endpoint = "kserve-json";
  std::string model;
  std::string workflow;
  std::string workflow_inputs = "{}";
  std::string text = "a photo of a cat";
  std::vector<std::string> shapes;
  std::vector<std::string> inputs;
  std::string input_data = "random";
  std::int64_t batch_size = 1;
  int unique = 16;
  bool cache = false;
  int priority = 0;
  std::int64_t timeout_us = -1;
  std::vector<double> concurrency;
  std::vector<double> rates;
  double warmup_s = 1;
  double window_s = 3;
  int max_windows = 6;
  double stability = 0.15;
  HttpClientOptions client;
  std::string api_key;
  std::string csv, json, plot;
};

Duration Seconds(double s) {
  return std::chrono::duration_cast<Duration>(std::chrono::duration<double>(s));
}

Result<std::map<std::string, Shape>> ParseShapes(const std::vector<std::string>& flags) {
  std::map<std::string, Shape> shapes;
  for (const auto& flag : flags) {
    auto equals = flag.find('=');
    if (equals == std::string::npos)
      return InvalidArgument("--shape {}: expected NAME=D1,D2", flag);
    Shape shape;
    std::string dims = flag.substr(equals + 1);
    for (std::size_t start = 0; start <= dims.size();) {
      auto comma = dims.find(',', start);
      if (comma == std::string::npos) comma = dims.size();
      try {
        shape.push_back(std::stoll(dims.substr(start, comma - start)));
      } catch (const std::exception&) {
        return InvalidArgument("--shape {}: '{}' is not a number", flag,
                               dims.substr(start, comma - start));
      }
      start = comma + 1;
    }
    shapes[flag.substr(0, equals)] = shape;
  }
  return shapes;
}

// The requests of a KServe endpoint, from the model's metadata.
// Every request carries `api_key` as a bearer token (none when empty).
void AddKey(std::vector<HttpRequestSpec>& requests, const std::string& api_key) {
  if (api_key.empty()) return;
  for (auto& request : requests) request.headers.push_back({"Authorization", "Bearer " + api_key});
}

Result<std::unique_ptr<Target>> KserveTarget(const BenchOptions& options) {
  if (options.model.empty()) return InvalidArgument("--model is required for {}", options.endpoint);
  BRAID_ASSIGN_OR_RETURN(std::string metadata, HttpGet(options.url, "/v2/models/" + options.model,
                                                       options.api_key, options.client.tls_ca));
  BRAID_ASSIGN_OR_RETURN(auto shapes, ParseShapes(options.shapes));
  BRAID_ASSIGN_OR_RETURN(auto specs, InputsFromMetadata(metadata, shapes, options.batch_size));
  std::map<std::string, Tensor> files;
  for (const auto& flag : options.inputs) {
    auto equals = flag.find('=');
    if (equals == std::string::npos)
      return InvalidArgument("--input {}: expected NAME=FILE.npy", flag);
    BRAID_ASSIGN_OR_RETURN(files[flag.substr(0, equals)], ReadNpy(flag.substr(equals + 1)));
  }
  if (options.input_data != "random" && options.input_data != "zero")
    return InvalidArgument("--input-data must be random or zero, not '{}'", options.input_data);
  BRAID_ASSIGN_OR_RETURN(
      auto sets, MakeInputSets(specs, files,
                               options.input_data == "zero" ? InputData::kZero : InputData::kRandom,
                               options.unique));
  const RequestParameters parameters{options.cache, options.priority, options.timeout_us};
  if (options.endpoint == "grpc") {
    std::vector<inference::ModelInferRequest> requests;
    for (const auto& set : sets)
      requests.push_back(KserveGrpcRequest(options.model, specs, set, parameters));
    return MakeGrpcTarget(options.grpc, std::move(requests), options.api_key, 2,
                          !options.client.tls_ca.empty(), options.client.tls_ca);
  }
  std::vector<HttpRequestSpec> requests;
  for (const auto& set : sets) {
    requests.push_back(options.endpoint == "kserve-binary"
                           ? KserveBinaryRequest(options.model, specs, set, parameters)
                           : KserveJsonRequest(options.model, specs, set, parameters));
  }
  AddKey(requests, options.api_key);
  return MakeHttpTarget(options.url, std::move(requests), options.client);
}

Result<std::unique_ptr<Target>> MakeTarget(const BenchOptions& options) {
  if (options.endpoint == "kserve-json" || options.endpoint == "kserve-binary" ||
      options.endpoint == "grpc")
    return KserveTarget(options);
  std::vector<HttpRequestSpec> requests;
  if (options.endpoint == "openai-embeddings") {
    if (options.model.empty()) return InvalidArgument("--model is required for openai-embeddings");
    for (int u = 0; u < std::max(1, options.unique); ++u) {
      std::string body = "{\"model\":";
      AppendJsonString(body, options.model);
      body += ",\"input\":";
      AppendJsonString(body,
                       options.unique > 1 ? fmt::format("{} {}", options.text, u) : options.text);
      body += "}";
      requests.push_back({"POST", "/v1/embeddings", "application/json", {}, std::move(body)});
    }
  } else if (options.endpoint == "workflow") {
    if (options.workflow.empty()) return InvalidArgument("--workflow is required for workflow");
    std::string inputs = options.workflow_inputs;
    if (inputs.starts_with("@")) {
      BRAID_ASSIGN_OR_RETURN(inputs, ReadFile(inputs.substr(1)));
    }
    requests.push_back(
        {"POST",
         "/v1/workflows/" + options.workflow + "/run",
         "application/json",
         {},
         "{\"inputs\":" + inputs + ",\"response_mode\":\"blocking\",\"user\":\"braid-bench\"}"});
  } else {
    return InvalidArgument(
        "--endpoint must be kserve-json, kserve-binary, grpc, openai-embeddings or workflow, not "
        "'{}'",
        options.endpoint);
  }
  AddKey(requests, options.api_key);
  return MakeHttpTarget(options.url, std::move(requests), options.client);
}

// Writes a gnuplot script beside `png` and runs it: p50 and p99 latency
// against throughput, one point per load level.
Status Plot(const std::vector<BenchPoint>& points, const std::string& title,
            const std::string& png) {
  const std::string data = png + ".dat", script = png + ".gp";
  {
    std::ofstream out(data);
    for (const auto& point : points) {
      out << point.summary.throughput << ' ' << point.summary.p50_us / 1000 << ' '
          << point.summary.p99_us / 1000 << ' ' << point.load << '\n';
    }
  }
  {
    std::ofstream out(script);
    out << "set terminal png size 900,560\n"
        << "set output '" << png << "'\n"
        << "set title \"" << title << "\" noenhanced\n"
        << "set xlabel 'throughput (requests/s)'\nset ylabel 'latency (ms)'\n"
        << "set logscale y\nset grid\nset key top left\n"
        << "plot '" << data << "' using 1:2 with linespoints title 'p50', '" << data
        << "' using 1:3 with linespoints title 'p99', '" << data
        << "' using 1:3:(sprintf('%g', $4)) with labels offset 0,1 notitle\n";
  }
  const std::string command = "gnuplot '" + script + "' 2>&1";
  const int status = std::system(command.c_str());
  std::remove(data.c_str());
  std::remove(script.c_str());
  if (status != 0)
    return Unavailable("gnuplot failed (exit {}): is it installed (apt-get install gnuplot-nox)?",
                       status);
  return Status::Ok();
}

int RunBench(const BenchOptions& options) {
  auto fail = [](const Status& status) {
    fmt::print(stderr, "braid bench: {}\n", status.message());
    return 1;
  };
  if (!options.concurrency.empty() && !options.rates.empty())
    return fail(InvalidArgument("give --concurrency or --rate, not both"));
  auto target = MakeTarget(options);
  if (!target.ok()) return fail(target.status());
  const bool open_loop = !options.rates.empty();
  std::vector<double> levels = open_loop ? options.rates : options.concurrency;
  if (levels.empty()) levels = {1};
  const bool live = isatty(STDERR_FILENO);
  fmt::print("# braid bench: {} ({})\n", (*target)->Describe(),
             open_loop ? "open loop, Poisson arrivals" : "closed loop");
  fmt::print(
      "| {} | req/s | p50 ms | p90 ms | p99 ms | max ms | errors | stable | error p99 ms |\n",
      open_loop ? "offered req/s" : "concurrency");
  fmt::print("|---:|---:|---:|---:|---:|---:|---:|---|---:|\n");
  std::fflush(stdout);
  std::vector<BenchPoint> points;
  std::vector<std::string> failed_levels;  // where every request failed
  for (double level : levels) {
    LoadSpec spec;
    spec.open_loop = open_loop;
    spec.load = level;
    spec.warmup = Seconds(options.warmup_s);
    spec.window = Seconds(options.window_s);
    spec.max_windows = options.max_windows;
    spec.stability = options.stability;
    BenchPoint point = RunLoad(**target, spec, [&](const LoadProgress& p) {
      if (!live) return;
      fmt::print(stderr,
                 "\r\033[K[{} {:g}] {} {:.0f} s: {} ok, {} errors, {:.1f} req/s, p50 {:.2f} ms",
                 open_loop ? "rate" : "concurrency", level, p.phase, p.elapsed_s, p.requests,
                 p.errors, p.throughput, p.p50_us / 1000);
    });
    if (live) fmt::print(stderr, "\r\033[K");
    const auto& s = point.summary;
    const bool failed = s.requests == 0 && s.errors > 0;
    if (failed) failed_levels.push_back(fmt::format("{:g}", level));
    fmt::print("| {:g} | {:.1f} | {:.2f} | {:.2f} | {:.2f} | {:.2f} | {} | {} | {:.2f} |\n", level,
               s.throughput, s.p50_us / 1000, s.p90_us / 1000, s.p99_us / 1000, s.max_us / 1000,
               s.errors,
               failed         ? "failed"
               : point.stable ? "yes"
                              : "no",
               s.error_p99_us / 1000);
    std::fflush(stdout);
    for (const auto& [message, count] : point.error_messages) {
      fmt::print(stderr, "braid bench: {} {:g}: {} × {}\n", open_loop ? "rate" : "concurrency",
                 level, count, message);
    }
    points.push_back(point);
  }
  auto write = [&](const std::string& path, const std::string& text) -> Status {
    std::ofstream out(path, std::ios::binary);
    out << text;
    if (!out) return Unavailable("cannot write {}", path);
    return Status::Ok();
  };
  if (!options.csv.empty()) {
    if (Status s = write(options.csv, PointsToCsv(points)); !s.ok()) return fail(s);
  }
  if (!options.json.empty()) {
    if (Status s = write(options.json, PointsToJson(points, (*target)->Describe())); !s.ok())
      return fail(s);
  }
  if (!options.plot.empty()) {
    if (Status s = Plot(points, (*target)->Describe(), options.plot); !s.ok()) return fail(s);
  }
  if (!failed_levels.empty()) {
    return fail(Unavailable("every request failed at {} {} (the errors are above)",
                            open_loop ? "rate" : "concurrency", fmt::join(failed_levels, ", ")));
  }
  return 0;
}

}  // namespace

void AddBenchCommand(CLI::App& app, int* exit_code) {
  auto options = std::make_shared<BenchOptions>();
  auto* bench = app.add_subcommand(
      "bench",
      "Load a running server and measure it: closed-loop concurrency sweeps or open-loop Poisson "
      "rates; throughput, p50/p90/p99/max latency, errors; CSV, JSON and a plot");
  bench->add_option("--url", options->url, "HTTP address of the server")->capture_default_str();
  bench->add_option("--grpc", options->grpc, "gRPC address (--endpoint grpc)")
      ->capture_default_str();
  bench
      ->add_option("--endpoint", options->endpoint,
                   "kserve-json, kserve-binary, grpc, openai-embeddings or workflow")
      ->capture_default_str();
  bench->add_option("-m,--model", options->model, "Model (KServe and OpenAI endpoints)");
  bench->add_option("--workflow", options->workflow, "Workflow (--endpoint workflow)");
  bench->add_option("--inputs", options->workflow_inputs,
                    "The workflow's inputs as JSON, or @FILE (--endpoint workflow)");
  bench->add_option("--text", options->text, "Text to embed (openai-embeddings)")
      ->capture_default_str();
  bench->add_option("--shape", options->shapes,
                    "NAME=D1,D2,...: the full shape of an input with variable dimensions");
  bench->add_option("-b,--batch-size", options->batch_size, "Rows per request (batched models)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  bench->add_option("--input", options->inputs, "NAME=FILE.npy: that input's data");
  bench->add_option("--input-data", options->input_data, "random or zero, for the other inputs")
      ->capture_default_str();
  bench
      ->add_option("--unique-inputs", options->unique,
                   "Distinct requests, sent in turn (random data differs between them)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  bench->add_flag("--cache", options->cache,
                  "Let the server answer from its result cache (off: parameters.cache=false)");
  bench->add_option("--priority", options->priority,
                    "parameters.priority of every request (KServe endpoints; 1 is the highest)");
  bench->add_option("--timeout-us", options->timeout_us,
                    "parameters.timeout of every request in microseconds (KServe endpoints)");
  bench
      ->add_option("-c,--concurrency", options->concurrency,
                   "Closed loop: clients, e.g. -c 1,16,64 (default 1)")
      ->delimiter(',');
  bench
      ->add_option("-r,--rate", options->rates,
                   "Open loop: offered requests per second (Poisson), e.g. -r 50,100")
      ->delimiter(',');
  bench->add_option("--warmup", options->warmup_s, "Seconds of warm-up per level")
      ->capture_default_str();
  bench->add_option("--window", options->window_s, "Seconds per measurement window")
      ->capture_default_str();
  bench
      ->add_option("--max-windows", options->max_windows,
                   "Windows per level before giving up on stability (at least 3)")
      ->capture_default_str();
  bench
      ->add_option("--stability", options->stability,
                   "Stable when the last 3 windows' throughput and p50 lie within this fraction "
                   "of their mean")
      ->capture_default_str();
  bench->add_flag("--http2", options->client.http2,
                  "HTTP/2 to --url (h2c with prior knowledge for http://, ALPN for https://), "
                  "--connections connections each carrying many requests at once");
  bench->add_option("--connections", options->client.connections, "HTTP/2 connections")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  bench
      ->add_option("--tls-ca", options->client.tls_ca,
                   "CA that signed the server's certificate, for an https:// --url and for gRPC "
                   "(given: gRPC speaks TLS)")
      ->check(CLI::ExistingFile);
  bench->add_option("--threads", options->client.threads, "Client network threads (HTTP)")
      ->capture_default_str();
  bench->add_option("--api-key", options->api_key, "Bearer key, if the server asks for one")
      ->envname("BRAID_API_KEY");
  bench->add_option("--csv", options->csv, "Write the results as CSV");
  bench->add_option("--json", options->json, "Write the results as JSON");
  bench->add_option("--plot", options->plot, "Draw latency against throughput into this PNG");
  bench->callback([options, exit_code] { *exit_code = RunBench(*options); });
}

}  // namespace braid::cli
