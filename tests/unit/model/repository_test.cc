#include "model/repository.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "backends/backends.h"
#include "core/file_util.h"
#include "support/temp_dir.h"

namespace braid {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

const std::filesystem::path kIdentityOnnx =
    std::filesystem::path(BRAID_TEST_MODELS) / "identity/1/model.onnx";

std::string IdentityConfig(
    const std::string& input_line = "{name: input, datatype: FP32, dims: [16]}",
    const std::string& extra = "") {
  return "backend: onnxruntime\nmax_batch_size: 8\ninputs: [" + input_line +
         "]\noutputs: [{name: output, datatype: FP32, dims: [16]}]\n" + extra;
}

class RepositoryTest : public ::testing::Test {
 protected:
  RepositoryTest() { RegisterBuiltinBackends(backends_); }

  // Writes models/<name>/config.yaml and copies the identity ONNX file into
  // each listed version folder.
  void AddModel(const std::string& name, const std::string& config,
                std::vector<int> versions = {1}) {
    dir_.Write(name + "/config.yaml", config);
    for (int version : versions) {
      auto target = dir_.path() / name / std::to_string(version) / "model.onnx";
      std::filesystem::create_directories(target.parent_path());
      std::filesystem::copy_file(kIdentityOnnx, target);
    }
  }

  ModelVersionStatus StatusOf(const ModelRepository& repository, const std::string& name) {
    for (const auto& status : repository.Index()) {
      if (status.name == name) return status;
    }
    ADD_FAILURE() << "no model " << name << " in the index";
    return {};
  }

  testing::TempDir dir_;
  BackendRegistry backends_;
};

TEST_F(RepositoryTest, FailingModelsDoNotStopTheOthers) {
  AddModel("good", IdentityConfig());
  AddModel("missing_file", IdentityConfig(), {});
  std::filesystem::create_directories(dir_.path() / "missing_file/1");
  AddModel("no_versions", IdentityConfig(), {});
  dir_.Write("corrupt/config.yaml", IdentityConfig());
  dir_.Write("corrupt/1/model.onnx", "this is not a protobuf");
  AddModel("bad_yaml", "backend: onnxruntime\ninputs: [{name: x\n");
  AddModel("unknown_backend",
           "backend: tensorflow\nmax_batch_size: 1\n"
           "inputs: [{name: input, datatype: FP32, dims: [16]}]\n"
           "outputs: [{name: output, datatype: FP32, dims: [16]}]\n");
  AddModel("wrong_dims", IdentityConfig("{name: input, datatype: FP32, dims: [17]}"));
  AddModel("wrong_name", IdentityConfig("{name: pixels, datatype: FP32, dims: [16]}"));
  AddModel("wrong_type", IdentityConfig("{name: input, datatype: INT64, dims: [16]}"));
  AddModel("cuda", IdentityConfig("{name: input, datatype: FP32, dims: [16]}",
                                  "optimization: {execution_provider: cuda}\n"));

  ModelRepository repository(dir_.path(), backends_);
  ASSERT_TRUE(repository.LoadAll().ok());

  EXPECT_EQ(StatusOf(repository, "good").state, ModelState::kReady);
  EXPECT_TRUE(repository.Get("good").ok());

  auto reason = [&](const std::string& name) {
    auto status = StatusOf(repository, name);
    EXPECT_EQ(status.state, ModelState::kUnavailable) << name;
    return status.reason;
  };
  EXPECT_THAT(reason("missing_file"),
              AllOf(HasSubstr("missing_file/1/model.onnx"), HasSubstr("missing")));
  EXPECT_THAT(reason("no_versions"), HasSubstr("no version folder"));
  EXPECT_THAT(reason("corrupt"),
              AllOf(HasSubstr("corrupt/1/model.onnx"), HasSubstr("cannot load")));
  EXPECT_THAT(reason("bad_yaml"),
              AllOf(HasSubstr("bad_yaml/config.yaml"), HasSubstr("malformed YAML")));
  EXPECT_THAT(reason("unknown_backend"),
              AllOf(HasSubstr("'tensorflow'"), HasSubstr("onnxruntime")));
  EXPECT_THAT(reason("wrong_dims"),
              AllOf(HasSubstr("wrong_dims/config.yaml"), HasSubstr("inputs[0] 'input'"),
                    HasSubstr("[17]"), HasSubstr("1/model.onnx")));
  EXPECT_THAT(reason("wrong_name"),
              AllOf(HasSubstr("'pixels' is not declared"), HasSubstr("[input]")));
  EXPECT_THAT(reason("wrong_type"), AllOf(HasSubstr("INT64"), HasSubstr("declares FP32")));
  EXPECT_THAT(reason("cuda"), AllOf(HasSubstr("CUDAExecutionProvider"), HasSubstr("lacks")));

  auto unavailable = repository.Get("corrupt");
  ASSERT_FALSE(unavailable.ok());
  EXPECT_EQ(unavailable.status().code(), StatusCode::kUnavailable);
  auto unknown = repository.Get("nope");
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.status().code(), StatusCode::kNotFound);
}

TEST_F(RepositoryTest, LatestVersionByDefaultAndSpecificOnRequest) {
  AddModel("latest", IdentityConfig(), {1, 3, 2});
  AddModel(
      "two",
      IdentityConfig("{name: input, datatype: FP32, dims: [16]}", "version_policy: {latest: 2}\n"),
      {1, 2, 3});
  AddModel("pinned",
           IdentityConfig("{name: input, datatype: FP32, dims: [16]}",
                          "version_policy: {specific: [1]}\n"),
           {1, 2});
  AddModel("pinned_missing", IdentityConfig("{name: input, datatype: FP32, dims: [16]}",
                                            "version_policy: {specific: [7]}\n"));
  ModelRepository repository(dir_.path(), backends_);
  ASSERT_TRUE(repository.LoadAll().ok());

  EXPECT_EQ((*repository.Get("latest"))->version(), 3);
  EXPECT_EQ(repository.Get("latest", 1).status().code(), StatusCode::kNotFound);
  EXPECT_EQ((*repository.Get("two"))->version(), 3);
  EXPECT_EQ((*repository.Get("two", 2))->version(), 2);
  EXPECT_EQ((*repository.Get("pinned"))->version(), 1);
  EXPECT_THAT(StatusOf(repository, "pinned_missing").reason, HasSubstr("version 7"));
}

TEST_F(RepositoryTest, LoadUnloadReload) {
  AddModel("m", IdentityConfig());
  ModelRepository repository(dir_.path(), backends_);
  ASSERT_TRUE(repository.Load("m").ok());
  ModelPtr first = *repository.Get("m");
  EXPECT_EQ(first->instance_count(), 1u);

  ASSERT_TRUE(repository.Unload("m").ok());
  EXPECT_EQ(repository.Get("m").status().code(), StatusCode::kUnavailable);
  EXPECT_THAT(StatusOf(repository, "m").reason, HasSubstr("unloaded"));
  // A request that already holds the model can still run on it.
  auto input = *Tensor::Allocate(DataType::kFp32, {1, 16});
  std::vector<Tensor> outputs;
  EXPECT_TRUE(first->Execute(0, std::vector<Tensor>{input}, &outputs).ok());

  // Reload with a changed config: the new instances replace the old ones.
  dir_.Write("m/config.yaml", IdentityConfig("{name: input, datatype: FP32, dims: [16]}",
                                             "instance_group: {count: 2}\n"));
  ASSERT_TRUE(repository.Load("m").ok());
  EXPECT_EQ((*repository.Get("m"))->instance_count(), 2u);

  // A failed reload keeps the loaded version serving and records why.
  dir_.Write("m/config.yaml", "backend: [\n");
  EXPECT_FALSE(repository.Load("m").ok());
  EXPECT_EQ((*repository.Get("m"))->instance_count(), 2u);
  EXPECT_EQ(StatusOf(repository, "m").state, ModelState::kReady);
  EXPECT_THAT(StatusOf(repository, "m").reason, HasSubstr("malformed YAML"));
}

TEST_F(RepositoryTest, UnknownNamesAndUnreadableRoot) {
  ModelRepository repository(dir_.path(), backends_);
  EXPECT_EQ(repository.Load("absent").code(), StatusCode::kNotFound);
  EXPECT_TRUE(repository.Index().empty()) << "a missing model leaves no entry behind";
  EXPECT_EQ(repository.Load("../escape").code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(repository.Unload("absent").code(), StatusCode::kNotFound);

  ModelRepository nowhere(dir_.path() / "does-not-exist", backends_);
  EXPECT_FALSE(nowhere.LoadAll().ok());
}

TEST(ListVersionsTest, OnlyPositiveNumericFolders) {
  testing::TempDir dir;
  for (auto name : {"1", "10", "2", "0", "-3", "v4", "07x"})
    std::filesystem::create_directories(dir.path() / name);
  dir.Write("5", "a file, not a folder");
  EXPECT_EQ(ListVersions(dir.path()), (std::vector<std::int64_t>{1, 2, 10}));
}

}  // namespace
}  // namespace braid
