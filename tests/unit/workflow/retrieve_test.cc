// The retrieve node: what loading accepts and refuses, and a run that
// searches an in-memory collection by a vector, by a text (through the
// executor's query embedder) and fails clearly for an unknown collection.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <condition_variable>

#include "collections/collection_store.h"
#include "workflow/executor.h"

namespace braid {
namespace {

using ::testing::HasSubstr;

std::vector<float> Axis(int index, int dimensions = 128) {
  std::vector<float> vector(dimensions, 0.f);
  vector[index] = 1;
  return vector;
}

// One model, "embed", whose "vector" is the x axis whatever it is given.
class EmbedRunner : public ModelRunner {
 public:
  void Run(const std::string& model, NamedTensors, const ModelCall&,
           std::function<void(Result<NamedTensors>)> done) override {
    if (model != "embed") return done(NotFound("no model {}", model));
    Tensor vector = *Tensor::Allocate(DataType::kFp32, {1, 128});
    const auto x = Axis(0);
    std::copy(x.begin(), x.end(), vector.mutable_span<float>().begin());
    done(NamedTensors{{"vector", vector}});
  }
  Result<std::shared_ptr<const Tokenizer>> TokenizerFor(const std::string& model) override {
    return NotFound("no {}", model);
  }
};

Result<std::vector<std::string>> Catalog(const std::string& model,
                                         const std::vector<std::string>&) {
  if (model == "embed") return std::vector<std::string>{"vector"};
  return NotFound("no {}", model);
}

Result<WorkflowPtr> Parse(const std::string& yaml) {
  return ParseWorkflow(yaml, "search", "search.yaml", Catalog);
}

TEST(RetrieveNodeTest, LoadingChecksItsFields) {
  const std::string ok = R"(
inputs: {text: {type: text}}
nodes:
  - {id: search, kind: retrieve, collection: notes, top_k: 3, from: {text: inputs.text}}
outputs: {ids: search.ids, scores: search.scores, texts: search.texts})";
  EXPECT_TRUE(Parse(ok).ok()) << Parse(ok).status().message();
  struct Case {
    std::string yaml, message;
  };
  for (const auto& [yaml, message] : std::vector<Case>{
           {R"(
inputs: {text: {type: text}}
nodes: [{id: search, kind: retrieve, from: {text: inputs.text}}])",
            "needs 'collection'"},
           {R"(
inputs: {text: {type: text}}
nodes: [{id: search, kind: retrieve, collection: ../etc, from: {text: inputs.text}}])",
            "a collection name is"},
           {R"(
inputs: {text: {type: text}}
nodes: [{id: search, kind: retrieve, collection: notes, top_k: 0, from: {text: inputs.text}}])",
            "'top_k' must be an integer from 1 to 1000"},
           {R"(
inputs: {text: {type: text}}
nodes: [{id: search, kind: retrieve, collection: notes, from: {query: inputs.text}}])",
            "not 'from.query'"},
           {R"(
inputs: {image: {type: image}}
nodes: [{id: search, kind: retrieve, collection: notes, from: {text: inputs.image}}])",
            "is the image input 'image'; it needs text"},
       }) {
    auto workflow = Parse(yaml);
    ASSERT_FALSE(workflow.ok()) << yaml;
    EXPECT_THAT(workflow.status().message(), HasSubstr(message));
  }
}

class RetrieveRunTest : public ::testing::Test {
 protected:
  RetrieveRunTest() : store_(CollectionStoreOptions{}) {
    std::vector<Item> items = {{"x", "along x", "", "", ""}, {"y", "along y", "", "", ""}};
    EXPECT_TRUE(store_.Add("notes", EmbeddingSpace::kClipAligned, items, {Axis(0), Axis(1)}).ok());
    // Texts embed to the y axis, in the space the collection asks for.
    executor_.SetCollections(&store_,
                             [](InputType type, std::string data, EmbeddingSpace space, auto done) {
                               if (type != InputType::kText || data != "why")
                                 return done(InvalidArgument("unexpected"));
                               done(Axis(1, Dimensions(space)));
                             });
  }

  // The run's outputs, or its error message.
  Result<NamedTensors> Run(const std::string& yaml, NamedTensors inputs) {
    auto workflow = Parse(yaml);
    if (!workflow.ok()) return workflow.status();
    std::mutex mutex;
    std::condition_variable finished;
    std::optional<Result<NamedTensors>> result;
    executor_.Start(*workflow, std::move(inputs), {}, [&](const WorkflowEvent& event) {
      std::lock_guard lock(mutex);
      if (event.type == WorkflowEvent::Type::kWorkflowFinished) result = event.outputs;
      if (event.type == WorkflowEvent::Type::kError) result = Status(event.error_code, event.text);
      finished.notify_all();
    });
    std::unique_lock lock(mutex);
    EXPECT_TRUE(
        finished.wait_for(lock, std::chrono::seconds(10), [&] { return result.has_value(); }));
    if (!result) return Internal("the run did not finish");
    return *result;
  }

  CollectionStore store_;
  EmbedRunner runner_;
  ThreadPool pool_{2};
  WorkflowExecutor executor_{runner_, pool_, SteadyClock()};
};

TEST_F(RetrieveRunTest, SearchesByText) {
  auto outputs = Run(R"(
inputs: {text: {type: text}}
nodes: [{id: search, kind: retrieve, collection: notes, top_k: 1, from: {text: inputs.text}}]
outputs: {ids: search.ids, scores: search.scores, texts: search.texts})",
                     {{"text", *Tensor::FromStrings({"why"}, {1})}});
  ASSERT_TRUE(outputs.ok()) << outputs.status().message();
  EXPECT_EQ(RenderTensor(outputs->at("ids")), "y");
  EXPECT_EQ(RenderTensor(outputs->at("texts")), "along y");
  EXPECT_EQ(RenderTensor(outputs->at("scores")), "1.0000");
}

TEST_F(RetrieveRunTest, SearchesByAModelsVector) {
  auto outputs = Run(R"(
inputs: {text: {type: text}}
nodes:
  - {id: embedding, kind: model, model: embed, from: {text: inputs.text}}
  - {id: search, kind: retrieve, collection: notes, top_k: 2, from: {vector: embedding.vector}}
outputs: {ids: search.ids, scores: search.scores})",
                     {{"text", *Tensor::FromStrings({"anything"}, {1})}});
  ASSERT_TRUE(outputs.ok()) << outputs.status().message();
  EXPECT_EQ(RenderTensor(outputs->at("ids")), "x y");
  EXPECT_EQ(RenderTensor(outputs->at("scores")), "[1.0000, 0.0000]");
}

TEST_F(RetrieveRunTest, AWrongVectorOrAnUnknownCollectionFailsTheNode) {
  const std::string yaml = R"(
inputs: {text: {type: text}}
nodes:
  - {id: search, kind: retrieve, collection: COLLECTION, from: {text: inputs.text}}
  - {id: again, kind: retrieve, collection: notes, from: {vector: search.scores}})";
  auto unknown = Run(std::string(yaml).replace(yaml.find("COLLECTION"), 10, "missing"),
                     {{"text", *Tensor::FromStrings({"why"}, {1})}});
  EXPECT_EQ(unknown.status().code(), StatusCode::kNotFound);
  EXPECT_THAT(unknown.status().message(), HasSubstr("no collection 'missing'"));
  auto wrong = Run(std::string(yaml).replace(yaml.find("COLLECTION"), 10, "notes"),
                   {{"text", *Tensor::FromStrings({"why"}, {1})}});
  EXPECT_EQ(wrong.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(wrong.status().message(), HasSubstr("128-dimensional vectors, not 2"));
}

}  // namespace
}  // namespace braid
