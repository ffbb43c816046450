// bench_semantic_cache: canonical and semantic keys (issue 27) through the
// workflow executor, in process, with braid's text embedder (text-embed):
//   - canonical text: each question of questions.tsv asked again with other
//     spacing, in capitals, and in other Unicode forms (full-width letters,
//     no-break spaces, a ligature): how many find the first asking's
//     embedding cached, with `cache_key: exact` and `cache_key: casefold`;
//   - the semantic cache: the questions in a seeded random order through a
//     workflow with `semantic_cache` at three thresholds: how many of the
//     questions whose intent was asked before are answered from the cache
//     (hits), and how many get another intent's answer (false hits);
//   - the cost of a canonical text key and of a semantic lookup beside a
//     miss, and of an audio `pcm` key beside the asr model's miss.
#include <fmt/core.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <condition_variable>
#include <fstream>
#include <random>
#include <set>

#include "backends/backends.h"
#include "collections/collection.h"
#include "core/compute_budget.h"
#include "core/file_util.h"
#include "frontends/workflow/workflow_api.h"
#include "preprocess/audio.h"
#include "preprocess/canonical_text.h"
#include "serving/inference_service.h"

namespace braid {
namespace {

using Wall = std::chrono::steady_clock;

double Milliseconds(Wall::duration elapsed) {
  return std::chrono::duration<double, std::milli>(elapsed).count();
}

double Median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values.empty() ? 0 : values[values.size() / 2];
}

struct Question {
  std::string intent;
  std::string text;
};

std::vector<Question> ReadQuestions(const std::string& path) {
  std::ifstream in(path);
  std::vector<Question> questions;
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] == '#') continue;
    const auto tab = line.find('\t');
    questions.push_back({line.substr(0, tab), line.substr(tab + 1)});
  }
  return questions;
}

// The same question spelled three other ways: white space, case, Unicode forms.
std::vector<std::string> Respellings(const std::string& text) {
  std::string spaced = "  ", upper, unicode;
  for (char c : text) {
    spaced += c == ' ' ? std::string(" \t ") : std::string(1, c);
    upper += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  }
  spaced += "\n";
  // Full-width first letter, no-break spaces, "fi" as its ligature.
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (i == 0 && c >= 'a' && c <= 'z') {
      const char32_t wide = 0xFF41 + (c - 'a');
      unicode += static_cast<char>(0xE0 | (wide >> 12));
      unicode += static_cast<char>(0x80 | ((wide >> 6) & 0x3F));
      unicode += static_cast<char>(0x80 | (wide & 0x3F));
    } else if (c == ' ') {
      unicode += "\u00A0";
    } else if (c == 'f' && i + 1 < text.size() && text[i + 1] == 'i') {
      unicode += "\uFB01";
      ++i;
    } else {
      unicode += c;
    }
  }
  return {spaced, upper, unicode};
}

// Runs `workflow` once and returns its last event.
WorkflowEvent RunOnce(WorkflowExecutor& executor, const WorkflowPtr& workflow,
                      const NamedTensors& inputs, bool semantic,
                      std::map<std::string, bool>* cached) {
  std::mutex mutex;
  std::condition_variable done_cv;
  std::optional<WorkflowEvent> last;
  RunOptions options;
  options.semantic_cache = semantic;
  executor.Start(workflow, inputs, options, [&](const WorkflowEvent& event) {
    std::lock_guard lock(mutex);
    if (event.type == WorkflowEvent::Type::kNodeFinished && cached)
      (*cached)[event.node_id] = event.cached;
    if (event.type == WorkflowEvent::Type::kWorkflowFinished ||
        event.type == WorkflowEvent::Type::kError) {
      last = event;
      done_cv.notify_all();
    }
  });
  std::unique_lock lock(mutex);
  done_cv.wait(lock, [&] { return last.has_value(); });
  if (last->type == WorkflowEvent::Type::kError) fmt::print(stderr, "run failed: {}\n", last->text);
  return *last;
}

NamedTensors Ask(const std::string& text) {
  return {{"question", *Tensor::FromStrings({text}, {1})}};
}

// A question-answering workflow: the answer names the question it answers,
// so a semantic hit shows whose answer it gave.
std::string QuestionWorkflow(const std::string& cache_key, std::optional<float> threshold) {
  std::string yaml = "inputs: {question: {type: text, cache_key: " + cache_key + "}}\n" + R"(nodes:
  - {id: tokens, kind: preprocess.text, tokenizer: text-embed, from: {text: inputs.question}}
  - {id: embed, kind: model, model: text-embed, from: {input_ids: tokens.input_ids}}
  - {id: answer, kind: template, template: "{{inputs.question}}"}
outputs: {answer: answer.text}
)";
  if (threshold)
    yaml += fmt::format("semantic_cache: {{embedding: embed.text_embeds, threshold: {}}}\n",
                        *threshold);
  return yaml;
}

}  // namespace
}  // namespace braid

int main(int argc, char** argv) {
  using namespace braid;
  KeepEnginesSingleThreaded(argv);
  CLI::App app{"bench_semantic_cache: canonical text and audio keys and the semantic cache"};
  std::string repository_dir = BRAID_DEFAULT_MODEL_REPOSITORY, fixtures = BRAID_FIXTURES;
  std::string questions_path = BRAID_QUESTIONS;
  std::uint32_t seed = 1;
  std::vector<float> thresholds = {0.8F, 0.85F, 0.9F};
  app.add_option("-m,--model-repository", repository_dir, "Model repository");
  app.add_option("--fixtures", fixtures, "Fixture folder (for speech)");
  app.add_option("--questions", questions_path, "intent<TAB>question lines");
  app.add_option("--seed", seed, "Seed of the semantic trace's order")->capture_default_str();
  app.add_option("--thresholds", thresholds, "Semantic cache thresholds")->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  const std::vector<Question> questions = ReadQuestions(questions_path);
  if (questions.empty()) {
    fmt::print(stderr, "bench_semantic_cache: no questions in {}\n", questions_path);
    return 1;
  }
  BackendRegistry backends;
  RegisterBuiltinBackends(backends);
  ModelRepository models(repository_dir, backends);
  SchedulerOptions scheduler_options;
  scheduler_options.budget = &ProcessComputeBudget();
  InferenceService service(models, SteadyClock(), scheduler_options);
  for (const char* model : {"text-embed", "asr"}) {
    if (Status s = service.Load(model); !s.ok()) {
      fmt::print(stderr, "bench_semantic_cache: {}\n", s.message());
      return 1;
    }
  }
  ServiceModelRunner runner(service);
  ThreadPool pool(2);
  auto parse = [&](const std::string& yaml) {
    auto workflow = ParseWorkflow(yaml, "questions", "questions.yaml", MakeModelCatalog(service));
    if (!workflow.ok()) {
      fmt::print(stderr, "bench_semantic_cache: {}\n", workflow.status().message());
      std::exit(1);
    }
    return *workflow;
  };

  // Canonical text: the respellings find the first asking's embedding?
  fmt::print("### Canonical text keys: {} questions, each respelled 3 ways\n\n", questions.size());
  fmt::print("| cache_key | respellings | embedding cached | hit ratio |\n|---|---:|---:|---:|\n");
  for (const std::string key : {"exact", "casefold"}) {
    MemoryCache memory{64 << 20, SteadyClock()};
    ResultCache cache{&memory, nullptr};
    WorkflowExecutor executor(runner, pool, SteadyClock());
    executor.SetCache(&cache);
    const WorkflowPtr workflow = parse(QuestionWorkflow(key, std::nullopt));
    std::size_t asked = 0, hits = 0;
    for (const auto& question : questions) {
      RunOnce(executor, workflow, Ask(question.text), true, nullptr);
      for (const auto& respelled : Respellings(question.text)) {
        std::map<std::string, bool> cached;
        RunOnce(executor, workflow, Ask(respelled), true, &cached);
        ++asked;
        hits += cached["embed"];
      }
    }
    fmt::print("| {} | {} | {} | {:.3f} |\n", key, asked, hits, double(hits) / asked);
  }

  // The semantic cache at each threshold, on one seeded trace: the
  // questions in random order, then each again lightly reworded (a greeting,
  // a "please", a question mark), in random order.
  struct Asked {
    const Question* question;
    std::string text;
    bool reworded;
  };
  std::mt19937 random(seed);
  std::vector<Asked> trace, reworded;
  static const char* kRewordings[] = {"hi, {}?", "{} please", "quick question: {}", "{}, thanks!"};
  for (const auto& question : questions) {
    trace.push_back({&question, question.text, false});
    reworded.push_back(
        {&question, fmt::format(fmt::runtime(kRewordings[random() % 4]), question.text), true});
  }
  std::shuffle(trace.begin(), trace.end(), random);
  std::shuffle(reworded.begin(), reworded.end(), random);
  trace.insert(trace.end(), reworded.begin(), reworded.end());
  std::map<std::string, std::string> intent_of;
  std::set<std::string> intents;
  for (const auto& asked : trace) {
    intent_of[CanonicalText(asked.text, true)] = asked.question->intent;
    intents.insert(asked.question->intent);
  }
  fmt::print(
      "\n### Semantic cache: {} questions ({} intents, each asked 3 ways), then each again "
      "lightly reworded, in a seeded order (seed {})\n\n",
      questions.size(), intents.size(), seed);
  fmt::print(
      "A repeat is a question whose intent was asked before: what a semantic cache could "
      "answer. A hit gives the answer of the same intent; a false hit another intent's.\n\n");
  fmt::print(
      "| threshold | paraphrases: hits of repeats | false hits | rewordings: hits of repeats | "
      "false hits | false hits of all {} |\n|---:|---:|---:|---:|---:|---:|\n",
      trace.size());
  std::vector<double> lookups, misses;
  for (float threshold : thresholds) {
    MemoryCache memory{64 << 20, SteadyClock()};
    ResultCache cache{&memory, nullptr};
    WorkflowExecutor executor(runner, pool, SteadyClock());
    executor.SetCache(&cache);
    const WorkflowPtr workflow = parse(QuestionWorkflow("casefold", threshold));
    std::set<std::string> seen;
    std::size_t repeats[2] = {0, 0}, hits[2] = {0, 0}, false_hits[2] = {0, 0};
    for (const auto& asked : trace) {
      const int kind = asked.reworded;
      const bool repeat = !seen.insert(asked.question->intent).second;
      repeats[kind] += repeat;
      const auto start = Wall::now();
      const WorkflowEvent last = RunOnce(executor, workflow, Ask(asked.text), true, nullptr);
      if (!last.semantic) {
        misses.push_back(Milliseconds(Wall::now() - start));
        continue;
      }
      const std::string answered = std::string((*last.outputs.at("answer").Strings())[0]);
      if (intent_of.at(answered) == asked.question->intent) {
        ++hits[kind];
      } else {
        ++false_hits[kind];
      }
    }
    // The lookup alone, on the full cache, scanning all its candidates.
    auto semantic = executor.SemanticCacheFor(workflow);
    std::vector<float> probe(kTextEmbedDimensions, 0.1F);
    for (int i = 0; i < 200; ++i) {
      const auto start = Wall::now();
      semantic->Find(probe, Hash128{}, threshold);
      lookups.push_back(Milliseconds(Wall::now() - start));
    }
    fmt::print("| {:.2f} | {} of {} ({:.3f}) | {} | {} of {} ({:.3f}) | {} | {:.3f} |\n", threshold,
               hits[0], repeats[0], double(hits[0]) / repeats[0], false_hits[0], hits[1],
               repeats[1], double(hits[1]) / repeats[1], false_hits[1],
               double(false_hits[0] + false_hits[1]) / trace.size());
  }

  // Costs beside a miss.
  std::vector<double> canonical;
  for (int round = 0; round < 20; ++round) {
    for (const auto& question : questions) {
      const auto start = Wall::now();
      CanonicalText(question.text, true);
      canonical.push_back(Milliseconds(Wall::now() - start));
    }
  }
  WorkflowExecutor uncached(runner, pool, SteadyClock());
  const WorkflowPtr transcribe = parse(R"(
inputs: {audio: {type: audio}}
nodes:
  - {id: transcript, kind: model, model: asr, from: {audio: inputs.audio}}
outputs: {transcript: transcript.text}
)");
  std::vector<double> decodes, asr;
  for (int i = 0; i < 6; ++i) {
    const auto wav = ReadFile(fmt::format("{}/speech/say_{}.wav", fixtures, i));
    if (!wav.ok()) {
      fmt::print(stderr, "bench_semantic_cache: {}\n", wav.status().message());
      return 1;
    }
    const auto start = Wall::now();
    auto decoded = DecodeAudio(std::as_bytes(std::span(wav->data(), wav->size())));
    Hasher().Add(std::as_bytes(std::span(decoded->samples))).Finish();
    decodes.push_back(Milliseconds(Wall::now() - start));
    const auto run = Wall::now();
    RunOnce(uncached, transcribe, {{"audio", *Tensor::FromStrings({*wav}, {1})}}, true, nullptr);
    asr.push_back(Milliseconds(Wall::now() - run));
  }
  fmt::print(
      "\n### Cost beside a miss (p50)\n\n| step | ms | share of the miss |\n|---|---:|---:|\n");
  fmt::print(
      "| text miss: the question workflow's run (tokenise, text-embed, template) | {:.3f} | |\n",
      Median(misses));
  fmt::print("| canonical text key (NFKC_Casefold, white space) | {:.4f} | {:.1f} % |\n",
             Median(canonical), 100 * Median(canonical) / Median(misses));
  fmt::print("| semantic lookup (FAISS flat, up to {} entries) | {:.4f} | {:.1f} % |\n",
             trace.size(), Median(lookups), 100 * Median(lookups) / Median(misses));
  fmt::print("| audio miss: the asr model's run on a spoken sentence | {:.3f} | |\n", Median(asr));
  fmt::print("| audio pcm key (decode to 16 kHz samples, hash) | {:.3f} | {:.1f} % |\n",
             Median(decodes), 100 * Median(decodes) / Median(asr));
  return 0;
}
