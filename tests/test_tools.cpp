// The developer scripts under tools/ that no other test runs: tools/ncu_summary.py (gpu-check's
// kernels stage) on a synthetic Nsight Compute summary, and its errors; `tools/gpu-check pack-cells`
// (how a sweep's finished cells travel to and from a GPU machine); tools/results_table.py's wall
// time per machine; tools/bench_table.py's goal across runs.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "tests/cli_util.h"
#include "tests/test_util.h"

namespace uv {
namespace {

// test::run_shell, its output appended to `output`: returns the exit status.
int run_shell(const std::string& command, std::string& output) {
  const test::CliResult result = test::run_shell(command);
  output += result.output;
  return result.exit_code;
}

class ToolsNcuSummary : public test::TempDirTest {
 protected:
  // Runs tools/`script` on `file` (then `options`); returns its exit status and appends its stdout
  // and stderr to `output`.
  int run(const std::string& file, std::string& output, const char* script = "ncu_summary.py",
          const std::string& options = "") {
    return run_shell("python3 " + test::shell_quote((std::filesystem::path(UV_SOURCE_DIR) / "tools" / script).string()) +
                         " " + test::shell_quote(file) + options,
                     output);
  }
};

// tools/ncu_source_top.py: ncu's source page (CSV, one row per SASS instruction) summarised by
// opcode (predicates dropped) and by instruction, shares of the PC samples; exit 2 without the table.
TEST_F(ToolsNcuSummary, SourcePageBySamples) {
  std::ofstream(path("src.csv")) << R"csv("Kernel Name","tf32x3_wgmma_kernel"
"# Address","Source","Warp Stall Sampling (All Samples)","Warp Stall Sampling (Not-issued Samples)","Instructions Executed"
"0x100","BAR.SYNC.DEFER_BLOCKING 0x0","4,000","3,900","10"
"0x110","@P0 LDS.128 R4, [R2]","1,000","900","40"
"0x120","LDS.128 R8, [R2+0x10]","1,000","800","40"
"0x130","HGMMA.64x128x8.F32.TF32 R24, R4, gdesc[UR4], R24","2,000","100","30"
"0x140","WARPGROUP.DEPBAR.LE gsb0, 0x1","2,000","1,900","10"
"0x150","IADD3 R1, R1, 0x1, RZ","0","0","10"
)csv";
  std::string out;
  ASSERT_EQ(run(path("src.csv"), out, "ncu_source_top.py", " --top 2"), 0) << out;
  EXPECT_NE(out.find("6 instructions, 10000 samples"), std::string::npos) << out;
  EXPECT_NE(out.find("   40.0%  BAR.SYNC.DEFER_BLOCKING"), std::string::npos) << out;
  EXPECT_NE(out.find("   20.0%  LDS.128"), std::string::npos) << out;  // both loads, predicated or not
  EXPECT_EQ(out.find("IADD3"), std::string::npos) << out;             // under 1%, and not in the top 2
  EXPECT_NE(out.find("   40.0%     0x100  BAR.SYNC.DEFER_BLOCKING 0x0"), std::string::npos) << out;
  // The header as other versions print it: "Address" without the '#'.
  std::ofstream(path("plain.csv")) << "\"Address\",\"Source\",\"Warp Stall Sampling (All Samples)\"\n"
                                      "\"0x10\",\"BAR.SYNC 0x0\",\"3\"\n\"0x20\",\"NOP\",\"1\"\n";
  ASSERT_EQ(run(path("plain.csv"), out, "ncu_source_top.py"), 0) << out;
  EXPECT_NE(out.find("   75.0%      0x10  BAR.SYNC 0x0"), std::string::npos) << out;
  std::ofstream(path("none.csv")) << "\"ID\",\"Kernel Name\"\n\"0\",\"k\"\n";
  EXPECT_EQ(run(path("none.csv"), out, "ncu_source_top.py"), 2) << out;
}

// Two steps of two kernels (the per-step gather, and a norm bound twice a step in ns and µs units):
// per-step launches, times and shares divided by the gather's count.
TEST_F(ToolsNcuSummary, DividesByTheStepsAndConvertsUnits) {
  std::ofstream(path("ncu.txt")) << R"(==PROF== Disconnected from process 42
[42] uvtrain@127.0.0.1
  uv::gather_batch_kernel(const float *, const int *, long, float *) (31, 1, 1)x(256, 1, 1), Device 0, CC 9.0, Invocations 2
    Section: GPU Speed Of Light Throughput
    ----------------------- ----------- --------- --------- ---------
    Metric Name             Metric Unit   Minimum   Maximum   Average
    ----------------------- ----------- --------- --------- ---------
    Duration                         us      3.90      4.10      4.00
    ----------------------- ----------- --------- --------- ---------

  uv::max_column_norm_kernel(uv::cuda::ColumnNormTargets, float) (17, 1, 1)x(32, 32, 1), Device 0, CC 9.0, Invocations 4
    Section: GPU Speed Of Light Throughput
    ----------------------- ----------- --------- --------- ---------
    Metric Name             Metric Unit   Minimum   Maximum   Average
    ----------------------- ----------- --------- --------- ---------
    Duration                         ns  5,900.00  6,100.00  6,000.00
    ----------------------- ----------- --------- --------- ---------
)";
  std::string out;
  ASSERT_EQ(run(path("ncu.txt"), out), 0) << out;
  EXPECT_NE(out.find("2 steps profiled; per step: 3.0 launches, 16.0 µs"), std::string::npos) << out;
  // The norm bound first (12 µs a step, 75%), then the gather (4 µs, 25%).
  const size_t norm = out.find("    12.0  75.0%     2.00     6.00  uv::max_column_norm_kernel (17, 1, 1)x(32, 32, 1)");
  const size_t gather = out.find("     4.0  25.0%     1.00     4.00  uv::gather_batch_kernel (31, 1, 1)x(256, 1, 1)");
  EXPECT_NE(norm, std::string::npos) << out;
  EXPECT_NE(gather, std::string::npos) << out;
  EXPECT_LT(norm, gather) << out;
}

// The long unit names older ncu versions print, an invocation count with a thousands separator,
// and a kernel name holding parentheses; an unknown unit is refused (exit 2), not skipped.
TEST_F(ToolsNcuSummary, ReadsLongUnitsAndNamesWithParentheses) {
  std::ofstream(path("ncu.txt")) << R"(
  uv::gather_batch_kernel(const float *) (31, 1, 1)x(256, 1, 1), Device 0, CC 9.0, Invocations 1,000
    Duration                    usecond      3.90      4.10      4.00
  void uv::cuda::(anonymous namespace)::tile_kernel<float>(const float *, int) (8, 1, 1)x(128, 1, 1), Device 0, CC 9.0, Invocations 2,000
    Duration                    nsecond    900.00  1,100.00  1,000.00
)";
  std::string out;
  ASSERT_EQ(run(path("ncu.txt"), out), 0) << out;
  EXPECT_NE(out.find("1000 steps profiled; per step: 3.0 launches, 6.0 µs"), std::string::npos) << out;
  EXPECT_NE(out.find("     2.00     1.00  uv::cuda::(anonymous namespace)::tile_kernel<float> (8, 1, 1)x(128, 1, 1)"),
            std::string::npos)
      << out;
  std::ofstream(path("odd_unit.txt")) << R"(
  uv::gather_batch_kernel(const float *) (31, 1, 1)x(256, 1, 1), Device 0, CC 9.0, Invocations 2
    Duration                  fortnight      1.00      1.00      1.00
)";
  out.clear();
  EXPECT_EQ(run(path("odd_unit.txt"), out), 2) << out;
  EXPECT_NE(out.find("unknown duration unit 'fortnight'"), std::string::npos) << out;
}

// ncu stopped before any summary, a missing file, and a summary without the per-step kernel: exit 2
// with the reason, never a table.
TEST_F(ToolsNcuSummary, RefusesWhatItCannotRead) {
  std::ofstream(path("empty.txt")) << "==PROF== Connected to process 42\n";
  std::string out;
  EXPECT_EQ(run(path("empty.txt"), out), 2) << out;
  EXPECT_NE(out.find("no kernel summary in"), std::string::npos) << out;
  out.clear();
  EXPECT_EQ(run(path("missing.txt"), out), 2) << out;
  EXPECT_NE(out.find("cannot read"), std::string::npos) << out;
  std::ofstream(path("no_gather.txt")) << R"(
  uv::sgd_kernel(float *) (274, 1, 1)x(256, 1, 1), Device 0, CC 9.0, Invocations 3
    Duration                         us      3.00      3.00      3.00
)";
  out.clear();
  EXPECT_EQ(run(path("no_gather.txt"), out), 2) << out;
  EXPECT_NE(out.find("'gather_batch_kernel' was not profiled"), std::string::npos) << out;
}

using ToolsGpuCheck = test::TempDirTest;

// Two finished cells (a summary; one name with a space) and one cut short (a checkpoint, no
// summary): the tarball holds sweep.json and the finished cells' summaries and configs, nothing of
// the unfinished cell and no checkpoint. A sweep without finished cells, or a directory without
// cells, is refused with exit 2.
TEST_F(ToolsGpuCheck, PackCellsTakesOnlyFinishedCellsWithoutCheckpoints) {
  namespace fs = std::filesystem;
  const fs::path sweep = dir_ / "sweep";
  for (const char* cell : {"SE-Emp_J1_f0.1_s1", "Dense s1", "SE-SE_J1_f0.1_s1"}) fs::create_directories(sweep / "cells" / cell);
  std::ofstream(sweep / "sweep.json") << "{}\n";
  for (const char* cell : {"SE-Emp_J1_f0.1_s1", "Dense s1"}) {
    std::ofstream(sweep / "cells" / cell / "summary.json") << "{}\n";
    std::ofstream(sweep / "cells" / cell / "config.json") << "{}\n";
    std::ofstream(sweep / "cells" / cell / "checkpoint.safetensors") << "weights";
  }
  std::ofstream(sweep / "cells" / "SE-SE_J1_f0.1_s1" / "checkpoint.safetensors") << "weights";
  const std::string script = test::shell_quote((fs::path(UV_SOURCE_DIR) / "tools" / "gpu-check").string());
  std::string out;
  ASSERT_EQ(run_shell("bash " + script + " pack-cells " + test::shell_quote(sweep.string()) + " " +
                          test::shell_quote(path("cells.tgz")),
                      out),
            0)
      << out;
  EXPECT_NE(out.find("packed 2 finished cells"), std::string::npos) << out;
  std::string listing;
  ASSERT_EQ(run_shell("tar tzf " + test::shell_quote(path("cells.tgz")) + " | sort", listing), 0) << listing;
  EXPECT_EQ(listing,
            "cells/Dense s1/config.json\ncells/Dense s1/summary.json\ncells/SE-Emp_J1_f0.1_s1/config.json\n"
            "cells/SE-Emp_J1_f0.1_s1/summary.json\nsweep.json\n");
  // A sweep with no finished cell: refused, and no tarball (not an empty one, nor a stale one).
  fs::remove_all(sweep / "cells" / "SE-Emp_J1_f0.1_s1");
  fs::remove_all(sweep / "cells" / "Dense s1");
  out.clear();
  EXPECT_EQ(run_shell("bash " + script + " pack-cells " + test::shell_quote(sweep.string()) + " " +
                          test::shell_quote(path("cells.tgz")),
                      out),
            2)
      << out;
  EXPECT_NE(out.find("no finished cells"), std::string::npos) << out;
  EXPECT_TRUE(fs::exists(path("cells.tgz"))) << "the refusal leaves an earlier tarball alone";
  out.clear();
  EXPECT_EQ(run_shell("bash " + script + " pack-cells " + test::shell_quote(path("none")) + " " +
                          test::shell_quote(path("x.tgz")),
                      out),
            2)
      << out;
  EXPECT_NE(out.find("no sweep cells"), std::string::npos) << out;
}

// tools/results_table.py's wall time, per machine: the union of each machine's cells' run intervals
// (finish = the summary's mtime, start = finish − seconds). Two CPU hours overlapping by half an
// hour make 1.5 h; a two-hour GPU cell at the same time counts for its own machine only (merged,
// the three would make 2.22 h).
class ToolsResultsTable : public test::TempDirTest {};

TEST_F(ToolsResultsTable, WallTimeIsPerMachine) {
  namespace fs = std::filesystem;
  struct Cell { const char* name; const char* device; double seconds; long finish; };
  const Cell cells[] = {{"a", "cpu (oneDNN 2.6.3 sgemm, 1 threads)", 3600, 10000},
                        {"b", "cpu (oneDNN 2.6.3 sgemm, 1 threads)", 3600, 11800},
                        {"c", "cuda:0 (NVIDIA H200, sm_90)", 7200, 11000}};
  std::ofstream csv(path("results.csv"));
  csv << "sweep,pair,columns,fraction,seed,learned_fraction,learned_params,predicted_params,train_error,test_error,"
         "seconds,device,cell_dir\n";
  for (const Cell& c : cells) {
    const fs::path dir = fs::path(path(c.name));
    fs::create_directories(dir);
    std::ofstream(dir / "summary.json") << "{}";
    fs::last_write_time(dir / "summary.json", fs::file_time_type(std::chrono::seconds(c.finish)));
    csv << "s,SE-Emp,1,0.1,1,0.1,10,90,0.01,0.02," << c.seconds << ",\"" << c.device << "\"," << dir.string() << "\n";
  }
  csv.close();
  std::string out;
  ASSERT_EQ(run_shell("python3 " +
                          test::shell_quote((fs::path(UV_SOURCE_DIR) / "tools" / "results_table.py").string()) + " " +
                          test::shell_quote(path("results.csv")),
                      out),
            0)
      << out;
  EXPECT_NE(out.find("wall time on cpu while its cells ran (union of 2 cells' run intervals): 1.50 h"), std::string::npos)
      << out;
  EXPECT_NE(out.find("wall time on NVIDIA H200 while its cells ran (union of 1 cells' run intervals): 2.00 h"),
            std::string::npos)
      << out;
}

// tools/bench_table.py --goal: issue 3's goal across runs of one card. Per pass and large shape, the
// best fused strategy from any run against the best cuBLAS path from any run; a chain row that ran on
// our own GEMM (tf32x3 = 1, a --gemm=tf32x3 run) is not a cuBLAS path, paper shapes (M < 4096) are
// left out, and only fractions ≤ 0.25 count. Exit 0 where every counted shape meets 1.3×.
class ToolsBenchGoal : public test::TempDirTest {
 protected:
  struct Row { const char* name; double ms; int tf32x3; double check = 0; };  // check: the bench's check_rel_err
  // depth: UV_TF32X3_CHUNK_DEPTH as set in the environment ("" unset: the default, 2048). chunks: a
  // run before the eighth session, whose context also said how the chunks ran (UV_TF32X3_CHUNKS).
  // precision: --dictionary_precision ("" not said: runs before it existed); workspace_mib:
  // UV_TF32X3_WORKSPACE_MIB as set ("" unset).
  void write(const std::string& file, const char* gemm, const char* kernel, const std::vector<Row>& rows,
             const std::string& depth = "", const std::string& chunks = "", const std::string& precision = "",
             const std::string& workspace_mib = "", const std::string& bands = "", const std::string& sync = "") {
    std::ofstream out(path(file));
    out << "{\"context\": {\"backend\": \"cuda:0 (NVIDIA H100, sm_90)\", \"gemm\": \"" << gemm
        << "\", \"tf32x3_kernel\": \"" << kernel << "\", \"tf32x3_chunk_depth\": \""
        << (depth.empty() ? "2048" : depth) << "\"";
    if (chunks.empty()) {
      if (!depth.empty()) out << ", \"tf32x3_chunk_depth_set\": \"1\"";
    } else {
      out << ", \"tf32x3_chunks\": \"" << chunks << "\", \"tf32x3_chunks_set\": \"1\"";
    }
    if (!precision.empty()) out << ", \"dictionary_precision\": \"" << precision << "\"";
    if (!workspace_mib.empty())
      out << ", \"tf32x3_workspace_mib\": \"" << workspace_mib << "\", \"tf32x3_workspace_set\": \"1\"";
    if (!bands.empty()) out << ", \"tf32x3_bands\": \"" << bands << "\"";
    if (!sync.empty()) out << ", \"tf32x3_specialised_sync\": \"" << sync << "\"";
    out << "}, \"benchmarks\": [";
    for (size_t i = 0; i < rows.size(); ++i)
      out << (i ? "," : "") << "{\"name\": \"" << rows[i].name << "/manual_time\", \"run_type\": \"iteration\", "
          << "\"real_time\": " << rows[i].ms << ", \"time_unit\": \"ms\", \"tf32x3\": " << rows[i].tf32x3
          << ", \"check_rel_err\": " << rows[i].check << "}";
    out << "]}";
  }
  int goal(std::string& out) {
    return run_shell("python3 " +
                         test::shell_quote((std::filesystem::path(UV_SOURCE_DIR) / "tools" / "bench_table.py").string()) +
                         " --goal " + test::shell_quote(path("a.json")) + " " + test::shell_quote(path("b.json")),
                     out);
  }
};

TEST_F(ToolsBenchGoal, TakesTheBestOfEachKindAcrossRuns) {
  const char* small = "step/large/M:4096/K:4096/N:4096/r:204/J:1";
  const char* half = "step/large/M:4096/K:4096/N:4096/r:2048/J:1";
  auto name = [](const char* strategy, const char* shape) { return std::string(strategy) + "/" + shape; };
  const std::string c1 = name("chain", small), m1 = name("materialise", small), f1 = name("chain_fused", small);
  const std::string c2 = name("chain", half), f2 = name("chain_fused", half);
  write("a.json", "cublas", "mma",
        {{c1.c_str(), 1.0, 0}, {m1.c_str(), 8.0, 0}, {f1.c_str(), 0.8, 1}, {c2.c_str(), 7.0, 0},
         {f2.c_str(), 7.5, 1}, {"chain/step/paper/M:100/K:784/N:500/r:78/J:1", 0.05, 0},
         {"chain_fused/step/paper/M:100/K:784/N:500/r:78/J:1", 0.5, 0}});
  write("b.json", "tf32x3", "wgmma", {{c1.c_str(), 0.5, 1}, {f1.c_str(), 0.7, 1}});
  std::string out;
  EXPECT_EQ(goal(out), 0) << out;  // 1.0 (a's chain) against 0.7 (b's chain_fused): 1.43×; r = K/2 not counted
  EXPECT_NE(out.find("| 1.000 (chain, cublas:mma) | 0.700 (chain_fused, tf32x3:wgmma) | 1.43x |"), std::string::npos)
      << out;
  EXPECT_NE(out.find("met on 1 of 1 pass-shapes"), std::string::npos) << out;
  EXPECT_EQ(out.find("M=100"), std::string::npos) << out;

  write("b.json", "tf32x3", "wgmma", {{f1.c_str(), 0.9, 1}});  // 1.11×: not met
  out.clear();
  EXPECT_EQ(goal(out), 1) << out;
  EXPECT_NE(out.find("met on 0 of 1 pass-shapes"), std::string::npos) << out;

  // A fast row whose outputs missed the chain's counts for nothing, and is listed.
  write("b.json", "cublas", "wgmma", {{f1.c_str(), 0.1, 1, 3e-2}});
  out.clear();
  EXPECT_EQ(goal(out), 1) << out;  // a's own chain_fused (0.8 against 1.0: 1.25×) is the best left
  EXPECT_NE(out.find("| 1.000 (chain, cublas:mma) | 0.800 (chain_fused, cublas:mma) | 1.25x |"), std::string::npos)
      << out;
  EXPECT_NE(out.find("left out, outputs off the chain's"), std::string::npos) << out;
  EXPECT_NE(out.find("chain_fused/step/large/M:4096/K:4096/N:4096/r:204/J:1 (cublas:wgmma): 0.03"),
            std::string::npos)
      << out;

  // A shape whose only fused rows are wrong counts, as not met, rather than dropping out.
  const char* other = "step/large/M:4096/K:4096/N:4096/r:409/J:1";
  const std::string c3 = name("chain", other), f3 = name("chain_fused", other);
  write("a.json", "cublas", "mma", {{c1.c_str(), 1.0, 0}, {f1.c_str(), 0.5, 1}, {c3.c_str(), 1.0, 0}});
  write("b.json", "cublas", "wgmma", {{f3.c_str(), 0.5, 1, 3e-2}});
  out.clear();
  EXPECT_EQ(goal(out), 1) << out;
  EXPECT_NE(out.find("| 1.000 (chain, cublas:mma) | wrong outputs | — |"), std::string::npos) << out;
  EXPECT_NE(out.find("met on 1 of 2 pass-shapes"), std::string::npos) << out;

  // Runs with the chunk depth set in the environment are told apart by it; and earlier runs by how
  // their chunks ran too.
  write("a.json", "cublas", "wgmma", {{c1.c_str(), 1.0, 0}, {f1.c_str(), 0.8, 1}});
  write("b.json", "cublas", "wgmma", {{f1.c_str(), 0.7, 1}}, "4096");
  out.clear();
  EXPECT_EQ(goal(out), 0) << out;
  EXPECT_NE(out.find("| 1.000 (chain, cublas:wgmma) | 0.700 (chain_fused, cublas:wgmma:4096) | 1.43x |"),
            std::string::npos)
      << out;
  write("b.json", "cublas", "wgmma", {{f1.c_str(), 0.7, 1}}, "4096", "kernel");
  out.clear();
  EXPECT_EQ(goal(out), 0) << out;
  EXPECT_NE(out.find("| 1.000 (chain, cublas:wgmma) | 0.700 (chain_fused, cublas:wgmma:kernel:4096) | 1.43x |"),
            std::string::npos)
      << out;

  // Runs with U rounded to TF32 (--dictionary_precision) are set only against runs with the same U,
  // a table each: the float32 runs' 1.25× stays 1.25× beside a faster tf32 run. Exit 0 where one
  // table meets the goal; a precision with no cuBLAS rows of its own counts nothing.
  write("a.json", "cublas", "wgmma", {{c1.c_str(), 1.0, 0}, {f1.c_str(), 0.8, 1}}, "", "", "float32");
  write("b.json", "cublas", "wgmma_presplit", {{c1.c_str(), 1.0, 0}, {f1.c_str(), 0.7, 1}}, "", "", "tf32");
  out.clear();
  EXPECT_EQ(goal(out), 0) << out;
  EXPECT_NE(out.find("### runs with U in float32"), std::string::npos) << out;
  EXPECT_NE(out.find("| 1.000 (chain, cublas:wgmma) | 0.800 (chain_fused, cublas:wgmma) | 1.25x |"), std::string::npos)
      << out;
  EXPECT_NE(out.find("### runs with U in tf32"), std::string::npos) << out;
  EXPECT_NE(out.find("| 1.000 (chain, cublas:wgmma_presplit, U rounded to tf32) | 0.700 (chain_fused, "
                     "cublas:wgmma_presplit, U rounded to tf32) | 1.43x |"),
            std::string::npos)
      << out;
  write("b.json", "cublas", "wgmma_presplit", {{f1.c_str(), 0.7, 1}}, "", "", "tf32");
  out.clear();
  EXPECT_EQ(goal(out), 1) << out;
  EXPECT_EQ(out.find("0.700"), std::string::npos) << out;

  // And runs with the workspace set (UV_TF32X3_WORKSPACE_MIB) by its size.
  write("b.json", "cublas", "wgmma_presplit", {{f1.c_str(), 0.7, 1}}, "", "", "float32", "256");
  out.clear();
  EXPECT_EQ(goal(out), 0) << out;
  EXPECT_NE(out.find("| 1.000 (chain, cublas:wgmma) | 0.700 (chain_fused, cublas:wgmma_presplit, a 256 MiB "
                     "workspace) | 1.43x |"),
            std::string::npos)
      << out;
  // And runs without the column bands (UV_TF32X3_BANDS=0); "1", the default, says nothing.
  write("b.json", "cublas", "wgmma_presplit", {{f1.c_str(), 0.7, 1}}, "", "", "float32", "", "0");
  out.clear();
  EXPECT_EQ(goal(out), 0) << out;
  EXPECT_NE(out.find("| 0.700 (chain_fused, cublas:wgmma_presplit, no column bands) | 1.43x |"), std::string::npos) << out;
  write("b.json", "cublas", "wgmma_presplit", {{f1.c_str(), 0.7, 1}}, "", "", "float32", "", "1");
  out.clear();
  EXPECT_EQ(goal(out), 0) << out;
  EXPECT_NE(out.find("| 0.700 (chain_fused, cublas:wgmma_presplit) | 1.43x |"), std::string::npos) << out;
}

// bench_predicted_products' table: the rows' labels (tf32x3's plan, Backend::gemm_plan) in a
// column of their own beside the times and the speed-up over the faster cuBLAS library, and the
// row's time against the plan's model (1.0 ms against 2.130).
TEST_F(ToolsBenchGoal, ProductsTableShowsThePlans) {
  const char* shape = "large/M:4096/K:16384/N:16384/r:819";
  std::ofstream out(path("p.json"));
  out << "{\"context\": {\"backend\": \"cuda:0 (NVIDIA H100, sm_90)\", \"gemm\": \"cublas\"}, \"benchmarks\": [";
  const char* libraries[] = {"cublas", "cublaslt", "tf32x3"};
  const double ms[] = {2.0, 1.6, 1.0};
  for (int i = 0; i < 3; ++i)
    out << (i ? "," : "") << "{\"name\": \"" << libraries[i] << "/x_u/" << shape
        << "/manual_time\", \"run_type\": \"iteration\", \"real_time\": " << ms[i]
        << ", \"time_unit\": \"ms\", \"check_rel_err\": 0"
        << (i == 2 ? ", \"label\": \"8 launches (8 chunks) on wgmma, presplit; 16 kernels, 16 waves 85% full; model 2.130 ms\"" : "")
        << "}";
  out << "]}";
  out.close();
  std::string text;
  ASSERT_EQ(run_shell("python3 " +
                          test::shell_quote((std::filesystem::path(UV_SOURCE_DIR) / "tools" / "bench_table.py").string()) +
                          " " + test::shell_quote(path("p.json")) + " --baselines cublas,cublaslt",
                      text),
            0)
      << text;
  EXPECT_NE(text.find("| tf32x3 vs best baseline | tf32x3 plan | tf32x3 measured / model |"), std::string::npos)
      << text;
  EXPECT_NE(text.find("| 1.60x | 8 launches (8 chunks) on wgmma, presplit; 16 kernels, 16 waves 85% full; model 2.130 ms "
                      "| 0.47 |"),
            std::string::npos)
      << text;
}

// tools/bench_table.py --best-kernel (gpu-check's 'library:best'): the 3xTF32 kernel whose
// chain_fused rows at fraction ≤ 0.25 on the large shapes sum least, over the rows every compared
// run timed; runs compared only with the same U and workspace (the setting with the most kernels);
// a run with a wrong row does not count; fewer than two runs to compare: exit 1, nothing printed.
TEST_F(ToolsBenchGoal, BestKernelIsTheFastestRightOneOverCommonRows) {
  const std::string small = "chain_fused/forward/large/M:4096/K:4096/N:4096/r:204/J:1";
  const std::string quarter = "chain_fused/forward/large/M:4096/K:4096/N:4096/r:1024/J:1";
  const std::string half = "chain_fused/forward/large/M:4096/K:4096/N:4096/r:2048/J:1";  // fraction 0.5: left out
  const std::string paper = "chain_fused/forward/paper/M:100/K:784/N:500/r:39/J:1";      // M < 4096: left out
  const std::string big = "chain_fused/forward/large/M:32768/K:4096/N:4096/r:204/J:1";   // one run only: left out
  const std::string chain = "chain/forward/large/M:4096/K:4096/N:4096/r:204/J:1";        // not fused: left out
  auto best = [&](const std::vector<std::string>& files, std::string& out) {
    std::string args;
    for (const std::string& f : files) args += " " + test::shell_quote(path(f));
    out.clear();  // stdout alone: the kernel's name
    return run_shell("{ python3 " +
                         test::shell_quote((std::filesystem::path(UV_SOURCE_DIR) / "tools" / "bench_table.py").string()) +
                         " --best-kernel" + args + " 2>/dev/null; }",
                     out);
  };
  // a: 1.0 + 2.0 on the common rows; b: 0.9 + 2.2 (more) but fastest on the rows left out; c: the
  // fastest, with a wrong row; d: faster than all, with U in TF32 (another setting, fewer kernels).
  write("a.json", "cublaslt", "wgmma_mbarrier",
        {{small.c_str(), 1.0, 1}, {quarter.c_str(), 2.0, 1}, {half.c_str(), 9.0, 1}, {paper.c_str(), 0.1, 1},
         {chain.c_str(), 0.1, 0}});
  write("b.json", "cublaslt", "wgmma_specialised",
        {{small.c_str(), 0.9, 1}, {quarter.c_str(), 2.2, 1}, {half.c_str(), 1.0, 1}, {paper.c_str(), 0.01, 1},
         {big.c_str(), 0.1, 1}},
        "", "", "", "", "", "both");
  write("c.json", "cublaslt", "wgmma_presplit", {{small.c_str(), 0.5, 1}, {quarter.c_str(), 1.0, 1, 1.0}});
  write("d.json", "cublaslt", "wgmma_specialised", {{small.c_str(), 0.1, 1}, {quarter.c_str(), 0.1, 1}}, "", "",
        "tf32", "", "", "both");
  std::string out;
  ASSERT_EQ(best({"d.json", "a.json", "b.json", "c.json"}, out), 0) << out;
  EXPECT_EQ(out, "wgmma_mbarrier\n");
  ASSERT_EQ(best({"a.json", "d.json"}, out), 1) << out;  // one run a setting: nothing to choose
  EXPECT_EQ(out, "");
  ASSERT_EQ(best({"a.json", "c.json"}, out), 1) << out;  // c is wrong: a alone
  // A specialised run off the default ring sync (UV_TF32X3_SPECIALISED_SYNC both) is a setting of
  // its own: the fastest here, but not set beside the others; so is one from before the sync was
  // always said (no field: plain, the default of then). The sync of a kernel without the
  // specialised ring sets nothing apart.
  write("e.json", "cublaslt", "wgmma_specialised", {{small.c_str(), 0.2, 1}, {quarter.c_str(), 0.2, 1}}, "", "", "",
        "", "", "consumers_arrive");
  write("f.json", "cublaslt", "wgmma_specialised_nonpersistent", {{small.c_str(), 0.2, 1}, {quarter.c_str(), 0.2, 1}});
  write("g.json", "cublaslt", "wgmma_mbarrier",
        {{small.c_str(), 1.0, 1}, {quarter.c_str(), 2.0, 1}, {half.c_str(), 9.0, 1}, {paper.c_str(), 0.1, 1},
         {chain.c_str(), 0.1, 0}},
        "", "", "", "", "", "consumers_arrive");
  ASSERT_EQ(best({"g.json", "b.json", "e.json", "f.json"}, out), 0) << out;
  EXPECT_EQ(out, "wgmma_mbarrier\n");
}

}  // namespace
}  // namespace uv
