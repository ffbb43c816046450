// retrieve: the matches of a query in a collection. The query is a vector,
// or a text or an image embedded into the collection's space; the search
// runs on the CPU pool.
#include <regex>

#include "collections/collection.h"
#include "workflow/executor.h"
#include "workflow/nodes/nodes.h"

namespace braid {
namespace {

// Matches a retrieve node returns unless its top_k says otherwise.
constexpr std::size_t kDefaultTopK = 5;

// The outputs: ids, scores and texts of the matches, best first.
Result<NamedTensors> Matches(const Collection& collection, std::span<const float> query,
                             std::size_t top_k) {
  BRAID_ASSIGN_OR_RETURN(auto matches, collection.Search(query, top_k));
  std::vector<std::string> ids, texts;
  const auto count = static_cast<std::int64_t>(matches.size());
  BRAID_ASSIGN_OR_RETURN(Tensor scores, Tensor::Allocate(DataType::kFp32, {count}));
  for (std::size_t i = 0; i < matches.size(); ++i) {
    ids.push_back(matches[i].item.id);
    texts.push_back(matches[i].item.text);
    scores.mutable_span<float>()[i] = matches[i].score;
  }
  BRAID_ASSIGN_OR_RETURN(Tensor id_tensor, Tensor::FromStrings(ids, {count}));
  BRAID_ASSIGN_OR_RETURN(Tensor text_tensor, Tensor::FromStrings(texts, {count}));
  return NamedTensors{{"ids", id_tensor}, {"scores", scores}, {"texts", text_tensor}};
}

class RetrieveKind : public NodeKind {
 public:
  std::vector<std::string> Parameters() const override { return {"collection", "top_k"}; }
  Result<std::vector<std::string>> Outputs(const NodeSpec&, const ModelCatalog&) const override {
    return std::vector<std::string>{"ids", "scores", "texts"};
  }
  // One query: a vector, a text or an image; top_k matches (1-1000).
  Status Check(NodeSpec& node) const override {
    if (!node.params.count("collection")) return InvalidArgument("needs 'collection'");
    BRAID_RETURN_IF_ERROR(ValidateCollectionName(node.params.at("collection")));
    if (auto top_k = node.params.find("top_k"); top_k != node.params.end()) {
      static const std::regex kNumber("[0-9]{1,4}");
      if (!std::regex_match(top_k->second, kNumber) || std::stoi(top_k->second) < 1 ||
          std::stoi(top_k->second) > 1000)
        return InvalidArgument("'top_k' must be an integer from 1 to 1000");
    }
    if (node.from.empty())
      return InvalidArgument("needs 'from.vector', 'from.text' or 'from.image'");
    for (const auto& [field, ref] : node.from) {
      if (field != "vector" && field != "text" && field != "image")
        return InvalidArgument("takes 'from.vector', 'from.text' or 'from.image', not 'from.{}'",
                               field);
    }
    return Status::Ok();
  }
  std::optional<InputType> InputTypeOf(std::string_view field) const override {
    if (field == "text") return InputType::kText;
    if (field == "image") return InputType::kImage;
    return std::nullopt;
  }
  // Its result changes with its collection.
  NodeCaching caching() const override { return NodeCaching::kNone; }
  bool precomputed() const override { return false; }

  void Run(NodeRun run, NodeDone done) const override {
    WorkflowExecutor& executor = run.executor;
    if (executor.collections() == nullptr)
      return done(Unavailable("retrieve nodes need collections (braid serve has them)"));
    auto collection = executor.collections()->Get(run.node.params.at("collection"));
    if (!collection.ok()) return done(collection.status());
    const std::size_t top_k =
        run.node.params.count("top_k") ? std::stoul(run.node.params.at("top_k")) : kDefaultTopK;
    auto search = [&executor, collection = *collection, top_k, done](std::vector<float> query) {
      executor.pool().Submit([collection, top_k, done, query = std::move(query)] {
        done(Matches(*collection, query, top_k));
      });
    };
    if (auto vector = run.inputs.find("vector"); vector != run.inputs.end()) {
      if (vector->second.dtype() != DataType::kFp32)
        return done(InvalidArgument("retrieve's vector must be FP32, not {}",
                                    DataTypeName(vector->second.dtype())));
      auto values = vector->second.span<float>();
      return search(std::vector<float>(values.begin(), values.end()));
    }
    const bool image = run.inputs.count("image") > 0;
    if (!image && !run.inputs.count("text")) return done(InvalidArgument("retrieve got no query"));
    executor.query_embedder()(image ? InputType::kImage : InputType::kText,
                              std::string(FirstString(run.inputs[image ? "image" : "text"])),
                              (*collection)->space(),
                              [search, done](Result<std::vector<float>> query) {
                                if (!query.ok()) return done(query.status());
                                search(std::move(query).value());
                              });
  }
};

}  // namespace

void RegisterRetrieveNode(NodeKindMap& kinds) {
  kinds["retrieve"] = std::make_unique<RetrieveKind>();
}

}  // namespace braid
