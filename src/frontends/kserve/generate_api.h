// The KServe generate extension (Triton's, which Dify's Triton provider
// calls) for workflows:
//   POST /v2/models/{workflow}[/versions/{v}]/generate
//        {"text_input": "...", "parameters": {"max_tokens", "stop", ...},
//         INPUT: "text" | "data:...;base64,..."}
//        → {"model_name", "model_version", "text_output"}
//   POST .../generate_stream → SSE `data: {"model_name", "model_version",
//        "text_output": PIECE}` per streamed piece, the last with
//        "finish_reason"; an error as `data: {"error": "..."}`.
// `text_input` goes to the workflow's first text input or, without one, to
// `sys.query`; other top-level keys naming workflow inputs fill them (media
// as data URLs); sampling parameters (temperature, top_p, ...) are accepted
// and ignored, as the workflow's answer does not sample. A request that
// lacks a required input (Dify's credential check sends only text) is
// answered with what the workflow needs.
// A model whose inputs are all BYTES and which has a BYTES output (ocr, asr)
// is served too: keys name its inputs (text_input fills a lone input), data
// URLs are decoded, and text_output is its first BYTES output.
#pragma once

#include <rapidjson/document.h>

#include "frontends/http/http_server.h"
#include "frontends/http/route_table.h"
#include "serving/inference_service.h"
#include "workflow/registry.h"

namespace braid {

class GenerateApi {
 public:
  // Everything passed must outlive the API.
  GenerateApi(const WorkflowRegistry& workflows, InferenceService& service);

  // Adds POST /v2/models/{model}[/versions/{version}]/generate and
  // generate_stream to `routes`.
  void AddRoutes(RouteTable& routes);

 private:
  void Generate(const std::string& model, bool stream, HttpRequest& request,
                HttpResponderPtr responder);
  // A model's text answer (not a workflow).
  void GenerateFromModel(const std::string& name, bool stream, const rapidjson::Value& doc,
                         HttpResponderPtr responder);

  const WorkflowRegistry& workflows_;
  InferenceService& service_;
};

}  // namespace braid
