// Writing ONNX models with libonnx: a small builder for graphs, and the
// model envelope (IR version, opset, checker) every braid-written model uses.
// Used by tools/modelgen for the bundled stand-ins and by `braid align train`
// for the trained alignment heads.
#pragma once

#include <onnx/onnx_pb.h>

#include <cstdint>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "core/status.h"

namespace braid::onnxgen {

inline constexpr std::int64_t kOpset = 17;  // LayerNormalization needs 17

// Builds one ONNX graph. Weights come from a seeded mt19937, whose output
// sequence the C++ standard fixes, so the same calls write identical files.
class GraphBuilder {
 public:
  GraphBuilder(onnx::GraphProto* graph, std::uint32_t seed) : graph_(graph), random_(seed) {}

  // A dim below 0 is variable, named by `names` where it gives a name, else
  // "batch" for the first and "dimN" for the others.
  void Input(const std::string& name, int type, const std::vector<std::int64_t>& dims,
             const std::vector<std::string>& names = {});
  void Output(const std::string& name, int type, const std::vector<std::int64_t>& dims,
              const std::vector<std::string>& names = {});

  // A weight drawn uniformly from [-scale*sqrt(3), scale*sqrt(3)] (std `scale`).
  std::string Weight(const std::string& name, const std::vector<std::int64_t>& dims, float scale);
  // A weight matrix [fan_in, fan_out] scaled to keep activations near unit variance.
  std::string Linear(const std::string& name, std::int64_t fan_in, std::int64_t fan_out);
  std::string Filled(const std::string& name, const std::vector<std::int64_t>& dims, float value);
  // An FP32 initializer holding `values` (row-major, as many as `dims` hold).
  std::string Floats(const std::string& name, const std::vector<std::int64_t>& dims,
                     const std::vector<float>& values);
  std::string Ints(const std::string& name, const std::vector<std::int64_t>& values);
  std::string Scalar(const std::string& name, float value) { return Floats(name, {}, {value}); }

  // Adds a node; `output` names its output, otherwise a fresh name is made.
  onnx::NodeProto* Node(const std::string& op, const std::vector<std::string>& inputs,
                        const std::string& output = "");
  // Node() returning the name of the node's output.
  std::string Op(const std::string& op, const std::vector<std::string>& inputs,
                 const std::string& output = "") {
    return Node(op, inputs, output)->output(0);
  }

  static void SetInt(onnx::NodeProto* node, const std::string& name, std::int64_t value);
  static void SetInts(onnx::NodeProto* node, const std::string& name,
                      const std::vector<std::int64_t>& values);
  static void SetFloat(onnx::NodeProto* node, const std::string& name, float value);
  // Adds a graph attribute (an If's branch, named `name`) and returns the graph to build.
  static onnx::GraphProto* SetGraph(onnx::NodeProto* node, const std::string& name);

 private:
  onnx::GraphProto* graph_;
  std::mt19937 random_;
  int next_id_ = 0;
};

// An empty model with braid's IR version and opset, its graph named `name`.
onnx::ModelProto NewModel(const std::string& name, const std::string& producer = "braid-modelgen");

// Runs the ONNX checker on `model` and writes it to `path`. InvalidArgument
// when the checker rejects it, Internal when the file cannot be written.
Status CheckAndWriteModel(const onnx::ModelProto& model, const std::filesystem::path& path);

}  // namespace braid::onnxgen
