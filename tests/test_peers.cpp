// bench/peers.py (uvtrain against PyTorch) end to end on a small synthetic MNIST-layout set: the
// uvtrain rows always, the PyTorch rows where torch is importable (otherwise they say skipped), the
// JSON it writes, and its bad-flag errors. tools/profile.sh's CPU mode (the two runs and the memory
// comparison; nsys and the GPU only on a GPU machine) likewise.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

#include "tests/cli_util.h"
#include "tests/test_util.h"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using uv::test::shell_quote;

using uv::test::CliResult;
using uv::test::run_shell;

// Debian's python3 first: it is where python3-torch installs.
std::string python() {
  for (const char* candidate : {"/usr/bin/python3", "python3"})
    if (run_shell(std::string(candidate) + " -c 'import json'").exit_code == 0) return candidate;
  return "";
}

class Peers : public ::testing::Test {
 protected:
  void SetUp() override {
    interpreter_ = python();
    if (interpreter_.empty()) GTEST_SKIP() << "no python3";
    dir_ = fs::temp_directory_path() / ("uv_peers_" + std::to_string(uv::test::fresh_seed()));
    fs::create_directories(dir_ / "data");
    uv::test::write_synthetic_mnist(dir_ / "data", 11);
  }
  void TearDown() override {
    if (!dir_.empty()) fs::remove_all(dir_);
  }
  CliResult peers(const std::string& flags) const {
    return run_shell(interpreter_ + " " + shell_quote(std::string(UV_SOURCE_DIR) + "/bench/peers.py") +
                     " --uvtrain " + shell_quote(UV_CLI_PATH) + " --data-dir " + shell_quote((dir_ / "data").string()) +
                     " " + flags);
  }
  std::string interpreter_;
  fs::path dir_;
};

TEST_F(Peers, TrainsBothNetworksAndWritesTheTable) {
  const fs::path out = dir_ / "peers.json";
  // --uvtrain-set reaches every uvtrain run (the CPU takes train.gemm and ignores it).
  const CliResult result = peers("--models mnist-b100 --epochs 1 --threads 1 --train-limit 300 "
                                 "--uvtrain-set train.gemm=cublaslt --json " + shell_quote(out.string()));
  ASSERT_EQ(result.exit_code, 0) << result.output;
  EXPECT_NE(result.output.find("uvtrain speed-up"), std::string::npos) << result.output;
  std::ifstream in(out);
  const json report = json::parse(in);
  int uvtrain_rows = 0, torch_rows = 0, materialise_rows = 0;
  for (const json& row : report.at("rows")) {
    SCOPED_TRACE(row.dump());
    EXPECT_EQ(row.at("model"), "mnist-b100");
    EXPECT_EQ(row.at("batch"), 100);
    if (row.contains("skipped")) {
      EXPECT_NE(row.at("implementation").get<std::string>().find("torch"), std::string::npos);
      continue;
    }
    EXPECT_GT(row.at("ms_per_step").get<double>(), 0.0);
    EXPECT_GT(row.at("samples_per_s").get<double>(), 0.0);
    EXPECT_GT(row.at("peak_mib").get<double>(), 0.0);
    EXPECT_GE(row.at("test_accuracy").get<double>(), 0.0);
    EXPECT_LE(row.at("test_accuracy").get<double>(), 1.0);
    if (row.at("implementation") == "uvtrain") {
      ++uvtrain_rows;
      EXPECT_DOUBLE_EQ(row.at("uvtrain_speedup").get<double>(), 1.0);
      EXPECT_GT(row.at("account_mib").get<double>(), 0.0);
      if (row.at("network") == "predicted") {
        // Against the same net with W materialised: the account holds no W and no dW.
        const double account = row.at("vs_materialise").at("account_bytes").get<double>();
        EXPECT_GT(account, 0.0);
        EXPECT_LT(account, 1.0);
      }
    } else if (row.at("implementation") == "uvtrain material.") {
      ++materialise_rows;
      EXPECT_EQ(row.at("network"), "predicted");
    } else {
      ++torch_rows;
    }
  }
  EXPECT_EQ(uvtrain_rows, 2);  // dense and predicted
  EXPECT_EQ(materialise_rows, 1);  // the predicted net's materialise run
  if (torch_rows == 0) std::printf("(PyTorch not importable here: its rows were skipped)\n");
}

TEST_F(Peers, BadFlagsAreNamed) {
  CliResult result = peers("--models mnist-b100,nope");
  EXPECT_EQ(result.exit_code, 2) << result.output;
  EXPECT_NE(result.output.find("unknown model 'nope'"), std::string::npos) << result.output;
  result = peers("--uvtrain-set train.gemm");
  EXPECT_EQ(result.exit_code, 2) << result.output;
  EXPECT_NE(result.output.find("--uvtrain-set takes KEY=VALUE"), std::string::npos) << result.output;
  result = peers("--threads 0");
  EXPECT_EQ(result.exit_code, 2) << result.output;
  EXPECT_NE(result.output.find("--threads"), std::string::npos) << result.output;
}

TEST_F(Peers, ProfileScriptComparesAutoWithMaterialiseOnTheCpu) {
  const std::string script = std::string(UV_SOURCE_DIR) + "/tools/profile.sh";
  const fs::path out = dir_ / "profile";
  const CliResult result = run_shell("bash " + shell_quote(script) + " --device cpu --steps 3 --uvtrain " +
                                  shell_quote(UV_CLI_PATH) + " --data-dir " + shell_quote((dir_ / "data").string()) +
                                  " --out " + shell_quote(out.string()));
  ASSERT_EQ(result.exit_code, 0) << result.output;
  const std::string text = uv::test::read_text(out / "comparison.txt");
  EXPECT_NE(text.find("account vs pool: consistent"), std::string::npos) << text;
  EXPECT_NE(text.find("materialised_weights"), std::string::npos) << text;
  // The training state's comparison leaves out the data (resident or projected) the two runs hold.
  EXPECT_NE(text.find("at the pool's peak less the data"), std::string::npos) << text;
  for (const char* run : {"run-auto", "run-materialise"}) EXPECT_TRUE(fs::exists(out / run / "summary.json")) << run;
  const json materialised = json::parse(uv::test::read_text(out / "run-materialise" / "summary.json"));
  EXPECT_GT(materialised["memory_bytes"]["materialised_weights"].get<int64_t>(), 0);

  CliResult bad = run_shell("bash " + shell_quote(script) + " --device gpu");
  EXPECT_EQ(bad.exit_code, 2) << bad.output;
  EXPECT_NE(bad.output.find("--device must be cpu or cuda"), std::string::npos) << bad.output;
  bad = run_shell("bash " + shell_quote(script) + " --steps 0");
  EXPECT_EQ(bad.exit_code, 2) << bad.output;
}

}  // namespace
