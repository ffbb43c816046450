#include "align/onnx_model.h"

#include <fmt/format.h>

#include <algorithm>
#include <vector>

#include "backends/onnxruntime/onnxruntime_backend.h"
#include "core/file_util.h"
#include "core/tensor.h"
#include "model/config.h"
#include "onnxgen/align_graph.h"
#include "onnxgen/graph_builder.h"
#include "onnxgen/text_graph.h"

namespace braid::align {
namespace {

constexpr std::int64_t kRunBatch = 1024;

std::vector<float> Values(const Matrix& matrix) {
  return std::vector<float>(matrix.data(), matrix.data() + matrix.size());
}

Result<Tensor> ToTensor(const Matrix& rows) {
  BRAID_ASSIGN_OR_RETURN(Tensor tensor,
                         Tensor::Allocate(DataType::kFp32, {rows.rows(), rows.cols()}));
  Eigen::Map<Matrix>(tensor.mutable_span<float>().data(), rows.rows(), rows.cols()) = rows;
  return tensor;
}

}  // namespace

Status ExportAlignModel(const AlignHeads& heads, const std::filesystem::path& path) {
  onnx::ModelProto model = onnxgen::NewModel("align", "braid-align");
  auto* temperature = model.add_metadata_props();
  temperature->set_key("braid.align.temperature");
  temperature->set_value(fmt::format("{}", heads.temperature()));
  onnxgen::GraphBuilder g(model.mutable_graph(), 0);
  onnxgen::BuildAlignGraph(g, heads.input_dim(), heads.output_dim(),
                           [&](onnxgen::GraphBuilder& g, const std::string& modality,
                               const std::string& weight, const std::string& bias) {
                             const bool image = modality == "image";
                             g.Floats(weight, {heads.input_dim(), heads.output_dim()},
                                      Values(image ? heads.image_weight : heads.text_weight));
                             g.Floats(bias, {heads.output_dim()},
                                      Values(image ? heads.image_bias : heads.text_bias));
                           });
  return onnxgen::CheckAndWriteModel(model, path);
}

Result<EmbeddingPairs> RunAlignModel(const std::filesystem::path& path,
                                     const EmbeddingPairs& pairs) {
  std::error_code error;
  if (!std::filesystem::is_regular_file(path, error)) {
    return NotFound("{}: no such model file", path.string());
  }
  // The served config, with the output width left open so that any head
  // width runs.
  ModelConfig config;
  config.name = "align";
  config.directory = path.parent_path();
  config.backend = kOnnxRuntimeBackend;
  config.max_batch_size = kRunBatch;
  config.default_model_filename = path.filename().string();
  for (const std::string modality : {"image", "text"}) {
    config.inputs.push_back({modality + "_embeds", DataType::kFp32, {pairs.dim()}});
    config.outputs.push_back({modality + "_aligned", DataType::kFp32, {-1}});
  }
  auto instances = MakeOnnxRuntimeBackend()(config, config.directory);
  if (!instances.ok()) {
    return InvalidArgument("{} is not an align model for {}-dimensional embeddings: {}",
                           path.string(), pairs.dim(), instances.status().message());
  }
  ModelInstance& instance = *instances->front();

  EmbeddingPairs out;
  for (std::int64_t start = 0; start < pairs.count(); start += kRunBatch) {
    const std::int64_t rows = std::min(kRunBatch, pairs.count() - start);
    std::vector<Tensor> inputs, outputs;
    BRAID_ASSIGN_OR_RETURN(Tensor images, ToTensor(pairs.images.middleRows(start, rows)));
    BRAID_ASSIGN_OR_RETURN(Tensor texts, ToTensor(pairs.texts.middleRows(start, rows)));
    inputs.push_back(std::move(images));
    inputs.push_back(std::move(texts));
    BRAID_RETURN_IF_ERROR(instance.Execute(inputs, &outputs));
    if (outputs.size() != 2 || outputs[0].shape() != outputs[1].shape()) {
      return InvalidArgument("{}: the image and text heads give outputs of different shapes",
                             path.string());
    }
    const std::int64_t width = outputs[0].shape().back();
    if (start == 0) {
      out.images.resize(pairs.count(), width);
      out.texts.resize(pairs.count(), width);
    }
    out.images.middleRows(start, rows) =
        Eigen::Map<const Matrix>(outputs[0].span<float>().data(), rows, width);
    out.texts.middleRows(start, rows) =
        Eigen::Map<const Matrix>(outputs[1].span<float>().data(), rows, width);
  }
  return out;
}

Status ExportTextEmbedModel(const TextEncoder& encoder, const std::filesystem::path& dir) {
  std::error_code error;
  std::filesystem::create_directories(dir, error);
  if (error) return Internal("cannot create {}: {}", dir.string(), error.message());
  onnx::ModelProto model = onnxgen::NewModel("text-embed", "braid-textembed");
  onnxgen::GraphBuilder g(model.mutable_graph(), 0);
  onnxgen::BuildTextEmbedGraph(g, static_cast<std::int64_t>(encoder.spec.max_features),
                               encoder.spec.rows(), encoder.dim(), Values(encoder.table));
  BRAID_RETURN_IF_ERROR(onnxgen::CheckAndWriteModel(model, dir / "model.onnx"));
  return WriteFile(dir / "tokenizer.json", NgramTokenizerJson(encoder.spec));
}

}  // namespace braid::align
