// tools/plot_scale.py (bench/scale's plot and table) on a small hand-written benchmark JSON: the
// PNG is written, repetitions give their median time, and a case skipped for memory shows as such.
// Skipped when no python3 with matplotlib is installed.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

#include "tests/cli_util.h"
#include "tests/test_util.h"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using uv::test::read_text;
using uv::test::shell_quote;

class ScalePlot : public uv::test::TempDirTest {};

// One benchmark entry as bench_scale writes it (Google Benchmark's JSON with its counters).
json entry(const std::string& strategy, int64_t k, double ms, double peak_bytes) {
  return {{"name", strategy + "/K:" + std::to_string(k) + "/manual_time"},
          {"run_type", "iteration"},
          {"iterations", 1},
          {"real_time", ms},
          {"time_unit", "ms"},
          {"label", strategy},
          {"K", k},
          {"M", 100},
          {"ms_per_step", ms},
          {"peak_bytes", peak_bytes},
          {"learned_params", 0.05 * k * k},
          {"weight_floats_if_dense", k * k}};
}

TEST_F(ScalePlot, WritesPngAndTable) {
  std::string python;  // the python3 on PATH, else Debian's (python3-matplotlib installs there)
  for (const std::string candidate : {"python3", "/usr/bin/python3"})
    if (python.empty() && std::system((candidate + " -c 'import matplotlib' >/dev/null 2>&1").c_str()) == 0)
      python = candidate;
  if (python.empty()) GTEST_SKIP() << "no python3 with matplotlib (python3-matplotlib): tools/plot_scale.py not tested";

  json report;
  report["context"] = {{"backend", "cpu (test)"}, {"fraction", "0.050000"}, {"batch", "100"}};
  json& b = report["benchmarks"];
  for (int64_t k : {512, 1024, 2048}) {
    b.push_back(entry("dense", k, k / 512.0, 48.0 * k * k));  // 2 ms and 48 MiB at K = 1024
    b.push_back(entry("materialise", k, k / 256.0, 32.0 * k * k));
  }
  // Three repetitions of one case: the table shows their median, 2.
  for (double ms : {1.0, 3.0, 2.0}) b.push_back(entry("chain", 1024, ms, 1048576.0));
  b.push_back(entry("chain", 512, 0.5, 524288.0));
  b.push_back({{"name", "chain/K:1024/manual_time_median"}, {"run_type", "aggregate"}, {"K", 1024},
               {"ms_per_step", 99.0}, {"peak_bytes", 1.0}});  // aggregates are not read
  b.push_back({{"name", "dense/K:4096/manual_time"}, {"run_type", "iteration"}, {"error_occurred", true},
               {"error_message", "skipped: needs 7.00 GiB, over the 6 GiB limit (--max_gib)"}});
  const fs::path json_path = dir_ / "scale.json";
  uv::test::write_text(json_path, report.dump(1));

  const fs::path png = dir_ / "scale.png";
  const std::string command = python + " " + shell_quote((fs::path(UV_SOURCE_DIR) / "tools" / "plot_scale.py").string()) +
                              " " + shell_quote(json_path.string()) + " -o " + shell_quote(png.string()) +
                              " --table";
  const uv::test::CliResult result = uv::test::run_shell(command);
  const std::string& output = result.output;
  ASSERT_EQ(result.exit_code, 0) << command << "\n" << output;

  const std::string bytes = read_text(png);
  ASSERT_GE(bytes.size(), 8u);
  EXPECT_EQ(bytes.substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8));
  EXPECT_NE(output.find("| K | dense ms/step | materialise ms/step | chain ms/step |"), std::string::npos) << output;
  EXPECT_NE(output.find("| 1024 | 2 | 4 | 2 | 48.0 | 32.0 | 1.0 |"), std::string::npos) << output;
  EXPECT_NE(output.find("| 4096 | skipped |"), std::string::npos) << output;
  EXPECT_NE(output.find("dense K=4096: skipped: needs 7.00 GiB"), std::string::npos) << output;
}

}  // namespace
