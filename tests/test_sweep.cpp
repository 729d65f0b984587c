// `uvtrain sweep` (engine/train/sweep.h): the sweep config's checks (exit 2 naming the file and the
// field), the grid it expands to, and end to end on a synthetic MNIST-layout set: a 4-cell sweep
// writes 4 result rows, a rerun skips every finished cell, a cell without its summary (and one
// without its directory) is the only one run again, a failing cell is reported while the rest
// finish, sweeps/smoke.json runs and tools/plot_results.py draws its table.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/backend/backend.h"
#include "engine/core/error.h"
#include "engine/train/config.h"
#include "engine/train/sweep.h"
#include "tests/cli_util.h"
#include "tests/test_util.h"

namespace {

namespace fs = std::filesystem;
using json = nlohmann::ordered_json;  // keeps the pairs in the order written, as in a sweep file
using uv::test::CliResult;
using uv::test::is_user_error;
using uv::test::read_text;
using uv::test::run_cli;
using uv::test::succeeded;
using uv::test::write_synthetic_mnist;

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) lines.push_back(line);
  return lines;
}

size_t count_of(const std::string& text, const std::string& piece) {
  size_t n = 0;
  for (size_t at = text.find(piece); at != std::string::npos; at = text.find(piece, at + piece.size())) ++n;
  return n;
}

// A temporary directory with data/ (the synthetic set), base.json (a 784-32-20-10 MLP whose first
// two layers the sweeps predict; 1 epoch of 6 batches) and a 4-cell sweep over it.
class SweepFixture : public uv::test::TempDirTest {
 protected:
  void SetUp() override {
    TempDirTest::SetUp();
    fs::create_directories(dir_ / "data");
    write_synthetic_mnist(dir_ / "data", 12345);
    const json base = {
        {"name", "sweep_test"},
        {"data", {{"dataset", "mnist"}, {"dir", (dir_ / "data").string()}}},
        {"model",
         {{"layers",
           {{{"type", "predicted_dense"}, {"units", 32}, {"dictionary", "se"}},
            {{"type", "predicted_dense"}, {"units", 20}, {"dictionary", "emp"}},
            {{"type", "dense"}, {"units", 10}, {"activation", "identity"}}}}}},
        {"train", {{"epochs", 1}, {"batch_size", 50}, {"lr", 0.1}}}};
    std::ofstream(dir_ / "base.json") << base.dump(2) << "\n";
  }

  static json layer(const std::string& type, const std::string& dictionary = "") {
    json l = {{"type", type}};
    if (!dictionary.empty()) l["dictionary"] = dictionary;
    return l;
  }

  // 2 pairs x 1 column count x 2 fractions x 1 seed.
  json sweep() const {
    return {{"name", "t"},
            {"base", "base.json"},  // relative to the sweep file's directory
            {"layers", {0, 1}},
            {"pairs",
             {{"SE-Emp", {{"layers", {layer("predicted_dense", "se"), layer("predicted_dense", "emp")}}}},
              {"SE-SE", {{"layers", {layer("predicted_dense", "se"), layer("predicted_dense", "se")}}}}}},
            {"columns", {1}},
            {"fractions", {0.1, 0.2}},
            {"seeds", {1}}};
  }

  std::string write_sweep(const json& s, const std::string& name = "sweep.json") const {
    const fs::path path = dir_ / name;
    std::ofstream(path) << s.dump(2) << "\n";
    return path.string();
  }

  fs::path out() const { return dir_ / "out"; }

  CliResult run_sweep(const std::string& path, const std::vector<std::string>& extra = {}) const {
    std::vector<std::string> args = {"sweep", "--config", path, "--out", out().string(), "--device", "cpu"};
    args.insert(args.end(), extra.begin(), extra.end());
    return run_cli(args);
  }

  std::vector<json> result_rows() const {
    std::vector<json> rows;
    for (const std::string& line : lines_of(read_text(out() / "results.jsonl"))) rows.push_back(json::parse(line));
    return rows;
  }
};

using SweepConfigCheck = SweepFixture;
using SweepGrid = SweepFixture;
using SweepRun = SweepFixture;

// ---------------------------------------------------------------------------------------------------
// The sweep config's checks: exit 2, the file and the field named, nothing run
// ---------------------------------------------------------------------------------------------------

TEST_F(SweepConfigCheck, UnknownKeyNamesFileAndKey) {
  json s = sweep();
  s["seed"] = {1};
  const std::string path = write_sweep(s);
  EXPECT_TRUE(is_user_error(run_sweep(path), {"sweep " + path, "unknown key 'seed'"}));
  EXPECT_FALSE(fs::exists(out()));
}

TEST_F(SweepConfigCheck, UnknownKeyInAPair) {
  json s = sweep();
  s["pairs"]["SE-SE"]["fractions"] = {0.5};
  const std::string path = write_sweep(s);
  EXPECT_TRUE(is_user_error(run_sweep(path), {path, "unknown key 'pairs.SE-SE.fractions'"}));
}

TEST_F(SweepConfigCheck, EmptyGridNamesTheEmptyField) {
  struct Case {
    const char* key;
    json value;
    const char* message;
  };
  const std::vector<Case> cases = {{"seeds", json::array(), "'seeds' is empty"},
                                   {"pairs", json::object(), "'pairs' is empty"},
                                   {"fractions", json::array(), "'fractions' is missing or empty"},
                                   {"columns", json::array(), "'columns' is missing or empty"},
                                   {"layers", json::array(), "'layers' is empty"}};
  for (const Case& c : cases) {
    SCOPED_TRACE(c.key);
    json s = sweep();
    s[c.key] = c.value;
    const std::string path = write_sweep(s);
    EXPECT_TRUE(is_user_error(run_sweep(path), {"sweep " + path, c.message}));
  }
  EXPECT_FALSE(fs::exists(out()));
}

TEST_F(SweepConfigCheck, FractionOutsideZeroOne) {
  for (const double bad : {0.0, 1.5, -0.2}) {
    SCOPED_TRACE(bad);
    json s = sweep();
    s["fractions"] = {0.1, bad};
    const std::string path = write_sweep(s);
    EXPECT_TRUE(is_user_error(run_sweep(path), {path, "'fractions[1]' = " + json(bad).dump() + " is outside (0, 1]"}));
  }
  json s = sweep();
  s["fractions"] = {0.1, "0.2"};
  EXPECT_TRUE(is_user_error(run_sweep(write_sweep(s)), {"'fractions[1]' = \"0.2\" is outside (0, 1]"}));
}

TEST_F(SweepConfigCheck, UnknownPairLayerType) {
  json s = sweep();
  s["pairs"]["SE-Emp"]["layers"][1]["type"] = "predicted";
  const std::string path = write_sweep(s);
  EXPECT_TRUE(is_user_error(run_sweep(path), {path, "'pairs.SE-Emp.layers[1].type' = \"predicted\" is not one of",
                                              "predicted_dense"}));
}

// A field the run config does not know is caught by validating every cell before any runs; the
// message names the sweep file, the cell, the pair, the base config and the field.
TEST_F(SweepConfigCheck, UnknownPairLayerFieldNamesCellAndField) {
  json s = sweep();
  s["pairs"]["SE-SE"]["layers"][0]["dictonary"] = "se";
  const std::string path = write_sweep(s);
  EXPECT_TRUE(is_user_error(run_sweep(path), {path, "cell SE-SE_J1_f0.1_s1", "'pairs.SE-SE'",
                                              (dir_ / "base.json").string(), "'model.layers[0].dictonary'"}));
  s = sweep();
  s["pairs"]["SE-SE"]["layers"][1]["dictionary"] = "gauss";
  EXPECT_TRUE(is_user_error(run_sweep(write_sweep(s)), {"'model.layers[1].dictionary' = \"gauss\" is not one of"}));
}

TEST_F(SweepConfigCheck, GridOwnsFractionAndColumns) {
  json s = sweep();
  s["pairs"]["SE-SE"]["layers"][0]["fraction"] = 0.5;
  EXPECT_TRUE(is_user_error(run_sweep(write_sweep(s)), {"'pairs.SE-SE.layers[0].fraction' is the grid's"}));
  s = sweep();
  s["pairs"]["SE-SE"]["layers"][1]["columns"] = 4;
  EXPECT_TRUE(is_user_error(run_sweep(write_sweep(s)), {"'pairs.SE-SE.layers[1].columns' is the grid's"}));
}

TEST_F(SweepConfigCheck, BaseAndLayerIndices) {
  json s = sweep();
  s["base"] = "no_such.json";
  const std::string path = write_sweep(s);
  EXPECT_TRUE(is_user_error(run_sweep(path), {path, "'base' = \"no_such.json\"", (dir_ / "no_such.json").string()}));
  s = sweep();
  s["layers"] = {0, 3};
  EXPECT_TRUE(is_user_error(run_sweep(write_sweep(s)), {"'layers[1]' = 3 is past the base config's 3 layers"}));
  s = sweep();
  s["layers"] = {0};
  EXPECT_TRUE(is_user_error(run_sweep(write_sweep(s)), {"'pairs.SE-Emp.layers' has 2 entries but 'layers' names 1"}));
  s = sweep();
  s["set"] = {"train.lr=-1"};
  EXPECT_TRUE(is_user_error(run_sweep(write_sweep(s)), {"'base' with 'set'", "'train.lr' = -1"}));
  s = sweep();
  s["columns"] = {3};  // 32 units are not divisible by 3 columns
  EXPECT_TRUE(is_user_error(run_sweep(write_sweep(s)), {"cell SE-Emp_J3_f0.1_s1", "not divisible by columns = 3"}));
}

// ---------------------------------------------------------------------------------------------------
// The grid
// ---------------------------------------------------------------------------------------------------

// `--set` reaches layer fields by index, including fields the config file leaves to their defaults.
TEST(SweepOverrides, LayerFieldsByIndex) {
  const std::string text = R"({"model": {"layers": [{"type": "predicted_dense", "units": 20},
                                                     {"type": "dense", "units": 10}]}})";
  const uv::RunConfig c = uv::parse_config(
      text, "t.json",
      {"model.layers[0].fraction=0.25", "model.layers[0].columns=4", "model.layers[0].dictionary=\"emp\"",
       "model.layers.1.type=lowrank", "model.layers[0].ridge=auto", "seed=3"});
  EXPECT_DOUBLE_EQ(c.layers[0].fraction, 0.25);
  EXPECT_EQ(c.layers[0].columns, 4);
  EXPECT_EQ(c.layers[0].dictionary, "emp");
  EXPECT_DOUBLE_EQ(c.layers[0].ridge, 1e-3);  // auto: Emp's λ
  EXPECT_EQ(c.layers[1].type, "lowrank");
  EXPECT_EQ(c.seed, 3u);
  EXPECT_THROW(uv::parse_config(text, "t.json", {"model.layers[2].fraction=0.1"}), uv::UserError);
}

TEST_F(SweepGrid, PairsThatIgnoreColumnsOrFractionGetOneCell) {
  json s = sweep();
  s["pairs"]["LowRank"] = {{"layers", {{{"type", "lowrank"}, {"columns", 1}}, layer("lowrank")}}, {"columns_free", true}};
  s["pairs"]["Dense"] = {{"layers", {layer("dense"), layer("dense")}}, {"fraction_free", true}};
  s["columns"] = {1, 2};
  s["seeds"] = {1, 2};
  const uv::SweepConfig config = uv::parse_sweep_config(s.dump(), (dir_ / "grid.json").string());
  EXPECT_EQ(config.base, (dir_ / "base.json").string());
  const std::vector<uv::SweepCell> cells = uv::sweep_cells(config);
  // Per seed: SE-Emp and SE-SE 2 J x 2 fractions each, LowRank 2 fractions, Dense 1.
  ASSERT_EQ(cells.size(), 2u * (4 + 4 + 2 + 1));
  std::vector<std::string> ids;
  for (const uv::SweepCell& c : cells) ids.push_back(c.id);
  EXPECT_EQ(ids[0], "SE-Emp_J1_f0.1_s1");
  EXPECT_EQ(ids[3], "SE-Emp_J2_f0.2_s1");
  EXPECT_EQ(ids[8], "LowRank_f0.1_s1");
  EXPECT_EQ(ids[10], "Dense_s1");
  EXPECT_EQ(ids[11], "SE-Emp_J1_f0.1_s2");  // seeds outermost
  EXPECT_EQ(std::set<std::string>(ids.begin(), ids.end()).size(), ids.size());

  const uv::SweepCell& c = cells[14];
  EXPECT_EQ(c.id, "SE-Emp_J2_f0.2_s2");
  EXPECT_EQ(c.pair, "SE-Emp");
  EXPECT_EQ(c.columns, 2);
  EXPECT_DOUBLE_EQ(c.fraction, 0.2);
  EXPECT_EQ(c.seed, 2u);
  for (const char* o : {"model.layers[0].type=\"predicted_dense\"", "model.layers[1].dictionary=\"emp\"",
                               "model.layers[0].fraction=0.2", "model.layers[1].columns=2", "seed=2",
                               "name=\"t_SE-Emp_J2_f0.2_s2\""})
    EXPECT_NE(std::find(c.overrides.begin(), c.overrides.end(), o), c.overrides.end()) << o;
  const uv::SweepCell& dense = cells[21];
  EXPECT_EQ(dense.id, "Dense_s2");
  EXPECT_EQ(dense.columns, 0);
  EXPECT_EQ(dense.fraction, 0.0);
  for (const std::string& o : dense.overrides) {
    EXPECT_EQ(o.find("fraction"), std::string::npos) << o;
    EXPECT_EQ(o.find("columns"), std::string::npos) << o;
  }
}

// Every committed sweep file loads, with every cell's run config resolved and checked. The J = 1 panel
// (sweeps/mnist_mlp_j1.json) runs into the full grid's directory, so each of its cells must be the
// full grid's cell of the same id, with the same overrides.
TEST(SweepFiles, EveryCommittedSweepLoadsAndTheJ1PanelIsPartOfTheFullGrid) {
  const fs::path dir = fs::path(UV_SOURCE_DIR) / "sweeps";
  int files = 0;
  for (const fs::directory_entry& entry : fs::directory_iterator(dir)) {
    if (entry.path().extension() != ".json") continue;
    SCOPED_TRACE(entry.path().string());
    EXPECT_NO_THROW(uv::sweep_cells(uv::load_sweep_config(entry.path().string())));
    ++files;
  }
  EXPECT_GE(files, 6);
  const uv::SweepConfig full = uv::load_sweep_config((dir / "mnist_mlp.json").string());
  const uv::SweepConfig j1 = uv::load_sweep_config((dir / "mnist_mlp_j1.json").string());
  EXPECT_EQ(j1.name, full.name);
  std::map<std::string, std::vector<std::string>> full_cells;
  for (const uv::SweepCell& c : uv::sweep_cells(full)) full_cells[c.id] = c.overrides;
  const std::vector<uv::SweepCell> panel = uv::sweep_cells(j1);
  EXPECT_EQ(panel.size(), 213u);  // 6 pairs × 10 fractions × 3 seeds, LowRank 30, Dense 3
  for (const uv::SweepCell& c : panel) {
    ASSERT_TRUE(full_cells.count(c.id)) << c.id;
    EXPECT_EQ(c.overrides, full_cells[c.id]) << c.id;
    EXPECT_LE(c.columns, 1) << c.id;
  }
}

// ---------------------------------------------------------------------------------------------------
// Running
// ---------------------------------------------------------------------------------------------------

TEST_F(SweepRun, RunsResumesAndRerunsOnlyUnfinishedCells) {
  const std::string path = write_sweep(sweep());
  const CliResult first = run_sweep(path, {"--jobs", "2"});
  ASSERT_TRUE(succeeded(first));
  const std::vector<std::string> ids = {"SE-Emp_J1_f0.1_s1", "SE-Emp_J1_f0.2_s1", "SE-SE_J1_f0.1_s1", "SE-SE_J1_f0.2_s1"};
  EXPECT_NE(first.output.find("4 cells: 0 already finished (skipped), 0 to resume, 4 to run; 2 at a time"),
            std::string::npos) << first.output;
  EXPECT_EQ(count_of(first.output, "test error"), 4u) << first.output;
  std::map<std::string, std::string> logs;
  for (const std::string& id : ids) {
    const fs::path cell = out() / "cells" / id;
    EXPECT_TRUE(fs::exists(cell / "summary.json")) << id;
    logs[id] = read_text(cell / "log.txt");
    EXPECT_NE(logs[id].find("OPENBLAS_NUM_THREADS="), std::string::npos) << logs[id];
    EXPECT_NE(logs[id].find("test error"), std::string::npos) << logs[id];  // the child's own summary
  }
  const std::vector<std::string> csv = lines_of(read_text(out() / "results.csv"));
  ASSERT_EQ(csv.size(), 5u);
  EXPECT_EQ(csv[0],
            "sweep,pair,columns,fraction,seed,learned_fraction,learned_params,predicted_params,train_error,"
            "test_error,seconds,device,cell_dir");
  EXPECT_EQ(csv[1].rfind("t,SE-Emp,1,0.1,1,", 0), 0u) << csv[1];
  std::vector<json> rows = result_rows();
  ASSERT_EQ(rows.size(), 4u);
  for (const json& r : rows) {
    EXPECT_GT(r.at("learned_fraction").get<double>(), 0.0);
    EXPECT_LT(r.at("learned_fraction").get<double>(), 0.5);
    EXPECT_GT(r.at("predicted_params").get<int64_t>(), 0);
    EXPECT_GE(r.at("test_error").get<double>(), 0.0);
    EXPECT_LE(r.at("test_error").get<double>(), 1.0);
  }
  EXPECT_LT(rows[0].at("learned_params").get<int64_t>(), rows[1].at("learned_params").get<int64_t>());  // 10% < 20%

  // Everything finished: nothing runs, no log grows, the table is rewritten whole.
  fs::remove(out() / "results.csv");
  const CliResult again = run_sweep(path);
  ASSERT_TRUE(succeeded(again));
  EXPECT_NE(again.output.find("all 4 cells already finished (skipped)"), std::string::npos) << again.output;
  EXPECT_EQ(count_of(again.output, "test error"), 0u) << again.output;
  for (const std::string& id : ids) EXPECT_EQ(read_text(out() / "cells" / id / "log.txt"), logs[id]) << id;
  EXPECT_EQ(lines_of(read_text(out() / "results.csv")).size(), 5u);

  // One cell lost its summary (it keeps its checkpoint: resumed), another its whole directory (run
  // afresh); only those two run.
  fs::remove(out() / "cells" / ids[1] / "summary.json");
  fs::remove_all(out() / "cells" / ids[2]);
  const CliResult partial = run_sweep(path);
  ASSERT_TRUE(succeeded(partial));
  EXPECT_NE(partial.output.find("4 cells: 2 already finished (skipped), 1 to resume, 1 to run"), std::string::npos)
      << partial.output;
  EXPECT_NE(partial.output.find(ids[1] + " (resumed): test error"), std::string::npos) << partial.output;
  EXPECT_NE(partial.output.find(ids[2] + ": test error"), std::string::npos) << partial.output;
  EXPECT_EQ(count_of(partial.output, "test error"), 2u) << partial.output;
  EXPECT_EQ(read_text(out() / "cells" / ids[0] / "log.txt"), logs[ids[0]]);
  EXPECT_EQ(read_text(out() / "cells" / ids[3] / "log.txt"), logs[ids[3]]);
  EXPECT_NE(read_text(out() / "cells" / ids[1] / "log.txt").find("--resume"), std::string::npos);
  rows = result_rows();
  ASSERT_EQ(rows.size(), 4u);
  for (size_t i = 0; i < ids.size(); ++i) EXPECT_EQ(fs::path(rows[i].at("cell_dir").get<std::string>()).filename(), ids[i]);
}

TEST_F(SweepRun, MaxCellsRunsTheGridsFirstCells) {
  const CliResult result = run_sweep(write_sweep(sweep()), {"--max-cells", "1"});
  ASSERT_TRUE(succeeded(result));
  EXPECT_NE(result.output.find("1 cells (the first of the grid's 4, --max-cells)"), std::string::npos) << result.output;
  EXPECT_EQ(count_of(result.output, "test error"), 1u) << result.output;
  ASSERT_EQ(result_rows().size(), 1u);
  EXPECT_EQ(result_rows()[0].at("pair"), "SE-Emp");
  EXPECT_FALSE(fs::exists(out() / "cells" / "SE-SE_J1_f0.1_s1"));
}

// --set reaches every cell it starts (after the sweep's own set); a bad one is refused before any cell.
TEST_F(SweepRun, SetOverridesEveryNewCellAndIsChecked) {
  const std::string path = write_sweep(sweep());
  EXPECT_TRUE(is_user_error(run_sweep(path, {"--set", "train.small_gemm=maybe"}),
                            {"uvtrain sweep --set", "train.small_gemm", "\"maybe\""}));
  EXPECT_FALSE(fs::exists(out() / "cells"));
  ASSERT_TRUE(succeeded(run_sweep(path, {"--max-cells", "1", "--set", "train.small_gemm=on"})));
  const json cell = json::parse(read_text(out() / "cells" / "SE-Emp_J1_f0.1_s1" / "config.json"));
  EXPECT_EQ(cell.at("train").at("small_gemm"), "on") << cell.dump();
}

// --device cuda on a machine without a GPU: refused once, before any cell is created.
TEST_F(SweepRun, CudaWithoutADeviceIsRefusedBeforeAnyCell) {
  if (uv::query_devices().cuda_devices > 0) GTEST_SKIP() << "this machine has a CUDA device";
  const CliResult result =
      run_cli({"sweep", "--config", write_sweep(sweep()), "--out", out().string(), "--device", "cuda"});
  EXPECT_TRUE(is_user_error(result, {"--device cuda", "no usable CUDA device"})) << result.output;
  EXPECT_FALSE(fs::exists(out() / "cells")) << "cells were created";
}

// --collect runs nothing and rewrites the table from every finished cell of the whole grid (a sweep
// run with --max-cells 1 wrote a one-row table; a second finished cell appears in the collected one).
TEST_F(SweepRun, CollectRewritesTheTableFromFinishedCellsOnly) {
  const std::string path = write_sweep(sweep());
  ASSERT_TRUE(succeeded(run_sweep(path, {"--max-cells", "2"})));
  fs::remove(out() / "results.csv");
  const CliResult collected = run_sweep(path, {"--collect"});
  ASSERT_TRUE(succeeded(collected));
  EXPECT_NE(collected.output.find("2 of 4 cells finished"), std::string::npos) << collected.output;
  EXPECT_EQ(count_of(collected.output, "test error"), 0u) << collected.output;
  EXPECT_EQ(result_rows().size(), 2u);
  EXPECT_FALSE(fs::exists(out() / "cells" / "SE-SE_J1_f0.1_s1"));
  const CliResult missing = run_cli({"sweep", "--config", path, "--collect", "--out", (out() / "nope").string()});
  EXPECT_TRUE(is_user_error(missing, {"--collect", "no sweep directory"}));
}

// A rank larger than the layer's inputs passes the config checks but fails when the network is
// built: the cell is reported with its log, the other cells finish, the exit code is 3.
TEST_F(SweepRun, FailingCellIsReportedAndTheRestFinish) {
  json s = sweep();
  s["pairs"]["Bad"] = {{"layers", {{{"type", "predicted_dense"}, {"dictionary", "se"}, {"rank", 100000}},
                                   layer("predicted_dense", "se")}}};
  const std::string path = write_sweep(s);
  const CliResult result = run_sweep(path);
  EXPECT_EQ(result.exit_code, 3) << result.output;
  const std::string log = (out() / "cells" / "Bad_J1_f0.1_s1" / "log.txt").string();
  EXPECT_NE(result.output.find("Bad_J1_f0.1_s1: FAILED (exit code 2): "), std::string::npos) << result.output;
  EXPECT_NE(result.output.find("is larger than the layer's 784 inputs"), std::string::npos) << result.output;
  EXPECT_NE(result.output.find("log: " + log), std::string::npos) << result.output;
  EXPECT_NE(result.output.find("2 failed"), std::string::npos) << result.output;
  EXPECT_EQ(count_of(result.output, ": test error"), 4u) << result.output;
  EXPECT_EQ(result_rows().size(), 4u);

  // A rerun tries the failed cells again (they left no checkpoint) and skips the finished ones.
  const CliResult again = run_sweep(path);
  EXPECT_EQ(again.exit_code, 3) << again.output;
  EXPECT_NE(again.output.find("6 cells: 4 already finished (skipped), 0 to resume, 2 to run"), std::string::npos)
      << again.output;
  EXPECT_EQ(count_of(read_text(log), "== uvtrain sweep"), 2u);  // the log keeps both attempts
}

// sweeps/smoke.json as written (its base resolved from the repository, data.dir pointed at the
// synthetic set), then tools/plot_results.py on its table when matplotlib is installed.
TEST_F(SweepRun, SmokeSweepRunsAndPlots) {
  const fs::path source = fs::path(UV_SOURCE_DIR) / "sweeps";
  json s = json::parse(read_text(source / "smoke.json"), nullptr, true, /*ignore_comments=*/true);
  s["base"] = (source / s["base"].get<std::string>()).lexically_normal().string();
  s["set"].push_back("data.dir=" + (dir_ / "data").string());
  const CliResult result = run_sweep(write_sweep(s, "smoke.json"));
  ASSERT_TRUE(succeeded(result));
  const std::vector<json> rows = result_rows();
  ASSERT_EQ(rows.size(), 5u);  // SE-Emp: 2 J x 2 fractions; Dense: 1
  EXPECT_EQ(rows.back().at("pair"), "Dense");
  EXPECT_TRUE(rows.back().at("fraction").is_null());
  EXPECT_DOUBLE_EQ(rows.back().at("learned_fraction").get<double>(), 1.0);

  // tools/results_table.py (standard library only): one row per pair and J, the gap to Dense.
  {
    const std::string command = "python3 " + uv::test::shell_quote((fs::path(UV_SOURCE_DIR) / "tools" / "results_table.py").string()) +
                                " " + uv::test::shell_quote((out() / "results.csv").string()) +
                                " --against Dense --within 100";
    const uv::test::CliResult result = uv::test::run_shell(command);
    const std::string& table = result.output;
    ASSERT_EQ(result.exit_code, 0) << table;
    EXPECT_NE(table.find("| pair | J | f = 0.1 | f = 0.25 |"), std::string::npos) << table;
    EXPECT_NE(table.find("| SE-Emp | 5 |"), std::string::npos) << table;
    EXPECT_NE(table.find("5 finished cells"), std::string::npos) << table;
    // The sweep's wall time on each machine from its cells' run intervals (they ran two at a time).
    EXPECT_NE(table.find("wall time on cpu while its cells ran (union of 5 cells' run intervals)"), std::string::npos)
        << table;
    EXPECT_NE(table.find("— within 100"), std::string::npos) << table;
  }

  // The python3 on PATH, else Debian's (where tools/setup.sh installs python3-matplotlib).
  std::string python;
  for (const std::string candidate : {"python3", "/usr/bin/python3"})
    if (python.empty() && std::system((candidate + " -c 'import matplotlib' >/dev/null 2>&1").c_str()) == 0)
      python = candidate;
  if (python.empty()) GTEST_SKIP() << "no python3 with matplotlib (python3-matplotlib): tools/plot_results.py not tested";
  const fs::path png = dir_ / "smoke.png";
  const std::string command = python + " " + uv::test::shell_quote((fs::path(UV_SOURCE_DIR) / "tools" / "plot_results.py").string()) +
                              " " + uv::test::shell_quote((out() / "results.csv").string()) + " -o " +
                              uv::test::shell_quote(png.string()) + " --title smoke 2>&1";
  ASSERT_EQ(std::system(command.c_str()), 0) << command;
  const std::string bytes = read_text(png);
  ASSERT_GE(bytes.size(), 8u);
  EXPECT_EQ(bytes.substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8));
  // The axis limits the docs' figure uses, and a bad one refused with exit 2.
  const fs::path clipped = dir_ / "clipped.png";
  EXPECT_EQ(std::system((python + " " + uv::test::shell_quote((fs::path(UV_SOURCE_DIR) / "tools" / "plot_results.py").string()) +
                         " " + uv::test::shell_quote((out() / "results.csv").string()) + " -o " +
                         uv::test::shell_quote(clipped.string()) + " --ymax 5 --xmax 1.05 >/dev/null 2>&1").c_str()),
            0);
  EXPECT_TRUE(fs::exists(clipped));
  const int bad = std::system((python + " " + uv::test::shell_quote((fs::path(UV_SOURCE_DIR) / "tools" / "plot_results.py").string()) +
                               " " + uv::test::shell_quote((out() / "results.csv").string()) + " -o " +
                               uv::test::shell_quote((dir_ / "bad.png").string()) + " --ymax 0 >/dev/null 2>&1").c_str());
  EXPECT_TRUE(WIFEXITED(bad) && WEXITSTATUS(bad) == 2) << bad;
}

}  // namespace
