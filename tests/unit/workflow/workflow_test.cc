#include "workflow/workflow.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace braid {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

// A catalog with two models: "embed" (x → y) and "ocr" (image → text).
Result<std::vector<std::string>> Catalog(const std::string& model,
                                         const std::vector<std::string>& inputs) {
  std::map<std::string, std::pair<std::vector<std::string>, std::vector<std::string>>> models = {
      {"embed", {{"x"}, {"y"}}},
      {"ocr", {{"image"}, {"text"}}},
      {"align", {{"image_embeds", "text_embeds"}, {"image_aligned", "text_aligned"}}}};
  auto it = models.find(model);
  if (it == models.end()) return NotFound("unknown model '{}'", model);
  for (const auto& input : inputs) {
    if (std::find(it->second.first.begin(), it->second.first.end(), input) ==
        it->second.first.end()) {
      return InvalidArgument("model '{}' has no input '{}'", model, input);
    }
  }
  return it->second.second;
}

Result<WorkflowPtr> Parse(const std::string& yaml) {
  return ParseWorkflow(yaml, "w", "workflows/w.yaml", Catalog);
}

std::string ErrorOf(const std::string& yaml) {
  auto workflow = Parse(yaml);
  EXPECT_FALSE(workflow.ok()) << yaml;
  return workflow.ok() ? "" : workflow.status().message();
}

TEST(WorkflowTest, ParsesOrdersAndDerivesEdges) {
  auto workflow = Parse(R"(
inputs: {image: {type: image}, note: {type: text, optional: true}}
nodes:
  - {id: report, kind: template, template: "{{read.text}} / {{inputs.note?}}"}
  - {id: read, kind: model, model: ocr, from: {image: inputs.image}}
outputs: {report: report.text}
)");
  ASSERT_TRUE(workflow.ok()) << workflow.status().ToString();
  ASSERT_EQ((*workflow)->nodes.size(), 2u);
  EXPECT_EQ((*workflow)->nodes[0].id, "read") << "topological order";
  EXPECT_EQ((*workflow)->nodes[1].depends_on, std::vector<std::string>{"read"});
  EXPECT_TRUE((*workflow)->FindInput("note")->optional);
}

TEST(WorkflowTest, EachValidationErrorNamesFileNodeAndField) {
  const std::string head = "inputs: {image: {type: image}, text: {type: text}}\nnodes:\n";
  EXPECT_THAT(ErrorOf("nodes: [\n"),
              AllOf(HasSubstr("workflows/w.yaml"), HasSubstr("malformed YAML")));
  EXPECT_THAT(ErrorOf(head + "  - {id: a, kind: teleport}\n"),
              AllOf(HasSubstr("node 'a'"), HasSubstr("unknown kind 'teleport'")));
  EXPECT_THAT(ErrorOf(head + "  - {id: a, kind: model, model: embed, from: {x: b.y}}\n"),
              AllOf(HasSubstr("node 'a' field 'x'"), HasSubstr("missing node 'b'")));
  EXPECT_THAT(ErrorOf(head + "  - {id: a, kind: model, model: ocr, from: {image: inputs.photo}}\n"),
              HasSubstr("missing input 'photo'"));
  EXPECT_THAT(ErrorOf(head + "  - {id: a, kind: model, model: gpt9, from: {x: inputs.text}}\n"),
              AllOf(HasSubstr("node 'a' field 'model'"), HasSubstr("unknown model 'gpt9'")));
  EXPECT_THAT(ErrorOf(head + "  - {id: a, kind: model, model: ocr, from: {image: inputs.image}}\n"
                             "  - {id: b, kind: model, model: embed, from: {x: a.words}}\n"),
              HasSubstr("'a.words', which node 'a' does not produce (it has: text)"));
  EXPECT_THAT(ErrorOf(head + "  - {id: a, kind: model, model: embed, from: {x: b.y}}\n"
                             "  - {id: b, kind: model, model: embed, from: {x: a.y}}\n"),
              HasSubstr("form a cycle"));
  EXPECT_THAT(ErrorOf(head + "  - {id: a, kind: preprocess.image, from: {image: inputs.text}}\n"),
              AllOf(HasSubstr("node 'a'"), HasSubstr("text input 'text'; it needs image")));
  EXPECT_THAT(ErrorOf(head + "  - {id: a, kind: similarity, from: {a: inputs.text}}\n"),
              HasSubstr("needs 'from.b'"));
  EXPECT_THAT(ErrorOf(head + "  - {id: a, kind: template, template: x, colour: red}\n"),
              HasSubstr("unknown field 'colour'"));
  EXPECT_THAT(ErrorOf(head + "  - {id: a, kind: template, template: x}\n  - {id: b, kind: "
                             "template, template: y, if: a}\n"),
              HasSubstr("must name a condition node"));
  EXPECT_THAT(
      ErrorOf(
          head +
          "  - {id: a, kind: template, template: x}\n  - {id: a, kind: template, template: y}\n"),
      HasSubstr("used twice"));
  EXPECT_THAT(
      ErrorOf("inputs: {x: {type: video}}\nnodes: [{id: a, kind: template, template: x}]\n"),
      HasSubstr("type 'video'"));
  EXPECT_THAT(ErrorOf(head + "  - {id: a, kind: template, template: x}\noutputs: {r: a.nothing}\n"),
              HasSubstr("output 'r'"));
  EXPECT_THAT(ErrorOf(head + "  - {id: a, kind: template, template: \"{{sys.user}}\"}\n"),
              HasSubstr("sys offers only query"));
  EXPECT_THAT(ErrorOf(head + "  - {id: sys, kind: template, template: x}\n"),
              HasSubstr("reserved"));
  EXPECT_THAT(ErrorOf(head + "  - {id: a, kind: model, model: embed, priority: high, "
                             "from: {x: inputs.text}}\n"),
              AllOf(HasSubstr("node 'a'"), HasSubstr("'priority' must be an integer")));
  EXPECT_THAT(ErrorOf(head + "  - {id: a, kind: model, model: embed, priority: 1001, "
                             "from: {x: inputs.text}}\n"),
              HasSubstr("priority 1001 is out of range (0..1000)"));
  EXPECT_TRUE(Parse(head + "  - {id: a, kind: model, model: embed, priority: 7, "
                           "from: {x: inputs.text}}\n")
                  .ok());
}

// {{ NAME }} with spaces or none around NAME, which has neither spaces nor
// '}'; anything else is left as text.
TEST(WorkflowTest, FindsEachPlaceholderWhereItStands) {
  const std::string text = "{{a.x}} and {{  b.y? }}, {{ }} {{c d}} {{{e.f}} {{g.h}";
  const auto found = FindPlaceholders(text);
  ASSERT_EQ(found.size(), 3u);
  EXPECT_EQ(found[0].reference, "a.x");
  EXPECT_EQ(text.substr(found[0].position, found[0].length), "{{a.x}}");
  EXPECT_EQ(found[1].reference, "b.y?");
  EXPECT_EQ(text.substr(found[1].position, found[1].length), "{{  b.y? }}");
  EXPECT_EQ(found[2].reference, "{e.f");
  EXPECT_EQ(text.substr(found[2].position, found[2].length), "{{{e.f}}");
  EXPECT_TRUE(FindPlaceholders("no {{ placeholders }here").empty());
}

// A project node maps the towers it is given, one or both, and produces
// only those (an embedding pipeline projects one vector).
TEST(WorkflowTest, AProjectNodeTakesEitherTowerOrBoth) {
  const std::string head =
      "inputs: {text: {type: text}}\nnodes:\n"
      "  - {id: e, kind: model, model: embed, from: {x: inputs.text}}\n";
  auto one = Parse(head + "  - {id: p, kind: project, from: {text: e.y}}\noutputs: {v: p.text}\n");
  ASSERT_TRUE(one.ok()) << one.status().ToString();
  EXPECT_TRUE(Parse(head + "  - {id: p, kind: project, from: {image: e.y, text: e.y}}\n"
                           "outputs: {i: p.image, t: p.text}\n")
                  .ok());
  EXPECT_THAT(
      ErrorOf(head + "  - {id: p, kind: project, from: {text: e.y}}\noutputs: {v: p.image}\n"),
      HasSubstr("output 'v'"));
  EXPECT_THAT(ErrorOf(head + "  - {id: p, kind: project, from: {audio: e.y}}\n"),
              HasSubstr("takes 'image' and 'text', not 'audio'"));
  EXPECT_THAT(ErrorOf(head + "  - {id: p, kind: project}\n"), HasSubstr("needs 'from.image'"));
}

}  // namespace
}  // namespace braid
