// The `uvtrain` command line, end to end: every bad input of issue 2 point 8 (data files, config,
// checkpoint, device, diverging loss, an --out that holds a run) exits with code 2 and a message that
// names the file, field or value; resuming a run gives the same bits as an uninterrupted one; a
// finished run writes its summary and metrics. Every run uses a small synthetic MNIST-layout data set
// written into the test's own temporary directory, and a 784-32-10 model, so each test takes well
// under two seconds.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tests/cli_util.h"
#include "tests/test_util.h"
#include "engine/backend/backend.h"
#include "engine/checkpoint/safetensors.h"
#include "engine/data/idx.h"

extern char** environ;

namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using uv::data::IdxArray;
using uv::data::IdxCompression;

constexpr int kTrainCount = uv::test::kCliTrainCount;  // 6 batches of 50
constexpr int kTestCount = uv::test::kCliTestCount;
constexpr int kBatch = 50;

using uv::test::Bytes;
using uv::test::CliResult;
using uv::test::is_user_error;
using uv::test::read_bytes;
using uv::test::read_text;
using uv::test::run_cli;
using uv::test::succeeded;
using uv::test::write_bytes;
using uv::test::write_synthetic_mnist;
using uv::test::write_text;

// A fresh temporary directory per test holding data/ (the synthetic set) and a config for a
// 784-32(predicted, SE, 10%)-10 MLP; removed afterwards.
class CliFixture : public uv::test::TempDirTest {
 protected:
  void SetUp() override {
    TempDirTest::SetUp();
    fs::create_directories(data_dir());
    write_synthetic_mnist(data_dir(), 12345);
  }

  fs::path data_dir() const { return dir_ / "data"; }

  json base_config() const {
    return {{"name", "cli_test"},
            {"seed", 7},
            {"data", {{"dataset", "mnist"}, {"dir", data_dir().string()}}},
            {"model",
             {{"layers",
               {{{"type", "predicted_dense"}, {"units", 32}, {"dictionary", "se"}, {"fraction", 0.1}},
                {{"type", "dense"}, {"units", 10}, {"activation", "identity"}}}}}},
            {"train", {{"epochs", 1}, {"batch_size", kBatch}, {"lr", 0.1}}},
            {"log", {{"every_steps", 1}}}};
  }

  // Writes `config` to dir_/name and returns the path.
  std::string write_config(const json& config, const std::string& name = "config.json") const {
    const fs::path path = dir_ / name;
    std::ofstream(path) << config.dump(2) << "\n";
    return path.string();
  }

  // `uvtrain train --config <config> --out <dir_/run_name> extra...`, with `--device cpu` unless
  // `extra` names a device.
  CliResult train(const json& config, const std::string& run_name, const std::vector<std::string>& extra = {}) {
    std::vector<std::string> args = {"train", "--config", write_config(config, run_name + ".json"), "--out",
                                     run(run_name).string()};
    if (std::find(extra.begin(), extra.end(), "--device") == extra.end()) {
      args.push_back("--device");
      args.push_back("cpu");
    }
    args.insert(args.end(), extra.begin(), extra.end());
    return run_cli(args);
  }

  fs::path run(const std::string& name) const { return dir_ / name; }

  // The rows of run `name`'s metrics.jsonl whose kind is one of `kinds`.
  std::vector<json> metrics_rows(const std::string& name, const std::vector<std::string>& kinds) const {
    std::vector<json> out;
    std::ifstream metrics(run(name) / "metrics.jsonl");
    for (std::string line; std::getline(metrics, line);) {
      json row = json::parse(line);
      if (std::find(kinds.begin(), kinds.end(), row["kind"].get<std::string>()) != kinds.end()) out.push_back(row);
    }
    return out;
  }
};

using CliData = CliFixture;
using CliConfig = CliFixture;
using CliCheckpoint = CliFixture;
using CliDevice = CliFixture;
using CliDiverge = CliFixture;
using CliOut = CliFixture;
using CliResume = CliFixture;
using CliRun = CliFixture;

// ---------------------------------------------------------------------------------------------------
// Data files
// ---------------------------------------------------------------------------------------------------

TEST_F(CliData, MissingFilesNameTheFileAndMakeData) {
  const fs::path empty = dir_ / "empty";
  fs::create_directories(empty);
  json config = base_config();
  config["data"]["dir"] = empty.string();
  EXPECT_TRUE(is_user_error(train(config, "run"),
                            {(empty / "train-images-idx3-ubyte").string(), "not found", "make data"}));
}

TEST_F(CliData, MissingDirectoryNamesTheDirectory) {
  json config = base_config();
  config["data"]["dir"] = (dir_ / "no_such_dir").string();
  EXPECT_TRUE(is_user_error(train(config, "run"), {(dir_ / "no_such_dir").string(), "make data"}));
}

TEST_F(CliData, TruncatedImagesFile) {
  const fs::path images = data_dir() / "train-images-idx3-ubyte";
  fs::resize_file(images, fs::file_size(images) - 1000);
  EXPECT_TRUE(is_user_error(train(base_config(), "run"), {images.string(), "truncated"}));
}

TEST_F(CliData, WrongMagic) {
  const fs::path images = data_dir() / "t10k-images-idx3-ubyte";
  Bytes bytes = read_bytes(images);
  bytes[0] = 0x12;
  bytes[1] = 0x34;
  write_bytes(images, bytes);
  EXPECT_TRUE(is_user_error(train(base_config(), "run"), {images.string(), "wrong magic", "12 34"}));
}

TEST_F(CliData, LabelOutOfRangeNamesIndexAndValue) {
  const fs::path labels = data_dir() / "train-labels-idx1-ubyte";
  Bytes bytes = read_bytes(labels);
  bytes[8 + 17] = 10;  // header: 4 magic bytes, one u32 count
  write_bytes(labels, bytes);
  EXPECT_TRUE(is_user_error(train(base_config(), "run"), {labels.string(), "label 10 at index 17"}));
}

TEST_F(CliData, ImageAndLabelCountsDiffer) {
  const fs::path labels = data_dir() / "train-labels-idx1-ubyte";
  IdxArray fewer;
  fewer.dims = {kTrainCount - 1};
  fewer.values.assign(kTrainCount - 1, 3);
  uv::data::write_idx(labels.string(), fewer, IdxCompression::kRaw);
  EXPECT_TRUE(is_user_error(train(base_config(), "run"),
                            {(data_dir() / "train-images-idx3-ubyte").string(), labels.string(),
                             std::to_string(kTrainCount) + " images", std::to_string(kTrainCount - 1) + " labels"}));
}

TEST_F(CliData, Cifar10MissingDirectoryNamesThePathAndSaysNotBundled) {
  json config = base_config();
  config["data"]["dataset"] = "cifar10";
  config["data"]["dir"] = (dir_ / "no_cifar").string();
  EXPECT_TRUE(is_user_error(train(config, "run"), {(dir_ / "no_cifar").string(), "not bundled"}));
  // Without a dir the default is data/cifar10, relative to the working directory.
  config["data"]["dir"] = "";
  if (!fs::exists("data/cifar10")) {
    EXPECT_TRUE(is_user_error(train(config, "run_default"), {"'data/cifar10'", "not bundled"}));
  }
}

TEST_F(CliData, Stl10MissingFileNamesThePath) {
  const fs::path stl = dir_ / "stl";
  fs::create_directories(stl);
  json config = base_config();
  config["data"]["dataset"] = "stl10";
  config["data"]["dir"] = stl.string();
  EXPECT_TRUE(is_user_error(train(config, "run"), {(stl / "train_X.bin").string(), "not found", "not bundled"}));
}

// A 32x32x3 set in CIFAR-10's binary layout trains end to end: the SE dictionary of layer 1 is
// built over (row, col, channel) coordinates of 3072 HWC inputs.
TEST_F(CliData, Cifar10SyntheticSetTrains) {
  const fs::path cifar = dir_ / "cifar";
  fs::create_directories(cifar);
  std::mt19937 rng(4321);
  std::uniform_int_distribution<int> byte(0, 255), label(0, 9);
  const auto write_batch = [&](const std::string& name, int records) {
    Bytes bytes;
    for (int i = 0; i < records; ++i) {
      bytes.push_back(static_cast<uint8_t>(label(rng)));
      for (int p = 0; p < 3072; ++p) bytes.push_back(static_cast<uint8_t>(byte(rng)));
    }
    write_bytes(cifar / name, bytes);
  };
  for (int b = 1; b <= 5; ++b) write_batch("data_batch_" + std::to_string(b) + ".bin", kBatch / 5 * 2);
  write_batch("test_batch.bin", kBatch);
  json config = base_config();
  config["data"]["dataset"] = "cifar10";
  config["data"]["dir"] = cifar.string();
  const CliResult result = train(config, "run");
  ASSERT_TRUE(succeeded(result));
  const json summary = json::parse(read_text(run("run") / "summary.json"));
  EXPECT_EQ(summary.at("layers")[0].at("in"), 3072);
  EXPECT_EQ(summary.at("steps"), 2);  // 5 batches of 20 records, minibatch 50
}

// ---------------------------------------------------------------------------------------------------
// Config
// ---------------------------------------------------------------------------------------------------

TEST_F(CliConfig, UnknownTopLevelKey) {
  json config = base_config();
  config["learning_rate"] = 0.1;
  const std::string path = (dir_ / "run.json").string();
  EXPECT_TRUE(is_user_error(train(config, "run"), {path, "unknown key 'learning_rate'"}));
}

TEST_F(CliConfig, UnknownKeyInsideALayerNamesTheDottedPath) {
  json config = base_config();
  config["model"]["layers"][0]["fractoin"] = 0.2;
  EXPECT_TRUE(is_user_error(train(config, "run"), {(dir_ / "run.json").string(), "'model.layers[0].fractoin'"}));
}

TEST_F(CliConfig, FractionOutsideZeroOne) {
  for (const double fraction : {0.0, 1.5, -0.1}) {
    SCOPED_TRACE(fraction);
    json config = base_config();
    config["model"]["layers"][0]["fraction"] = fraction;
    std::ostringstream value;
    value << "'model.layers[0].fraction' = " << json(fraction).dump() << " is outside (0, 1]";
    EXPECT_TRUE(is_user_error(train(config, "run"), {value.str()}));
  }
}

TEST_F(CliConfig, FractionOneIsAccepted) {
  json config = base_config();
  config["model"]["layers"][0]["fraction"] = 1.0;
  EXPECT_TRUE(succeeded(train(config, "run", {"--epochs", "0"})));
}

TEST_F(CliConfig, RankLargerThanTheLayerInput) {
  json config = base_config();
  config["model"]["layers"] = {
      {{"type", "predicted_dense"}, {"units", 32}, {"dictionary", "se"}},
      {{"type", "predicted_dense"}, {"units", 16}, {"dictionary", "randfixu"}, {"rank", 33}},
      {{"type", "dense"}, {"units", 10}, {"activation", "identity"}}};
  EXPECT_TRUE(is_user_error(train(config, "run"), {"'model.layers[1].rank' = 33", "32 inputs"}));
  // The largest legal rank trains.
  config["model"]["layers"][1]["rank"] = 32;
  EXPECT_TRUE(succeeded(train(config, "run_ok", {"--epochs", "0"})));
}

TEST_F(CliConfig, UnknownNamesForStrategyActivationDictionary) {
  struct Case {
    const char* field;
    const char* value;
  };
  for (const Case& c : {Case{"strategy", "fused"}, Case{"activation", "softplus"}, Case{"dictionary", "gauss"},
                        Case{"dictionary_precision", "fp16"}}) {
    SCOPED_TRACE(c.field);
    json config = base_config();
    config["model"]["layers"][0][c.field] = c.value;
    EXPECT_TRUE(is_user_error(train(config, "run"), {"'model.layers[0]." + std::string(c.field) + "' = \"" +
                                                         c.value + "\" is not one of"}));
  }
}

// The README's command: dictionary_precision set through --set, said in the log and the
// dictionary's metrics row; float32 unless set.
TEST_F(CliConfig, DictionaryPrecisionIsSetAndReported) {
  const CliResult result =
      train(base_config(), "tf32", {"--epochs", "0", "--set", "model.layers[0].dictionary_precision=tf32"});
  ASSERT_TRUE(succeeded(result)) << result.output;
  EXPECT_NE(result.output.find("rounded to TF32"), std::string::npos) << result.output;
  std::vector<json> rows = metrics_rows("tf32", {"dictionary"});
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0]["precision"], "tf32");
  ASSERT_TRUE(succeeded(train(base_config(), "float32", {"--epochs", "0"})));
  rows = metrics_rows("float32", {"dictionary"});
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0]["precision"], "float32");
}

TEST_F(CliConfig, WrongTypeNamesFieldAndValue) {
  json config = base_config();
  config["train"]["lr"] = "fast";
  EXPECT_TRUE(is_user_error(train(config, "run"), {"'train.lr' must be a number", "\"fast\""}));
}

TEST_F(CliConfig, InvalidJsonNamesTheFile) {
  const fs::path path = dir_ / "broken.json";
  write_text(path, "{\"name\": \"x\",\n  \"train\": {\"lr\": 0.1,,}\n}\n");
  const CliResult result = run_cli({"train", "--config", path.string(), "--out", run("run").string()});
  EXPECT_TRUE(is_user_error(result, {path.string(), "not valid JSON"}));
  EXPECT_FALSE(fs::exists(run("run"))) << "a rejected config must not leave a run directory";
}

TEST_F(CliConfig, CommentsAreAllowed) {
  const std::string text = "// a comment\n" + base_config().dump(2) + "\n/* trailing */\n";
  const fs::path path = dir_ / "commented.json";
  write_text(path, text);
  EXPECT_TRUE(succeeded(run_cli({"train", "--config", path.string(), "--device", "cpu", "--epochs", "0",
                                 "--out", run("run").string()})));
}

TEST_F(CliConfig, MissingConfigFile) {
  const std::string path = (dir_ / "no_such_config.json").string();
  const CliResult result = run_cli({"train", "--config", path, "--out", run("run").string()});
  EXPECT_EQ(result.exit_code, 2) << result.output;
  EXPECT_NE(result.output.find(path), std::string::npos) << result.output;
}

TEST_F(CliConfig, SetWithoutEquals) {
  EXPECT_TRUE(is_user_error(train(base_config(), "run", {"--set", "train.lr"}),
                            {"--set", "expected key=value", "'train.lr'"}));
}

TEST_F(CliConfig, SetUnknownPath) {
  EXPECT_TRUE(is_user_error(train(base_config(), "run", {"--set", "train.lrr=0.5"}), {"'train.lrr'"}));
  EXPECT_TRUE(is_user_error(train(base_config(), "run", {"--set", "trian.lr=0.5"}), {"'trian'"}));
  EXPECT_TRUE(is_user_error(train(base_config(), "run", {"--set", "model.layers[5].fraction=0.5"}),
                            {"index 5", "past the end"}));
}

TEST_F(CliConfig, SetValueIsValidated) {
  EXPECT_TRUE(is_user_error(train(base_config(), "run", {"--set", "model.layers[0].fraction=2"}),
                            {"'model.layers[0].fraction' = 2 is outside (0, 1]"}));
  EXPECT_TRUE(is_user_error(train(base_config(), "run", {"--set", "train.lr=fast"}),
                            {"'train.lr' must be a number"}));
}

// A field whose section the config file leaves to the defaults can still be set from the command line.
TEST_F(CliConfig, SetReachesDefaultedSections) {
  json config = base_config();
  config.erase("log");
  config.erase("train");
  ASSERT_TRUE(succeeded(train(config, "run", {"--set", "log.every_steps=2", "--set", "train.batch_size=50",
                                              "--epochs", "1"})));
  const json resolved = json::parse(read_text(run("run") / "config.json"));
  EXPECT_EQ(resolved["log"]["every_steps"], 2);
  EXPECT_EQ(resolved["train"]["epochs"], 1);
}

// ---------------------------------------------------------------------------------------------------
// Checkpoints
// ---------------------------------------------------------------------------------------------------

TEST_F(CliCheckpoint, TruncatedCheckpointOnResume) {
  ASSERT_TRUE(succeeded(train(base_config(), "run")));
  const fs::path checkpoint = run("run") / "checkpoint.safetensors";
  fs::resize_file(checkpoint, fs::file_size(checkpoint) / 2);
  EXPECT_TRUE(is_user_error(run_cli({"train", "--resume", run("run").string(), "--epochs", "2"}),
                            {"corrupt checkpoint", checkpoint.string()}));
}

TEST_F(CliCheckpoint, OverwrittenHeaderOnResume) {
  ASSERT_TRUE(succeeded(train(base_config(), "run")));
  const fs::path checkpoint = run("run") / "checkpoint.safetensors";
  Bytes bytes = read_bytes(checkpoint);
  for (size_t i = 8; i < 24; ++i) bytes[i] = 0xff;  // the start of the JSON header
  write_bytes(checkpoint, bytes);
  EXPECT_TRUE(is_user_error(run_cli({"train", "--resume", run("run").string(), "--epochs", "2"}),
                            {"corrupt checkpoint", checkpoint.string()}));
}

TEST_F(CliCheckpoint, ResumeWithoutCheckpoint) {
  fs::create_directories(run("empty"));
  EXPECT_TRUE(is_user_error(run_cli({"train", "--resume", run("empty").string()}), {run("empty").string()}));
}

// ---------------------------------------------------------------------------------------------------
// Devices
// ---------------------------------------------------------------------------------------------------

TEST_F(CliDevice, CudaWithoutAGpu) {
  if (uv::query_devices().cuda_devices > 0) GTEST_SKIP() << "this machine has a CUDA device";
  EXPECT_TRUE(is_user_error(train(base_config(), "run", {"--device", "cuda"}),
                            {"--device cuda", "no usable CUDA device"}));
  EXPECT_FALSE(fs::exists(run("run") / "checkpoint.safetensors"));
}

TEST_F(CliDevice, AutoTrains) {
  std::vector<std::string> args = {"train", "--config", write_config(base_config()), "--device", "auto",
                                   "--out", run("run").string()};
  EXPECT_TRUE(succeeded(run_cli(args)));
}

TEST_F(CliDevice, UnknownDevice) {
  const CliResult result = train(base_config(), "run", {"--device", "tpu"});
  EXPECT_EQ(result.exit_code, 2) << result.output;
  EXPECT_NE(result.output.find("tpu"), std::string::npos) << result.output;
  EXPECT_NE(result.output.find("--device"), std::string::npos) << result.output;
}

TEST_F(CliDevice, InfoMentionsCuda) {
  const CliResult result = run_cli({"info"});
  EXPECT_TRUE(succeeded(result));
  EXPECT_NE(result.output.find("cuda"), std::string::npos) << result.output;
}

// ---------------------------------------------------------------------------------------------------
// A diverging loss
// ---------------------------------------------------------------------------------------------------

// Runs with a checkpoint every step and `overrides` that make training diverge; checks exit code 2,
// a message naming the failing step and the kept checkpoint, and that this checkpoint is readable,
// finite and one step older, with the metrics rows written before the failure still in place.
void expect_divergence_keeps_last_good_checkpoint(const CliResult& result, const fs::path& run_dir) {
  ASSERT_TRUE(is_user_error(result, {"training diverged", "at step ", "last good checkpoint", "is kept in"}));

  // "... at step N ...; the last good checkpoint (step K) is kept in PATH".
  const size_t at = result.output.find("at step ");
  const int failed_step = std::stoi(result.output.substr(at + 8));
  const size_t kept_at = result.output.find("last good checkpoint (step ");
  ASSERT_NE(kept_at, std::string::npos) << result.output;
  const int kept_step = std::stoi(result.output.substr(kept_at + 27));
  EXPECT_GE(failed_step, 2) << "the first loss comes from the initial parameters and must be finite";
  EXPECT_EQ(kept_step, failed_step - 1) << "with a checkpoint every step, the kept one is the step before";

  const fs::path checkpoint = run_dir / "checkpoint.safetensors";
  EXPECT_NE(result.output.find(checkpoint.string()), std::string::npos) << result.output;
  const uv::ckpt::SafetensorsFile file = uv::ckpt::read_safetensors(checkpoint.string());
  EXPECT_EQ(file.metadata.at("step"), std::to_string(kept_step));
  ASSERT_FALSE(file.tensors.empty());
  for (const uv::ckpt::TensorRecord& tensor : file.tensors) {
    const std::vector<float> values = tensor.to_f32();
    EXPECT_TRUE(std::all_of(values.begin(), values.end(), [](float v) { return std::isfinite(v); }))
        << "the kept checkpoint's '" << tensor.name << "' is not finite";
  }

  // One train row per completed step (the fixture logs every step), then the error row.
  std::ifstream metrics(run_dir / "metrics.jsonl");
  std::string line;
  int train_rows = 0, error_rows = 0;
  while (std::getline(metrics, line)) {
    const json row = json::parse(line);
    if (row["kind"] == "train") ++train_rows;
    if (row["kind"] == "error") ++error_rows;
  }
  EXPECT_GE(train_rows, kept_step);
  EXPECT_EQ(error_rows, 1);
  EXPECT_FALSE(fs::exists(run_dir / "summary.json"));
}

// lr = 1e38 overflows float within a few steps (1e30 only makes the loss huge: the softmax
// cross-entropy stays finite). The failing step depends on the data, so it is read from the message.
TEST_F(CliDiverge, NanLossNamesTheStepAndKeepsTheCheckpoint) {
  json config = base_config();
  config["checkpoint"] = {{"every_steps", 1}};
  const CliResult result = train(config, "run", {"--set", "train.lr=1e38"});
  expect_divergence_keeps_last_good_checkpoint(result, run("run"));
}

// lr_decay < 1 grows the rate a thousandfold per step: after step 1 it is inf as a float, so the
// update of step 2 writes inf/NaN parameters while that step's loss (from step 1's parameters) is
// still finite. The checkpoint due after step 2 must not replace the good one.
TEST_F(CliDiverge, ParametersOverflowBeforeTheLossKeepsTheGoodCheckpoint) {
  json config = base_config();
  config["checkpoint"] = {{"every_steps", 1}};
  const CliResult result = train(config, "run", {"--set", "train.lr=1e38", "--set", "train.lr_decay=0.001"});
  expect_divergence_keeps_last_good_checkpoint(result, run("run"));
}

// The loss lives on the device and is read back only where a value is shown or a checkpoint is
// due: with no checkpoint inside the epoch and a log line every 4 steps, a NaN is found at the next
// read, and the message names the steps since the read before (or the one step, where they are
// one). Nothing was written after the stages before training, whose checkpoint stays.
TEST_F(CliDiverge, NanLossBetweenReadsNamesTheStepsSinceTheLastRead) {
  json config = base_config();
  config["log"]["every_steps"] = 4;
  const CliResult result = train(config, "run", {"--set", "train.lr=1e38"});
  ASSERT_TRUE(is_user_error(result, {"training diverged", "the loss is", "last good checkpoint (end of stage",
                                     "is kept in", "log.every_steps"}));
  // 6 steps an epoch: reads after steps 4 and 6; the first loss (step 1) is finite.
  const bool first_read = result.output.find("between steps 1 and 4 (epoch 1, batches 1 to 4;") != std::string::npos;
  const bool second_read = result.output.find("between steps 5 and 6 (epoch 1, batches 5 to 6;") != std::string::npos;
  EXPECT_TRUE(first_read || second_read) << result.output;
  const uv::ckpt::SafetensorsFile file = uv::ckpt::read_safetensors((run("run") / "checkpoint.safetensors").string());
  EXPECT_EQ(file.metadata.at("step"), "0");
  int error_rows = 0;
  std::ifstream metrics(run("run") / "metrics.jsonl");
  for (std::string line; std::getline(metrics, line);) {
    const json row = json::parse(line);
    if (row["kind"] != "error") continue;
    ++error_rows;
    EXPECT_EQ(row["from_step"], first_read ? 1 : 5);
    EXPECT_EQ(row["step"], first_read ? 4 : 6);
  }
  EXPECT_EQ(error_rows, 1);
}

// ---------------------------------------------------------------------------------------------------
// --out
// ---------------------------------------------------------------------------------------------------

TEST_F(CliOut, ExistingRunIsRefusedAndLeftUnchanged) {
  ASSERT_TRUE(succeeded(train(base_config(), "run")));
  std::map<std::string, Bytes> before;
  for (const fs::directory_entry& entry : fs::directory_iterator(run("run")))
    before[entry.path().filename().string()] = read_bytes(entry.path());
  ASSERT_TRUE(before.count("checkpoint.safetensors") && before.count("metrics.jsonl"));

  EXPECT_TRUE(is_user_error(train(base_config(), "run", {"--epochs", "2"}),
                            {run("run").string(), "already holds a run", "--resume"}));

  std::map<std::string, Bytes> after;
  for (const fs::directory_entry& entry : fs::directory_iterator(run("run")))
    after[entry.path().filename().string()] = read_bytes(entry.path());
  EXPECT_TRUE(before == after) << "the refused run changed files in " << run("run");
}

// ---------------------------------------------------------------------------------------------------
// Resume
// ---------------------------------------------------------------------------------------------------

// Every optimiser knob with state or a per-step effect is on, so a lost piece of state shows.
json resume_config(json config) {
  config["train"] = {{"epochs", 2},     {"batch_size", kBatch},   {"lr", 0.1},          {"momentum", 0.9},
                     {"lr_decay", 1.01}, {"weight_decay", 1e-4}, {"max_col_norm", 2.0}};
  return config;
}

// All tensors (parameters, fixed U, optimizer.momentum.*) bit for bit, and the schedule metadata.
void expect_same_checkpoint(const fs::path& a_path, const fs::path& b_path) {
  const uv::ckpt::SafetensorsFile a = uv::ckpt::read_safetensors(a_path.string());
  const uv::ckpt::SafetensorsFile b = uv::ckpt::read_safetensors(b_path.string());
  ASSERT_EQ(a.tensors.size(), b.tensors.size());
  int momentum_tensors = 0;
  for (const uv::ckpt::TensorRecord& ta : a.tensors) {
    SCOPED_TRACE(ta.name);
    const uv::ckpt::TensorRecord* tb = b.find(ta.name);
    ASSERT_NE(tb, nullptr);
    EXPECT_EQ(ta.dtype, tb->dtype);
    EXPECT_EQ(ta.shape, tb->shape);
    EXPECT_TRUE(ta.bytes == tb->bytes) << "tensor bytes differ";
    if (ta.name.rfind("optimizer.momentum.", 0) == 0) ++momentum_tensors;
  }
  EXPECT_GT(momentum_tensors, 0) << "no optimizer state in the checkpoint";
  for (const char* key : {"step", "epoch", "step_in_epoch", "lr", "stage"}) {
    SCOPED_TRACE(key);
    ASSERT_TRUE(a.metadata.count(key) && b.metadata.count(key));
    EXPECT_EQ(a.metadata.at(key), b.metadata.at(key));
  }
}

TEST_F(CliResume, AtAnEpochBoundaryMatchesAnUninterruptedRun) {
  const json config = resume_config(base_config());
  ASSERT_TRUE(succeeded(train(config, "a")));
  ASSERT_TRUE(succeeded(train(config, "b", {"--epochs", "1"})));
  const uv::ckpt::SafetensorsFile half = uv::ckpt::read_safetensors((run("b") / "checkpoint.safetensors").string());
  EXPECT_EQ(half.metadata.at("step"), std::to_string(kTrainCount / kBatch));
  ASSERT_TRUE(succeeded(run_cli({"train", "--resume", run("b").string(), "--epochs", "2"})));
  expect_same_checkpoint(run("a") / "checkpoint.safetensors", run("b") / "checkpoint.safetensors");
  const json summary = json::parse(read_text(run("b") / "summary.json"));
  EXPECT_EQ(summary["steps"], 2 * kTrainCount / kBatch);
}

// An interruption in the middle of an epoch: --max-steps stops run B right after the mid-epoch
// checkpoint of step 8 (epoch 2 is steps 7..12), as a preempted job would be; resuming it must end
// with the same bits as the uninterrupted run A.
TEST_F(CliResume, InTheMiddleOfAnEpochMatchesAnUninterruptedRun) {
  const json config = resume_config(base_config());
  ASSERT_TRUE(succeeded(train(config, "a")));
  constexpr int kStopStep = 8, kStepsPerEpoch = kTrainCount / kBatch;
  ASSERT_TRUE(succeeded(train(config, "b", {"--max-steps", std::to_string(kStopStep)})));
  EXPECT_FALSE(fs::exists(run("b") / "summary.json")) << "a stopped run has no summary yet";

  const uv::ckpt::SafetensorsFile interrupted =
      uv::ckpt::read_safetensors((run("b") / "checkpoint.safetensors").string());
  ASSERT_EQ(interrupted.metadata.at("step"), std::to_string(kStopStep));
  ASSERT_EQ(interrupted.metadata.at("step_in_epoch"), std::to_string(kStopStep - kStepsPerEpoch));

  ASSERT_TRUE(succeeded(run_cli({"train", "--resume", run("b").string()})));
  expect_same_checkpoint(run("a") / "checkpoint.safetensors", run("b") / "checkpoint.safetensors");
}

// --resume without --device continues on the device the run was on (the checkpoint's "device"):
// on a machine with a GPU, `auto` would move a CPU run onto it and change its last bits.
TEST_F(CliResume, ContinuesOnTheRunsOwnDevice) {
  ASSERT_TRUE(succeeded(train(resume_config(base_config()), "b", {"--epochs", "1"})));
  const uv::ckpt::SafetensorsFile half = uv::ckpt::read_safetensors((run("b") / "checkpoint.safetensors").string());
  EXPECT_EQ(half.metadata.at("device"), "cpu");
  const CliResult resumed = run_cli({"train", "--resume", run("b").string(), "--epochs", "2"});
  ASSERT_TRUE(succeeded(resumed));
  EXPECT_NE(resumed.output.find("resuming on cpu, the device the run was on"), std::string::npos) << resumed.output;
}

// A run that trained on cuda, resumed on a machine without one: a clear error that names the run
// and the way on, and the run left as it was.
TEST_F(CliResume, ACudaRunOnAMachineWithoutOneIsRefused) {
  if (uv::query_devices().cuda_devices > 0) GTEST_SKIP() << "this machine has a CUDA device";
  ASSERT_TRUE(succeeded(train(resume_config(base_config()), "b", {"--epochs", "1"})));
  const fs::path path = run("b") / "checkpoint.safetensors";
  uv::ckpt::SafetensorsFile file = uv::ckpt::read_safetensors(path.string());
  file.metadata["device"] = "cuda";
  uv::ckpt::write_safetensors_atomic(path.string(), file);
  const Bytes before = read_bytes(path);
  EXPECT_TRUE(is_user_error(run_cli({"train", "--resume", run("b").string(), "--epochs", "2"}),
                            {run("b").string(), "trained on cuda", "--device cpu"}));
  EXPECT_TRUE(read_bytes(path) == before) << "the refused resume changed the checkpoint";
  // Named explicitly, the CPU takes it on.
  EXPECT_TRUE(succeeded(run_cli({"train", "--resume", run("b").string(), "--epochs", "2", "--device", "cpu"})));
}

// ---------------------------------------------------------------------------------------------------
// The pipeline: init, then per layer its dictionary and its autoencoder pretraining, then fine-tuning,
// each stage ending with a checkpoint. An interruption anywhere must resume to the same bits.
// ---------------------------------------------------------------------------------------------------

using CliPipeline = CliFixture;

// 784-32(SE, pretrained)-24(Emp from the pretrained layer-1 codes, pretrained)-10. Stages: init,
// dictionary layer1, pretrain layer1 (optimiser steps 1..12), dictionary layer2, pretrain layer2
// (13..24), train (fine-tuning, 25..36); every optimiser knob with state or a per-step effect is on.
constexpr int kPipelineStepsPerEpoch = kTrainCount / kBatch;          // 6
constexpr int kPretrainStepsPerLayer = 2 * kPipelineStepsPerEpoch;    // 12

json pipeline_config(json config) {
  config = resume_config(config);
  config["train"]["momentum"] = 0.7;
  config["model"]["layers"] = {
      {{"type", "predicted_dense"}, {"units", 32}, {"dictionary", "se"}, {"fraction", 0.1}, {"pretrain", true}},
      {{"type", "predicted_dense"}, {"units", 24}, {"dictionary", "emp"}, {"fraction", 0.25}, {"pretrain", true}},
      {{"type", "dense"}, {"units", 10}, {"activation", "identity"}}};
  config["data"]["emp_samples"] = 200;
  config["pretrain"] = {{"epochs", 2}, {"lr", 0.1}, {"momentum", 0.7}};
  return config;
}

// "init skipped, dictionary:layer1 ran, ..." from a summary's stages.
std::string stage_outcomes(const json& summary) {
  std::string text;
  for (const json& stage : summary.at("stages")) {
    text += text.empty() ? "" : ", ";
    text += stage.at("stage").get<std::string>();
    if (!stage.at("layer").get<std::string>().empty()) text += ":" + stage.at("layer").get<std::string>();
    text += " " + stage.at("status").get<std::string>();
  }
  return text;
}

TEST_F(CliPipeline, UninterruptedRunGoesThroughEveryStage) {
  const CliResult result = train(pipeline_config(base_config()), "a");
  ASSERT_TRUE(succeeded(result));
  const json summary = json::parse(read_text(run("a") / "summary.json"));
  EXPECT_EQ(stage_outcomes(summary),
            "init ran, dictionary:layer1 ran, pretrain:layer1 ran, dictionary:layer2 ran, pretrain:layer2 ran, "
            "train ran");
  EXPECT_EQ(summary.at("pretrain_steps"), 2 * kPretrainStepsPerLayer);
  EXPECT_EQ(summary.at("steps"), 2 * kPipelineStepsPerEpoch);
  // The progress output names each stage; training after pretraining is fine-tuning.
  for (const char* piece : {"stage 1/6: init", "stage 2/6: dictionary layer1, se", "stage 3/6: pretrain layer1",
                            "stage 4/6: dictionary layer2, emp", "stage 5/6: pretrain layer2", "stage 6/6: fine-tune",
                            "pretrain layer2 epoch 2/2 reconstruction loss", "fine-tune epoch 2/2",
                            "stages in this invocation: init ran, dictionary layer1 ran"})
    EXPECT_NE(result.output.find(piece), std::string::npos) << piece << "\n" << result.output;
  const uv::ckpt::SafetensorsFile last = uv::ckpt::read_safetensors((run("a") / "checkpoint.safetensors").string());
  EXPECT_EQ(last.metadata.at("stage"), "train");
  EXPECT_EQ(last.metadata.at("stage_status"), "done");
  EXPECT_EQ(last.metadata.at("stages"), "init,dictionary:layer1,pretrain:layer1,dictionary:layer2,pretrain:layer2,train");
}

// Inside layer 2's pretraining, mid-epoch: step 20 is batch 2 of its epoch 2.
TEST_F(CliPipeline, ResumedInsideLayer2PretrainingMatchesAnUninterruptedRun) {
  const json config = pipeline_config(base_config());
  ASSERT_TRUE(succeeded(train(config, "a")));
  constexpr int kStop = kPretrainStepsPerLayer + kPipelineStepsPerEpoch + 2;  // 20
  ASSERT_TRUE(succeeded(train(config, "b", {"--max-steps", std::to_string(kStop)})));
  EXPECT_FALSE(fs::exists(run("b") / "summary.json"));
  const uv::ckpt::SafetensorsFile stopped = uv::ckpt::read_safetensors((run("b") / "checkpoint.safetensors").string());
  EXPECT_EQ(stopped.metadata.at("stage"), "pretrain");
  EXPECT_EQ(stopped.metadata.at("stage_layer"), "layer2");
  EXPECT_EQ(stopped.metadata.at("stage_index"), "4");
  EXPECT_EQ(stopped.metadata.at("stage_status"), "running");
  EXPECT_EQ(stopped.metadata.at("pretrain_step"), std::to_string(kStop));
  EXPECT_EQ(stopped.metadata.at("pretrain_epoch"), "1");
  EXPECT_EQ(stopped.metadata.at("pretrain_step_in_epoch"), "2");
  EXPECT_EQ(stopped.metadata.at("step"), "0");

  const CliResult resumed = run_cli({"train", "--resume", run("b").string()});
  ASSERT_TRUE(succeeded(resumed));
  EXPECT_NE(resumed.output.find("stage 5/6: pretrain layer2, tied sigmoid autoencoder, 2 epochs (resumed at epoch 2, "
                                "batch 2)"),
            std::string::npos)
      << resumed.output;
  expect_same_checkpoint(run("a") / "checkpoint.safetensors", run("b") / "checkpoint.safetensors");
  const json summary = json::parse(read_text(run("b") / "summary.json"));
  EXPECT_EQ(stage_outcomes(summary),
            "init skipped, dictionary:layer1 skipped, pretrain:layer1 skipped, dictionary:layer2 skipped, "
            "pretrain:layer2 resumed, train ran");
  EXPECT_EQ(summary.at("resumed"), true);
  EXPECT_EQ(summary.at("pretrain_steps"), 2 * kPretrainStepsPerLayer);
  EXPECT_EQ(json::parse(read_text(run("a") / "summary.json")).at("test_error"), summary.at("test_error"));
}

// Between stages: --max-steps 12 lands on the last step of layer 1's pretraining, so run B stops
// after that stage's checkpoint. The resumed run builds layer 2's Emp dictionary from the restored
// layer-1 codes and must get the uninterrupted run's U (and every other bit).
TEST_F(CliPipeline, ResumedBetweenStagesMatchesAnUninterruptedRun) {
  const json config = pipeline_config(base_config());
  ASSERT_TRUE(succeeded(train(config, "a")));
  ASSERT_TRUE(succeeded(train(config, "b", {"--max-steps", std::to_string(kPretrainStepsPerLayer)})));
  const uv::ckpt::SafetensorsFile stopped = uv::ckpt::read_safetensors((run("b") / "checkpoint.safetensors").string());
  EXPECT_EQ(stopped.metadata.at("stage"), "pretrain");
  EXPECT_EQ(stopped.metadata.at("stage_layer"), "layer1");
  EXPECT_EQ(stopped.metadata.at("stage_status"), "done");
  EXPECT_EQ(stopped.metadata.at("pretrain_step"), std::to_string(kPretrainStepsPerLayer));

  const CliResult resumed = run_cli({"train", "--resume", run("b").string()});
  ASSERT_TRUE(succeeded(resumed));
  expect_same_checkpoint(run("a") / "checkpoint.safetensors", run("b") / "checkpoint.safetensors");
  const json summary = json::parse(read_text(run("b") / "summary.json"));
  EXPECT_EQ(stage_outcomes(summary),
            "init skipped, dictionary:layer1 skipped, pretrain:layer1 skipped, dictionary:layer2 ran, "
            "pretrain:layer2 ran, train ran");

  // Over both invocations each dictionary was built once: layer 1's came from the checkpoint.
  std::ifstream metrics(run("b") / "metrics.jsonl");
  std::string line;
  std::vector<std::string> dictionaries;
  int stopped_rows = 0;
  while (std::getline(metrics, line)) {
    const json row = json::parse(line);
    if (row["kind"] == "dictionary") dictionaries.push_back(row["layer"]);
    if (row["kind"] == "stopped") {
      ++stopped_rows;
      EXPECT_EQ(row["stage"], "pretrain");
      EXPECT_EQ(row["layer"], "layer1");
      EXPECT_EQ(row["step"], kPretrainStepsPerLayer);
    }
  }
  EXPECT_EQ(dictionaries, (std::vector<std::string>{"layer1", "layer2"}));
  EXPECT_EQ(stopped_rows, 1);
}

// A finished dictionary stage is restored, not rebuilt: a U altered in the checkpoint between
// stages is the U the resumed run ends with (U is fixed: nothing trains it).
TEST_F(CliPipeline, SkippedDictionaryIsReadFromTheCheckpoint) {
  const json config = pipeline_config(base_config());
  ASSERT_TRUE(succeeded(train(config, "b", {"--max-steps", std::to_string(kPretrainStepsPerLayer)})));
  const std::string path = (run("b") / "checkpoint.safetensors").string();
  uv::ckpt::SafetensorsFile file = uv::ckpt::read_safetensors(path);
  std::vector<float> altered;
  for (uv::ckpt::TensorRecord& tensor : file.tensors) {
    if (tensor.name != "layer1.U") continue;
    altered = tensor.to_f32();
    for (float& v : altered) v *= 0.5f;
    tensor = uv::ckpt::TensorRecord::from_f32(tensor.name, tensor.shape, altered.data());
  }
  ASSERT_FALSE(altered.empty()) << "no layer1.U in the checkpoint";
  uv::ckpt::write_safetensors_atomic(path, file);

  ASSERT_TRUE(succeeded(run_cli({"train", "--resume", run("b").string()})));
  const uv::ckpt::SafetensorsFile final_file = uv::ckpt::read_safetensors(path);
  const uv::ckpt::TensorRecord* u = final_file.find("layer1.U");
  ASSERT_NE(u, nullptr);
  EXPECT_TRUE(u->to_f32() == altered) << "layer1.U was rebuilt instead of read from the checkpoint";
}

// A checkpoint resumed under a config that plans other stages is refused, naming both plans; the
// pipeline's own knobs are validated by name.
TEST_F(CliPipeline, ResumeWithADifferentPlanAndBadPretrainFieldsAreRefused) {
  const json config = pipeline_config(base_config());
  ASSERT_TRUE(succeeded(train(config, "b", {"--max-steps", "3"})));
  EXPECT_TRUE(is_user_error(run_cli({"train", "--resume", run("b").string(), "--set", "pretrain.epochs=0"}),
                            {"belongs to a pipeline with the stages init,dictionary:layer1,pretrain:layer1,",
                             "but this config plans init,dictionary:layer1,dictionary:layer2,train"}));
  // Still resumable with its own plan.
  ASSERT_TRUE(succeeded(run_cli({"train", "--resume", run("b").string()})));

  EXPECT_TRUE(is_user_error(train(config, "lr", {"--set", "pretrain.lr=0"}), {"'pretrain.lr' = 0"}));
  EXPECT_TRUE(is_user_error(train(config, "momentum", {"--set", "pretrain.momentum=1.5"}), {"'pretrain.momentum' = 1.5"}));
  EXPECT_TRUE(is_user_error(train(config, "epochs", {"--set", "pretrain.epochs=-1"}), {"'pretrain.epochs' = -1"}));
  EXPECT_TRUE(is_user_error(train(base_config(), "none", {"--set", "pretrain.epochs=2"}),
                            {"'pretrain.epochs' = 2 but no layer has \"pretrain\": true"}));
}

// The shipped pipeline config end to end on the synthetic set, its epochs cut to one a stage.
TEST_F(CliPipeline, PaperPipelineConfigRunsEveryStage) {
  const CliResult result = run_cli(
      {"train", "--config", std::string(UV_SOURCE_DIR) + "/models/mnist_mlp_paper_pipeline.json", "--device", "cpu",
       "--out", run("paper").string(), "--set", "data.dir=" + data_dir().string(), "--set", "data.emp_samples=100",
       "--set", "pretrain.epochs=1", "--set", "train.epochs=1"});
  ASSERT_TRUE(succeeded(result));
  const json summary = json::parse(read_text(run("paper") / "summary.json"));
  EXPECT_EQ(stage_outcomes(summary),
            "init ran, dictionary:layer1 ran, pretrain:layer1 ran, dictionary:layer2 ran, pretrain:layer2 ran, "
            "train ran");
  EXPECT_EQ(summary.at("pretrain_steps"), 2 * (kTrainCount / 100));
}

// ---------------------------------------------------------------------------------------------------
// A finished run's outputs
// ---------------------------------------------------------------------------------------------------

TEST_F(CliRun, WritesSummaryAndMetrics) {
  const CliResult result = train(base_config(), "run", {"--epochs", "2"});
  ASSERT_TRUE(succeeded(result));
  for (const char* name : {"checkpoint.safetensors", "config.json", "metrics.jsonl", "summary.json"})
    EXPECT_TRUE(fs::is_regular_file(run("run") / name)) << name;

  const json summary = json::parse(read_text(run("run") / "summary.json"));
  const double test_error = summary.at("test_error").get<double>();
  EXPECT_GE(test_error, 0.0);
  EXPECT_LE(test_error, 1.0);
  EXPECT_EQ(summary.at("steps"), 2 * kTrainCount / kBatch);
  const json& layers = summary.at("layers");
  ASSERT_EQ(layers.size(), 2u);
  // Layer 1: 784 -> 32 predicted with n_alpha = int(784 * 0.1) = 78 learned rows per column.
  EXPECT_EQ(layers[0].at("in"), 784);
  EXPECT_EQ(layers[0].at("out"), 32);
  EXPECT_GT(layers[0].at("learned").get<int64_t>(), 0);
  EXPECT_GT(layers[0].at("predicted").get<int64_t>(), 0);
  EXPECT_LT(layers[0].at("learned").get<int64_t>(), layers[0].at("dense_equivalent").get<int64_t>());
  EXPECT_EQ(layers[1].at("predicted"), 0);
  EXPECT_EQ(layers[1].at("learned"), 32 * 10 + 10);
  const json& memory = summary.at("memory_bytes");
  for (const char* key : {"parameters_learned", "parameters_fixed", "gradients", "optimizer_state",
                          "activations", "total", "dense_equivalent_total"}) {
    SCOPED_TRACE(key);
    ASSERT_TRUE(memory.contains(key));
    EXPECT_GT(memory.at(key).get<int64_t>(), 0);
  }
  EXPECT_LT(memory.at("parameters_learned").get<int64_t>(), memory.at("dense_equivalent_total").get<int64_t>());
  // The CPU holds no library workspace (the GPU's are said by library: CudaGraphStepMatches…).
  EXPECT_EQ(memory.at("workspaces"), 0);
  EXPECT_TRUE(memory.at("workspaces_by_library").empty()) << memory.dump();
  EXPECT_EQ(result.output.find("library workspaces"), std::string::npos) << result.output;

  std::ifstream metrics(run("run") / "metrics.jsonl");
  std::string line;
  int rows = 0, epoch_rows = 0, summary_rows = 0;
  std::vector<std::string> stage_rows;
  while (std::getline(metrics, line)) {
    SCOPED_TRACE(line);
    json row;
    ASSERT_NO_THROW(row = json::parse(line));
    ASSERT_TRUE(row.contains("kind"));
    ++rows;
    if (row["kind"] == "stage")
      stage_rows.push_back(row["stage"].get<std::string>() + " " + row["status"].get<std::string>());
    if (row["kind"] == "epoch") {
      ++epoch_rows;
      EXPECT_GE(row["test_error"].get<double>(), 0.0);
      EXPECT_LE(row["test_error"].get<double>(), 1.0);
    }
    if (row["kind"] == "summary") ++summary_rows;
  }
  EXPECT_EQ(epoch_rows, 2);
  EXPECT_EQ(summary_rows, 1);
  // A dictionary row for layer 1, a train row per step (log every step), two epoch rows, a row per
  // stage (init, dictionary layer1, train), the summary.
  EXPECT_EQ(rows, 1 + 2 * kTrainCount / kBatch + 2 + 3 + 1);
  EXPECT_EQ(stage_rows, (std::vector<std::string>{"init ran", "dictionary ran", "train ran"}));
  const json& stages = summary.at("stages");
  ASSERT_EQ(stages.size(), 3u);
  EXPECT_EQ(stages[1].at("layer"), "layer1");
  EXPECT_EQ(summary.at("pretrain_steps"), 0);
  EXPECT_EQ(summary.at("resumed"), false);

  // The summary is also printed.
  EXPECT_NE(result.output.find("test error"), std::string::npos) << result.output;
}

// train.project_input: layer 1 reading T = X·U computed once for the data set trains like layer 1
// batching X (the same sums in another association: per-step losses within relative 1e-4), says so
// in the summary, and holds T for the train and test sets instead of gathering 784-wide rows.
TEST_F(CliRun, ProjectedInputTrainsLikeBatchingX) {
  json off = base_config(), on = base_config();
  off["train"]["project_input"] = "off";
  on["train"]["project_input"] = "on";
  ASSERT_TRUE(succeeded(train(off, "off", {"--epochs", "2"})));
  ASSERT_TRUE(succeeded(train(on, "on", {"--epochs", "2"})));
  auto losses = [&](const std::string& name) {
    std::vector<double> out;
    for (const json& row : metrics_rows(name, {"train"})) out.push_back(row["loss"].get<double>());
    return out;
  };
  const std::vector<double> a = losses("off"), b = losses("on");
  ASSERT_EQ(a.size(), static_cast<size_t>(2 * kTrainCount / kBatch));
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(b[i], a[i], 1e-4 * std::fabs(a[i])) << "step " << i + 1;
  const json s_off = json::parse(read_text(run("off") / "summary.json"));
  const json s_on = json::parse(read_text(run("on") / "summary.json"));
  EXPECT_TRUE(s_off["project_input"].is_null());
  EXPECT_EQ(s_on["layers"][0]["strategy"], "projected");
  EXPECT_EQ(s_on["project_input"]["features"], 78);
  EXPECT_EQ(s_on["memory_bytes"]["data_projected"], (kTrainCount + kTestCount) * 78 * 4);
  EXPECT_EQ(s_off["memory_bytes"]["data_projected"], 0);
  EXPECT_NEAR(s_on["test_error"].get<double>(), s_off["test_error"].get<double>(), 0.011);
}

// The device's data path, run on the CPU (UV_CPU_STAGES_DATA=1: the backend holds the data set in
// allocations of its own, as a GPU does). Batching X, the uploaded set trains to the same bits. With
// projected inputs, T = X·U is computed a batch of rows at a time through the batch buffer, so the
// raw images are never held: only the labels and the order are resident, and the run trains as the
// in-place projection does (the same products, row blocks of another height: within 1e-5).
TEST_F(CliRun, StagedDataSetTrainsLikeTheHostsAndProjectionNeverHoldsTheImages) {
  json off = base_config(), on = base_config();
  off["train"]["project_input"] = "off";
  on["train"]["project_input"] = "on";
  auto staged = [&](const json& config, const std::string& name) {
    return uv::test::run_shell("UV_CPU_STAGES_DATA=1 " + uv::test::shell_quote(uv::test::cli_path()) +
                                 " train --device cpu --epochs 2 --config " +
                                 uv::test::shell_quote(write_config(config, name + ".json")) + " --out " +
                                 uv::test::shell_quote(run(name).string()));
  };
  ASSERT_TRUE(succeeded(train(off, "off", {"--epochs", "2"})));
  ASSERT_TRUE(succeeded(staged(off, "off_staged")));
  ASSERT_TRUE(succeeded(train(on, "on", {"--epochs", "2"})));
  ASSERT_TRUE(succeeded(staged(on, "on_staged")));
  auto losses = [&](const std::string& name) {
    std::vector<double> out;
    for (const json& row : metrics_rows(name, {"train"})) out.push_back(row["loss"].get<double>());
    return out;
  };
  EXPECT_EQ(losses("off_staged"), losses("off"));
  const std::vector<double> a = losses("on"), b = losses("on_staged");
  ASSERT_EQ(a.size(), static_cast<size_t>(2 * kTrainCount / kBatch));
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(b[i], a[i], 1e-5 * std::fabs(a[i])) << "step " << i + 1;
  const json memory_off = json::parse(read_text(run("off_staged") / "summary.json"))["memory_bytes"];
  const json memory_on = json::parse(read_text(run("on_staged") / "summary.json"))["memory_bytes"];
  // Never held, not merely dropped: the staged run's peak is the in-place run's plus labels and
  // order, far below the raw training images it would add.
  const int64_t peak_on = json::parse(read_text(run("on") / "summary.json"))["memory_bytes"]["backend_peak_allocated"];
  EXPECT_LT(memory_on["backend_peak_allocated"].get<int64_t>() - peak_on, int64_t{kTrainCount} * 784 * 4 / 4);
  const int64_t labels_and_order = (kTrainCount + kTestCount + std::max(kTrainCount, kTestCount)) * 4;
  EXPECT_EQ(memory_off["data_resident"], (kTrainCount + kTestCount) * 784 * 4 + labels_and_order);
  EXPECT_EQ(memory_on["data_resident"], labels_and_order);
  EXPECT_EQ(memory_on["data_projected"], (kTrainCount + kTestCount) * 78 * 4);
}

// data.shuffle = device: the epoch's order made on the backend. It is a different order from the
// host's Fisher-Yates (so the runs differ), it trains as well, and a run stopped mid-epoch resumes
// to the same bits: the order is a pure function of (seed, epoch).
TEST_F(CliRun, DeviceShuffleTrainsAndResumesBitForBit) {
  json host = resume_config(base_config()), device = resume_config(base_config());
  device["data"]["shuffle"] = "device";
  ASSERT_TRUE(succeeded(train(host, "host")));
  ASSERT_TRUE(succeeded(train(device, "a")));
  const json s_host = json::parse(read_text(run("host") / "summary.json"));
  const json s_device = json::parse(read_text(run("a") / "summary.json"));
  EXPECT_NE(read_text(run("host") / "metrics.jsonl"), read_text(run("a") / "metrics.jsonl"));
  // It learns as the host-shuffled run does: on these few synthetic images and 2 epochs, the two
  // orders alone move the test error by several points, so the check is loose.
  EXPECT_LT(s_device["test_error"].get<double>(), 0.5);
  EXPECT_NEAR(s_device["test_error"].get<double>(), s_host["test_error"].get<double>(), 0.15);
  ASSERT_TRUE(succeeded(train(device, "b", {"--max-steps", "8"})));
  ASSERT_TRUE(succeeded(run_cli({"train", "--resume", run("b").string()})));
  expect_same_checkpoint(run("a") / "checkpoint.safetensors", run("b") / "checkpoint.safetensors");
}

TEST_F(CliConfig, ShuffleValueIsChecked) {
  json config = base_config();
  config["data"]["shuffle"] = "gpu";
  EXPECT_TRUE(is_user_error(train(config, "bad"), {"data.shuffle", "gpu", "host, device"}));
}

TEST_F(CliConfig, ProjectInputValueAndLayerAreChecked) {
  json config = base_config();
  config["train"]["project_input"] = "maybe";
  EXPECT_TRUE(is_user_error(train(config, "bad"), {"train.project_input", "maybe", "auto, on, off"}));
  config = base_config();
  config["train"]["project_input"] = "on";
  config["model"]["layers"][0]["type"] = "dense";
  EXPECT_TRUE(is_user_error(train(config, "dense"), {"train.project_input", "layer1 is dense"}));
  config["model"]["layers"][0]["type"] = "lowrank";
  EXPECT_TRUE(is_user_error(train(config, "lowrank"), {"train.project_input", "learns U"}));
  config["train"]["project_input"] = "auto";  // auto falls back to batching X
  EXPECT_TRUE(succeeded(train(config, "auto")));
}

// train.cuda_graph: checked like every field; the CPU backend runs the step directly and says so.
TEST_F(CliConfig, CudaGraphValueIsChecked) {
  json config = base_config();
  config["train"]["cuda_graph"] = "on";
  EXPECT_TRUE(is_user_error(train(config, "bad"), {"train.cuda_graph", "\"on\"", "auto, off"}));
  config["train"]["cuda_graph"] = 1;
  EXPECT_TRUE(is_user_error(train(config, "number"), {"train.cuda_graph"}));
}

// train.gemm: the GPU's GEMM library, checked on every machine; the CPU runs its own GEMM.
TEST_F(CliConfig, GemmLibraryValueIsChecked) {
  json config = base_config();
  config["train"]["gemm"] = "cutlass";
  EXPECT_TRUE(is_user_error(train(config, "bad"),
                            {"train.gemm", "\"cutlass\"", "cublas, cublaslt, cublaslt_one_kernel"}));
  config["train"]["gemm"] = "cublaslt_one_kernel";
  config["train"]["small_gemm"] = "auto";
  EXPECT_TRUE(is_user_error(train(config, "small"), {"train.small_gemm", "\"auto\"", "on, off"}));
  config["train"]["small_gemm"] = "on";
  config["train"]["fused_optimizer"] = "yes";
  EXPECT_TRUE(is_user_error(train(config, "fused"), {"train.fused_optimizer", "\"yes\"", "on, off"}));
  config["train"]["fused_optimizer"] = "on";
  ASSERT_TRUE(succeeded(train(config, "cpu")));
  const json s = json::parse(read_text(run("cpu") / "summary.json"));
  EXPECT_EQ(s["gemm"]["setting"], "cublaslt_one_kernel");
  EXPECT_EQ(s["gemm"]["note"], "the CPU runs its own GEMM");
  EXPECT_EQ(s["gemm"]["small_gemm"], "on");
  EXPECT_EQ(s["gemm"]["fused_optimizer"], "on");
}

TEST_F(CliRun, CpuRunsTheStepDirectlyAndSaysSo) {
  ASSERT_TRUE(succeeded(train(base_config(), "run")));
  const json s = json::parse(read_text(run("run") / "summary.json"));
  EXPECT_EQ(s["cuda_graph"]["setting"], "auto");
  EXPECT_EQ(s["cuda_graph"]["captured"], false);
  EXPECT_EQ(s["cuda_graph"]["replays"], 0);
  EXPECT_EQ(s["cuda_graph"]["note"], "the CPU backend runs the step directly");
}

// On a GPU: the training step captured once and replayed for every full batch gives the same
// numbers as the step run directly, bit for bit (the same kernels with the same arguments on the
// same stream, cuBLAS with the same preallocated workspace). 300 steps: batch 64 over 300 examples
// is 4 full batches and a partial one of 44 (run directly) an epoch, for 60 epochs.
TEST_F(CliRun, CudaGraphStepMatchesTheDirectStepOnTheDevice) {
  if (uv::query_devices().cuda_devices == 0) GTEST_SKIP() << "no CUDA device";
  // Also with cuBLASLt's cached plans, with our tensor-core GEMM (its split-K workspace made before
  // the capture), and with the small fused products, under capture.
  // "small" on: the small fused products and the one-launch optimizer.
  for (const auto& [gemm, small] : std::vector<std::pair<std::string, std::string>>{
           {"cublas", "off"}, {"cublaslt_one_kernel", "off"}, {"tf32x3", "off"}, {"cublas", "on"}}) {
    SCOPED_TRACE(gemm + " small_gemm and fused_optimizer " + small);
    json config = base_config();
    config["train"] = {{"epochs", 60}, {"batch_size", 64}, {"lr", 0.1}, {"momentum", 0.9},
                       {"lr_decay", 1.001}, {"weight_decay", 1e-4}, {"max_col_norm", 2.0}, {"gemm", gemm},
                       {"small_gemm", small}, {"fused_optimizer", small}};
    const std::string graph_run = "graph-" + gemm + "-" + small, direct_run = "direct-" + gemm + "-" + small;
    json off = config;
    off["train"]["cuda_graph"] = "off";
    ASSERT_TRUE(succeeded(train(config, graph_run, {"--device", "cuda"})));
    ASSERT_TRUE(succeeded(train(off, direct_run, {"--device", "cuda"})));
    auto rows = [&](const std::string& name) {
      std::vector<json> out = metrics_rows(name, {"train", "epoch"});
      for (json& row : out) {
        row.erase("seconds");
        row.erase("samples_per_s");
      }
      return out;
    };
    const std::vector<json> graph = rows(graph_run), direct = rows(direct_run);
    ASSERT_EQ(graph.size(), size_t{60 * 5 + 60});
    ASSERT_EQ(graph.size(), direct.size());
    for (size_t i = 0; i < graph.size(); ++i) EXPECT_EQ(graph[i], direct[i]) << "row " << i;
    const uv::ckpt::SafetensorsFile a = uv::ckpt::read_safetensors((run(graph_run) / "checkpoint.safetensors").string());
    const uv::ckpt::SafetensorsFile b = uv::ckpt::read_safetensors((run(direct_run) / "checkpoint.safetensors").string());
    ASSERT_EQ(a.tensors.size(), b.tensors.size());
    for (const uv::ckpt::TensorRecord& t : a.tensors) {
      ASSERT_NE(b.find(t.name), nullptr) << t.name;
      EXPECT_TRUE(t.bytes == b.find(t.name)->bytes) << t.name;
    }
    const json s_graph = json::parse(read_text(run(graph_run) / "summary.json"));
    const json s_direct = json::parse(read_text(run(direct_run) / "summary.json"));
    EXPECT_EQ(s_graph["cuda_graph"]["captured"], true) << s_graph["cuda_graph"].dump();
    EXPECT_EQ(s_graph["cuda_graph"]["replays"], 60 * 4 - 1);  // every full batch but the warm-up
    EXPECT_EQ(s_direct["cuda_graph"]["captured"], false);
    EXPECT_EQ(s_direct["cuda_graph"]["note"], "off (train.cuda_graph)");
    EXPECT_EQ(s_graph["gemm"]["setting"], gemm);
    if (gemm.rfind("cublaslt", 0) == 0) {  // the MLP's dense output layer: its bias fused both ways
      EXPECT_GT(s_graph["gemm"]["fused_epilogues"].get<int64_t>(), 0) << s_graph["gemm"].dump();
    }
    if (gemm == "tf32x3") {
      EXPECT_GT(s_graph["gemm"]["tf32x3_products"].get<int64_t>(), 0) << s_graph["gemm"].dump();
    }
    // The memory account says which library workspaces the run held: cuBLAS's always, cuBLASLt's
    // and the 3xTF32 GEMM's (32 MiB by default) where chosen, summed under "workspaces".
    const json& spaces = s_graph["memory_bytes"]["workspaces_by_library"];
    EXPECT_GT(spaces["cublas"]["bytes"].get<int64_t>(), 0) << spaces.dump();
    EXPECT_EQ(spaces.contains("cublaslt"), gemm.rfind("cublaslt", 0) == 0) << spaces.dump();
    EXPECT_EQ(spaces.contains("tf32x3"), gemm == "tf32x3") << spaces.dump();
    if (gemm == "tf32x3") {
      const char* mib = std::getenv("UV_TF32X3_WORKSPACE_MIB");  // the child's too
      EXPECT_EQ(spaces["tf32x3"]["bytes"], int64_t{mib && *mib ? std::atoll(mib) : 32} << 20) << spaces.dump();
    }
    int64_t sum = 0;
    for (const auto& [library, w] : spaces.items()) sum += w["bytes"].get<int64_t>();
    EXPECT_EQ(s_graph["memory_bytes"]["workspaces"], sum);
    if (small == "on") {  // both layers' forward products, bias and activation in them
      EXPECT_GT(s_graph["gemm"]["small_gemm_products"].get<int64_t>(), 0) << s_graph["gemm"].dump();
    }
  }
}

// The SE-AE pair of the paper's MLP, small: layer 1 SE, layer 2 an ae dictionary drawn from an
// autoencoder trained on layer 1's codes; the run logs the autoencoder's losses and trains.
TEST_F(CliRun, SeAeMlpTrainsEndToEnd) {
  json config = base_config();
  config["model"]["layers"] = {
      {{"type", "predicted_dense"}, {"units", 32}, {"dictionary", "se"}, {"fraction", 0.1}},
      {{"type", "predicted_dense"}, {"units", 24}, {"dictionary", "ae"}, {"fraction", 0.25},
       {"ae_atoms", 40}, {"ae_epochs", 40}, {"ae_lr", 2.0}},
      {{"type", "dense"}, {"units", 10}, {"activation", "identity"}}};
  config["data"]["emp_samples"] = 200;
  // The atoms start at ±0.001 (the authors' init) and grow slowly on codes that vary little, so W =
  // U·V starts near zero: at ae_lr 0.1 or train.lr 0.1 this run sits on that plateau for all its 48
  // steps (on MNIST's 600 steps an epoch it leaves it within the first), hence the larger steps.
  config["train"]["lr"] = 0.5;
  const CliResult result = train(config, "run", {"--epochs", "8"});
  ASSERT_TRUE(succeeded(result));
  EXPECT_NE(result.output.find("dictionary: layer2 ae, n_alpha 8 x 1 columns, from 200 examples, autoencoder "
                               "40 atoms, 40 epochs: reconstruction loss"),
            std::string::npos)
      << result.output;
  const json summary = json::parse(read_text(run("run") / "summary.json"));
  const json& layers = summary.at("layers");
  ASSERT_EQ(layers.size(), 3u);
  EXPECT_EQ(layers[1].at("dictionary"), "ae");
  EXPECT_EQ(layers[1].at("rank"), 8);  // int(32 * 0.25)
  EXPECT_EQ(layers[1].at("learned"), 8 * 24 + 24);
  EXPECT_LT(summary.at("test_error").get<double>(), 0.5) << result.output;  // chance is 0.9

  std::ifstream metrics(run("run") / "metrics.jsonl");
  std::string line;
  int dictionary_rows = 0;
  std::vector<double> epoch_losses;
  while (std::getline(metrics, line)) {
    const json row = json::parse(line);
    if (row["kind"] == "epoch") epoch_losses.push_back(row["train_loss"].get<double>());
    if (row["kind"] != "dictionary") continue;
    ++dictionary_rows;
    if (row["layer"] == "layer2") {
      EXPECT_EQ(row["data_rows"], 200);
      EXPECT_EQ(row["ae_atoms"], 40);
      EXPECT_LT(row["ae_loss_after"].get<double>(), row["ae_loss_before"].get<double>());
    }
  }
  EXPECT_EQ(dictionary_rows, 2);
  ASSERT_EQ(epoch_losses.size(), 8u);
  EXPECT_LT(epoch_losses.back(), epoch_losses.front() - 0.3) << result.output;  // it learns

  // Fewer atoms than a column draws: exit 2 naming the field.
  config["model"]["layers"][1]["ae_atoms"] = 7;
  EXPECT_TRUE(is_user_error(train(config, "few_atoms"), {"'model.layers[1].ae_atoms' = 7", "8 atoms"}));
  config["model"]["layers"][1]["ae_atoms"] = 40;
  config["model"]["layers"][1]["ae_epochs"] = 0;
  EXPECT_TRUE(is_user_error(train(config, "no_epochs"), {"'model.layers[1].ae_epochs' = 0"}));
  config["model"]["layers"][1]["ae_epochs"] = 40;
  config["model"]["layers"][1]["ae_momentum"] = 1.5;
  EXPECT_TRUE(is_user_error(train(config, "momentum"), {"'model.layers[1].ae_momentum' = 1.5"}));
}

// ---------------------------------------------------------------------------------------------------
// Convnets: layer fields validated by name, and a small predicted convnet that trains and reports
// its conv layers (filter bank shape, learned share).
// ---------------------------------------------------------------------------------------------------

using CliConv = CliFixture;

json small_convnet(json base) {
  base["model"]["layers"] = {
      {{"type", "predicted_conv"}, {"units", 6}, {"kernel", 5}, {"padding", "same"}, {"dictionary", "se"},
       {"fraction", 0.25}, {"length_scale", 3.0}, {"init_scale", 0.5}},
      {{"type", "maxpool"}, {"kernel", 2}, {"stride", 2}},
      {{"type", "conv"}, {"units", 8}, {"kernel", 3}, {"stride", 2}, {"padding", 1}, {"init_scale", 0.3}},
      {{"type", "maxpool"}, {"kernel", 2}, {"stride", 2}},
      {{"type", "predicted_dense"}, {"units", 20}, {"activation", "relu"}, {"dictionary", "se"}, {"columns", 2},
       {"fraction", 0.25}, {"init_scale", 0.3}},
      {{"type", "dense"}, {"units", 10}, {"activation", "identity"}, {"init_scale", 0.2}}};
  base["train"]["lr"] = 0.02;
  return base;
}

TEST_F(CliConv, SmallPredictedConvnetTrainsAndReportsItsFilterBanks) {
  const CliResult result = train(small_convnet(base_config()), "run", {"--epochs", "8"});
  ASSERT_TRUE(succeeded(result));
  const json summary = json::parse(read_text(run("run") / "summary.json"));
  const json& layers = summary.at("layers");
  ASSERT_EQ(layers.size(), 4u);  // pooling layers have no parameters and no row
  // Layer 1: 5x5x1 filters, 6 of them: W is 25x6 = U (25x6) V (6x6), n_alpha = int(25 * 0.25) = 6.
  EXPECT_EQ(layers[0].at("type"), "predicted_conv");
  EXPECT_EQ(layers[0].at("in"), 25);
  EXPECT_EQ(layers[0].at("out"), 6);
  EXPECT_EQ(layers[0].at("rank"), 6);
  EXPECT_EQ(layers[0].at("learned"), 6 * 6 + 6);
  // Layer 3: 3x3x6 -> 8 dense filters, on 14x14 -> stride 2, pad 1 -> 7x7 -> pool -> 3x3x8 = 72.
  EXPECT_EQ(layers[1].at("in"), 54);
  EXPECT_EQ(layers[1].at("learned"), 54 * 8 + 8);
  EXPECT_EQ(layers[2].at("in"), 72);
  EXPECT_EQ(layers[2].at("rank"), 18);
  EXPECT_EQ(layers[2].at("columns"), 2);
  const double test_error = summary.at("test_error").get<double>();
  EXPECT_LT(test_error, 0.6) << result.output;  // chance is 0.9: the gradients reach every layer (48 steps)
}

// The DCT dictionary on conv filters: p x p x C_in atoms, channels independent.
TEST_F(CliConv, DctDictionaryTrainsAConvnet) {
  json config = small_convnet(base_config());
  config["model"]["layers"][0]["dictionary"] = "dct";
  config["model"]["layers"][4]["dictionary"] = "dct";
  const CliResult result = train(config, "run", {"--epochs", "2"});
  ASSERT_TRUE(succeeded(result));
  EXPECT_NE(result.output.find("dictionary: layer1 dct, n_alpha 6 x 1 columns"), std::string::npos) << result.output;
  const json summary = json::parse(read_text(run("run") / "summary.json"));
  EXPECT_EQ(summary.at("layers")[0].at("dictionary"), "dct");
}

TEST_F(CliConv, BadLayerFieldsNameTheLayerAndValue) {
  struct Case {
    const char* what;
    std::function<void(json&)> edit;
    std::vector<std::string> expected;
  };
  const std::vector<Case> cases = {
      {"padding word", [](json& c) { c["model"]["layers"][0]["padding"] = "valid"; },
       {"'model.layers[0].padding' must be a whole number of pixels >= 0 or \"same\""}},
      {"no kernel", [](json& c) { c["model"]["layers"][0].erase("kernel"); },
       {"'model.layers[0].kernel' must be >= 1 for predicted_conv"}},
      {"filter too big", [](json& c) { c["model"]["layers"][2]["kernel"] = 20; },
       {"does not fit the 14x14 input"}},
      {"same with stride", [](json& c) { c["model"]["layers"][2]["padding"] = "same"; },
       {"padding \"same\" needs stride 1"}},
      {"maxpool on a flat input",
       [](json& c) {
         c["model"]["layers"].insert(c["model"]["layers"].begin() + 5, json{{"type", "maxpool"}, {"kernel", 2}});
       },
       {"model.layers[5]' (maxpool) needs a feature map"}},
      {"maxpool with units", [](json& c) { c["model"]["layers"][1]["units"] = 4; },
       {"'model.layers[1].units' is not used by maxpool"}},
      {"empirical conv dictionary", [](json& c) { c["model"]["layers"][0]["dictionary"] = "emp"; },
       {"'model.layers[0].dictionary' = \"emp\"", "conv layers take data-free dictionaries"}},
      {"autoencoder conv dictionary", [](json& c) { c["model"]["layers"][0]["dictionary"] = "ae"; },
       {"'model.layers[0].dictionary' = \"ae\"", "conv layers take data-free dictionaries"}},
      {"conv rank", [](json& c) { c["model"]["layers"][0]["rank"] = 26; },
       {"'model.layers[0].rank' = 26", "25 weights"}},
      {"pretrain a conv", [](json& c) { c["model"]["layers"][0]["pretrain"] = true; },
       {"'model.layers[0].pretrain' is only for predicted_dense and lowrank"}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    json config = small_convnet(base_config());
    c.edit(config);
    EXPECT_TRUE(is_user_error(train(config, "run"), c.expected));
  }
}

}  // namespace
