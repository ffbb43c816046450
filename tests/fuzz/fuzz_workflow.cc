// Workflow YAML through parsing and DAG validation, against a catalog that
// knows the default models' inputs and outputs.
#include "workflow/workflow.h"

namespace {

braid::Result<std::vector<std::string>> Catalog(const std::string& model,
                                                const std::vector<std::string>&) {
  if (model == "clip-image") return std::vector<std::string>{"image_embeds"};
  if (model == "clip-text") return std::vector<std::string>{"text_embeds"};
  if (model == "align") return std::vector<std::string>{"image_aligned", "text_aligned"};
  if (model == "ocr") return std::vector<std::string>{"text", "words", "boxes", "confidences"};
  if (model == "asr") return std::vector<std::string>{"text", "words", "timings"};
  return braid::NotFound("no model '{}'", model);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  (void)braid::ParseWorkflow(std::string_view(reinterpret_cast<const char*>(data), size), "fuzzed",
                             "fuzzed.yaml", Catalog);
  return 0;
}
