// CPU GEMM libraries on the engine's training-step shapes: OpenBLAS (what kernels/cpu/blas.h calls)
// against oneDNN (dnnl_sgemm, the GEMM behind PyTorch's CPU backend) and BLIS. The shapes are every
// GEMM of one training step of the paper's MNIST MLP 784-500-500-10 (spec §5), in both forms the
// engine trains it: predicted layers through the chain T = X·U, Y = T·V (spec §7; r = 78 and 50,
// one column) and plain dense layers. Results and commands: docs/cpu-gemm.md.
//
// Why BLIS is dlopen'ed: OpenBLAS and BLIS both export sgemm_ and cblas_sgemm, so linking both into
// one binary would let the dynamic linker pick one for both. BLIS is loaded with RTLD_LOCAL |
// RTLD_DEEPBIND (its own symbols first) and called through its native typed API, bli_sgemm.
//
// Every library is first checked against OpenBLAS on every case (and OpenBLAS against a float64
// reference), so a wrong binding (a swapped transpose or leading dimension) fails loudly instead of
// looking fast. Times are wall-clock (UseRealTime): the libraries run threads, and CPU time of the
// main thread would under-count them.
//
// Flags (taken out before Google Benchmark sees argv):
//   --libraries=openblas,onednn,blis   which libraries to register (default: all three)
//   --threads=N                        threads for every library (default 2); how each is set:
//                                      OpenBLAS openblas_set_num_threads, oneDNN (OpenMP runtime)
//                                      omp_set_num_threads, BLIS bli_thread_set_num_threads
//   --batches=100,1024                 batch sizes M (default 100 and 1024)
//   --quiet-below=0.05                 before each run, wait until other processes use less than
//                                      this share of the CPUs (default 1: no waiting)
#include <benchmark/benchmark.h>
#include <dlfcn.h>
#include <dnnl.h>
#include <omp.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <map>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "kernels/cpu/blas.h"  // uv::cpu::gemm, the engine's OpenBLAS call (brings OpenBLAS's cblas.h)

namespace {

// ---------------------------------------------------------------------------------------------------
// The shapes
// ---------------------------------------------------------------------------------------------------

enum class Transpose { No, Yes };

// Which training step runs a GEMM. The first layer's input needs no gradient, so the engine skips
// that layer's dT (predicted) and dX (dense): engine/graph/graph.cpp passes it dx = nullptr. The
// two are still timed, since the layer placed deeper would run them, but they count in no step.
enum class InStep { Predicted, Dense, Both, None };

enum class Pass { Forward, Backward };

// Row-major C (m×n) = op(A) (m×k) · op(B) (k×n); op(X) = Xᵀ where the backward pass transposes.
struct GemmCase {
  std::string name;  // layer.pass.output
  int layer;         // 1..3, for the step's order: forward 1→3, then backward 3→1
  Pass pass;
  Transpose trans_a, trans_b;
  int64_t m, n, k;
  InStep step;
  double flops() const { return 2.0 * double(m) * double(n) * double(k); }
  // Stored (not op'd) operands, tightly packed as the engine holds them (one column, J = 1).
  int64_t lda() const { return trans_a == Transpose::Yes ? m : k; }
  int64_t ldb() const { return trans_b == Transpose::Yes ? k : n; }
  int64_t a_size() const { return m * k; }
  int64_t b_size() const { return k * n; }
};

// The GEMMs of one step at batch M, in the order and with the transposes of kernels/cpu/
// predicted_linear.cpp (chain strategy) and dense_forward/dense_backward.
std::vector<GemmCase> training_step_gemms(int64_t M) {
  constexpr Transpose N = Transpose::No, T = Transpose::Yes;
  constexpr Pass F = Pass::Forward, B = Pass::Backward;
  // One GEMM a line, its shapes in the comment.
  // clang-format off
  return {
      // Predicted layer 1: K = 784 → N = 500, r = int(784·0.1) = 78.
      {"pred1.fwd.T", 1, F, N, N, M, 78, 784, InStep::Predicted},   // T (M×78) = X (M×784) · U (784×78)
      {"pred1.fwd.Y", 1, F, N, N, M, 500, 78, InStep::Predicted},   // Y (M×500) = T (M×78) · V (78×500)
      {"pred1.bwd.dV", 1, B, T, N, 78, 500, M, InStep::Predicted},  // dV (78×500) = Tᵀ · dY (M×500)
      {"pred1.bwd.dT", 1, B, N, T, M, 78, 500, InStep::None},       // dT (M×78) = dY (M×500) · Vᵀ
      // Predicted layer 2: K = 500 → N = 500, r = int(500·0.1) = 50.
      {"pred2.fwd.T", 2, F, N, N, M, 50, 500, InStep::Predicted},   // T (M×50) = X (M×500) · U (500×50)
      {"pred2.fwd.Y", 2, F, N, N, M, 500, 50, InStep::Predicted},   // Y (M×500) = T (M×50) · V (50×500)
      {"pred2.bwd.dV", 2, B, T, N, 50, 500, M, InStep::Predicted},  // dV (50×500) = Tᵀ · dY (M×500)
      {"pred2.bwd.dT", 2, B, N, T, M, 50, 500, InStep::Predicted},  // dT (M×50) = dY (M×500) · Vᵀ
      {"pred2.bwd.dX", 2, B, N, T, M, 500, 50, InStep::Predicted},  // dX (M×500) = dT (M×50) · Uᵀ
      // Dense layer 1: 784 → 500.
      {"dense1.fwd.Y", 1, F, N, N, M, 500, 784, InStep::Dense},   // Y (M×500) = X (M×784) · W (784×500)
      {"dense1.bwd.dW", 1, B, T, N, 784, 500, M, InStep::Dense},  // dW (784×500) = Xᵀ · dY (M×500)
      {"dense1.bwd.dX", 1, B, N, T, M, 784, 500, InStep::None},   // dX (M×784) = dY (M×500) · Wᵀ
      // Dense layer 2: 500 → 500.
      {"dense2.fwd.Y", 2, F, N, N, M, 500, 500, InStep::Dense},   // Y (M×500) = X (M×500) · W (500×500)
      {"dense2.bwd.dW", 2, B, T, N, 500, 500, M, InStep::Dense},  // dW (500×500) = Xᵀ · dY (M×500)
      {"dense2.bwd.dX", 2, B, N, T, M, 500, 500, InStep::Dense},  // dX (M×500) = dY (M×500) · Wᵀ
      // Output layer 500 → 10, dense in both models (the paper never predicts it).
      {"out.fwd.Y", 3, F, N, N, M, 10, 500, InStep::Both},    // Y (M×10) = X (M×500) · W (500×10)
      {"out.bwd.dW", 3, B, T, N, 500, 10, M, InStep::Both},   // dW (500×10) = Xᵀ · dY (M×10)
      {"out.bwd.dX", 3, B, N, T, M, 500, 10, InStep::Both},   // dX (M×500) = dY (M×10) · Wᵀ
  };
  // clang-format on
}

bool runs_in(const GemmCase& c, InStep step) {
  return c.step == step || (c.step == InStep::Both && step != InStep::None);
}

// One case's operands: fresh uniform inputs in [-1, 1), fixed seed so every library sees the same.
struct GemmBuffers {
  std::vector<float> a, b, c;
};

// ---------------------------------------------------------------------------------------------------
// The libraries
// ---------------------------------------------------------------------------------------------------

using GemmFn = void (*)(const GemmCase&, const float* a, const float* b, float* c);

void openblas_gemm(const GemmCase& g, const float* a, const float* b, float* c) {
  uv::cpu::gemm(g.trans_a == Transpose::Yes, g.trans_b == Transpose::Yes, g.m, g.n, g.k, 1.f, a,
                g.lda(), b, g.ldb(), 0.f, c, g.n);
}

void onednn_gemm(const GemmCase& g, const float* a, const float* b, float* c) {
  // dnnl_sgemm is row-major, unlike Fortran BLAS.
  const dnnl_status_t status =
      dnnl_sgemm(g.trans_a == Transpose::Yes ? 'T' : 'N', g.trans_b == Transpose::Yes ? 'T' : 'N',
                 g.m, g.n, g.k, 1.f, a, g.lda(), b, g.ldb(), 0.f, c, g.n);
  if (status != dnnl_success)
    throw std::runtime_error("dnnl_sgemm failed with status " + std::to_string(int(status)));
}

// The slice of BLIS's typed API we call, declared here rather than through blis.h: blis.h declares
// its own CBLAS, which clashes with OpenBLAS's cblas.h. Types as in blis.h 0.9 with 64-bit integers
// (checked at load through bli_info_get_int_type_size).
namespace blis {
using dim_t = int64_t;
using inc_t = int64_t;
enum trans_t : int { BLIS_NO_TRANSPOSE = 0x0, BLIS_TRANSPOSE = 0x8 };  // BLIS_TRANS_BIT = 1 << 3
using SgemmFn = void (*)(trans_t, trans_t, dim_t m, dim_t n, dim_t k, float* alpha, float* a,
                         inc_t rs_a, inc_t cs_a, float* b, inc_t rs_b, inc_t cs_b, float* beta,
                         float* c, inc_t rs_c, inc_t cs_c);

struct Api {
  void* handle = nullptr;
  SgemmFn sgemm = nullptr;
  void (*set_num_threads)(dim_t) = nullptr;
  std::string version, arch;
};
Api api;

template <typename Fn>
Fn symbol(const char* name) {
  void* p = dlsym(api.handle, name);
  if (!p) throw std::runtime_error(std::string("BLIS: dlsym(") + name + ") failed: " + dlerror());
  return reinterpret_cast<Fn>(p);
}

void load() {
  // Debian's libblis4 soname; the alternatives link picks the openmp/pthread/serial build.
  api.handle = dlopen("libblis.so.4", RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
  if (!api.handle)
    throw std::runtime_error(std::string("BLIS: dlopen(libblis.so.4) failed: ") + dlerror());
  const auto int_size = symbol<int64_t (*)()>("bli_info_get_int_type_size")();
  if (int_size != 64)
    throw std::runtime_error("BLIS: built with " + std::to_string(int_size) +
                             "-bit dim_t, expected 64");
  api.sgemm = symbol<SgemmFn>("bli_sgemm");
  api.set_num_threads = symbol<void (*)(dim_t)>("bli_thread_set_num_threads");
  api.version = symbol<const char* (*)()>("bli_info_get_version_str")();
  const int arch_id = symbol<int (*)()>("bli_arch_query_id")();
  api.arch = symbol<const char* (*)(int)>("bli_arch_string")(arch_id);
}
}  // namespace blis

void blis_gemm(const GemmCase& g, const float* a, const float* b, float* c) {
  // Row-major operands are (row stride = ld, column stride = 1); trans_t transposes on top, so the
  // call mirrors cblas_sgemm's. BLIS takes non-const pointers for inputs it does not write.
  static float one = 1.f, zero = 0.f;
  const auto trans = [](Transpose t) {
    return t == Transpose::Yes ? blis::BLIS_TRANSPOSE : blis::BLIS_NO_TRANSPOSE;
  };
  blis::api.sgemm(trans(g.trans_a), trans(g.trans_b), g.m, g.n, g.k, &one, const_cast<float*>(a),
                  g.lda(), 1, const_cast<float*>(b), g.ldb(), 1, &zero, c, g.n, 1);
}

struct Library {
  const char* name;
  GemmFn gemm;
};
const Library kLibraries[] = {
    {"openblas", openblas_gemm}, {"onednn", onednn_gemm}, {"blis", blis_gemm}};

const char* onednn_isa_name(dnnl_cpu_isa_t isa) {
  switch (isa) {
    case dnnl_cpu_isa_avx2: return "avx2";
    case dnnl_cpu_isa_avx512_core: return "avx512_core";
    case dnnl_cpu_isa_avx512_core_vnni: return "avx512_core_vnni";
    case dnnl_cpu_isa_avx512_core_bf16: return "avx512_core_bf16";
    case dnnl_cpu_isa_avx512_core_amx: return "avx512_core_amx";
    default: return "other";
  }
}

// ---------------------------------------------------------------------------------------------------
// The check: every library against OpenBLAS, OpenBLAS against float64
// ---------------------------------------------------------------------------------------------------

// max |c − ref| / max |ref|: normwise, so near-zero entries of ref cannot blow the error up.
double max_relative_error(const float* c, const std::vector<double>& ref) {
  double worst = 0, scale = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    if (!std::isfinite(c[i]))
      return std::numeric_limits<double>::infinity();  // NaN poison survived
    worst = std::max(worst, std::abs(double(c[i]) - ref[i]));
    scale = std::max(scale, std::abs(ref[i]));
  }
  if (scale == 0) throw std::runtime_error("reference output is all zeros");
  return worst / scale;
}

// Libraries may sum the k products in any order and with or without FMA; 2·k·eps (k at least 8, for
// a few ulps of rounding when k is tiny) covers that with room to spare. A wrong binding (a swapped
// transpose or leading dimension) gives errors of order 1, three or more orders above this.
double tolerance(const GemmCase& g) {
  return 2.0 * std::numeric_limits<float>::epsilon() * double(std::max<int64_t>(g.k, 8));
}

// C = op(A)·op(B) in float64, the straightforward way.
std::vector<double> float64_gemm(const GemmCase& g, const float* a, const float* b) {
  std::vector<double> op_a(g.m * g.k), op_b(g.k * g.n), c(g.m * g.n, 0.0);
  for (int64_t i = 0; i < g.m; ++i)
    for (int64_t p = 0; p < g.k; ++p)
      op_a[i * g.k + p] = g.trans_a == Transpose::Yes ? a[p * g.lda() + i] : a[i * g.lda() + p];
  for (int64_t p = 0; p < g.k; ++p)
    for (int64_t j = 0; j < g.n; ++j)
      op_b[p * g.n + j] = g.trans_b == Transpose::Yes ? b[j * g.ldb() + p] : b[p * g.ldb() + j];
  for (int64_t i = 0; i < g.m; ++i)
    for (int64_t p = 0; p < g.k; ++p) {
      const double a_ip = op_a[i * g.k + p];
      for (int64_t j = 0; j < g.n; ++j) c[i * g.n + j] += a_ip * op_b[p * g.n + j];
    }
  return c;
}

// Runs one library on one case with C poisoned (NaN) first; returns its error against `ref`.
double check_case(const Library& lib, const GemmCase& g, GemmBuffers& buf,
                  const std::vector<double>& ref) {
  std::fill(buf.c.begin(), buf.c.end(), std::numeric_limits<float>::quiet_NaN());
  lib.gemm(g, buf.a.data(), buf.b.data(), buf.c.data());
  return max_relative_error(buf.c.data(), ref);
}

// ---------------------------------------------------------------------------------------------------
// The benchmarks
// ---------------------------------------------------------------------------------------------------

struct Workload {
  int64_t batch;
  std::vector<GemmCase> cases;
  std::vector<GemmBuffers> buffers;  // one per case, as the engine holds distinct tensors
};

// The machine is shared: the share of all CPUs' time that other processes used over an interval,
// read from /proc (jiffies, 10 ms), tells a run disturbed by a neighbour from a slow one.
struct CpuShare {
  // (busy jiffies of the whole machine, jiffies of this process)
  static std::pair<double, double> read() {
    double busy = 0, self = 0;
    if (std::FILE* f = std::fopen("/proc/stat", "r")) {
      unsigned long long v[8] = {};
      if (std::fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
                      &v[4], &v[5], &v[6], &v[7]) == 8)
        busy = double(v[0] + v[1] + v[2] + v[5] + v[6] + v[7]);  // all but idle and iowait
      std::fclose(f);
    }
    if (std::FILE* f = std::fopen("/proc/self/stat", "r")) {
      // Fields 14 and 15 (utime, stime) follow the command name, which sits in parentheses.
      char line[1024];
      if (std::fgets(line, sizeof line, f)) {
        const char* p = std::strrchr(line, ')');
        unsigned long long utime = 0, stime = 0;
        if (p && std::sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime,
                             &stime) == 2)
          self = double(utime + stime);
      }
      std::fclose(f);
    }
    return {busy, self};
  }
  std::pair<double, double> start = read();
  std::chrono::steady_clock::time_point t0 = std::chrono::steady_clock::now();
  double others() const {  // 0 = no one else ran, 1 = others kept every CPU busy
    const auto [busy, self] = read();
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double available =
        seconds * double(sysconf(_SC_CLK_TCK)) * double(sysconf(_SC_NPROCESSORS_ONLN));
    return available > 0 ? std::max(0.0, (busy - start.first) - (self - start.second)) / available
                         : 0;
  }
};

// What happens before and after each run's timing loop (untimed).
struct RunPolicy {
  // --quiet-below: wait until other processes use less than this share of the CPUs (1: never wait)
  double quiet_below = 1.0;
  std::chrono::steady_clock::time_point last_quiet_run_end{};  // end of the last undisturbed loop
};
RunPolicy run_policy;

void prepare_run(const Library* lib) {
  // After a switch of library (or after the check, which ran them all), let the previous library's
  // idle workers stop spinning (OpenBLAS spins about 2^28 cycles, ~0.1 s here; GOMP a few ms), so
  // they do not compete with the library under test on a 2-core machine.
  static const Library* previous = nullptr;
  if (previous != lib) std::this_thread::sleep_for(std::chrono::milliseconds(300));
  previous = lib;
  // Wait (up to a minute) for a quiet 0.2 s: a 2-thread run sharing 2 cores with a neighbour
  // measures the neighbour. The other_cpu counter still reports what happened during the run.
  // A timing loop that was itself quiet and ended moments ago (Google Benchmark calls a run several
  // times while it sizes the iteration count) counts as the quiet window.
  if (run_policy.quiet_below >= 1.0) return;
  if (std::chrono::steady_clock::now() - run_policy.last_quiet_run_end <
      std::chrono::milliseconds(50))
    return;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (std::chrono::steady_clock::now() < deadline) {
    const CpuShare window;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    if (window.others() < run_policy.quiet_below) return;
  }
}

void finish_run(benchmark::State& state, const CpuShare& cpu) {
  const double others = cpu.others();
  if (others < run_policy.quiet_below)
    run_policy.last_quiet_run_end = std::chrono::steady_clock::now();
  state.counters["other_cpu"] = others;
}

void set_gflops(benchmark::State& state, double flops_per_iteration) {
  // kIsIterationInvariantRate: value × iterations / elapsed (real) seconds.
  state.counters["GFLOP/s"] =
      benchmark::Counter(flops_per_iteration * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

void bench_one(benchmark::State& state, const Library* lib, Workload* w, size_t index,
               double error) {
  const GemmCase& g = w->cases[index];
  GemmBuffers& buf = w->buffers[index];
  prepare_run(lib);
  const CpuShare cpu;
  for (auto _ : state) {
    lib->gemm(g, buf.a.data(), buf.b.data(), buf.c.data());
    benchmark::ClobberMemory();
  }
  finish_run(state, cpu);
  set_gflops(state, g.flops());
  state.counters["max_rel_err"] = error;
  std::ostringstream label;
  label << (g.trans_a == Transpose::Yes ? 'T' : 'N') << (g.trans_b == Transpose::Yes ? 'T' : 'N')
        << " m=" << g.m << " n=" << g.n << " k=" << g.k;
  state.SetLabel(label.str());
}

// The GEMMs of one training step back to back in the engine's order: forward layers 1→3, then
// backward layers 3→1 (within a layer, as listed). Bias, activations and the optimizer are not in.
void bench_step(benchmark::State& state, const Library* lib, Workload* w, InStep step) {
  std::vector<size_t> order;
  for (size_t i = 0; i < w->cases.size(); ++i)
    if (runs_in(w->cases[i], step)) order.push_back(i);
  std::stable_sort(order.begin(), order.end(), [&](size_t x, size_t y) {
    const GemmCase &a = w->cases[x], &b = w->cases[y];
    if (a.pass != b.pass) return a.pass == Pass::Forward;
    return a.pass == Pass::Forward ? a.layer < b.layer : a.layer > b.layer;
  });
  double flops = 0;
  for (size_t i : order) flops += w->cases[i].flops();
  prepare_run(lib);
  const CpuShare cpu;
  for (auto _ : state) {
    for (size_t i : order)
      lib->gemm(w->cases[i], w->buffers[i].a.data(), w->buffers[i].b.data(),
                w->buffers[i].c.data());
    benchmark::ClobberMemory();
  }
  finish_run(state, cpu);
  set_gflops(state, flops);
  state.SetLabel(std::to_string(order.size()) + " GEMMs");
}

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream in(s);
  for (std::string item; std::getline(in, item, ',');)
    if (!item.empty()) out.push_back(item);
  return out;
}

struct Options {
  std::vector<std::string> libraries{"openblas", "onednn", "blis"};
  int threads = 2;
  std::vector<int64_t> batches{100, 1024};
  double quiet_below = 1.0;
};

// Takes this program's flags out of argv, leaving Google Benchmark's.
Options parse_options(int& argc, char** argv) {
  Options o;
  int kept = 1;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const auto value = [&](const char* flag) { return arg.substr(std::string(flag).size()); };
    if (arg.rfind("--libraries=", 0) == 0) {
      o.libraries = split(value("--libraries="));
    } else if (arg.rfind("--threads=", 0) == 0) {
      o.threads = std::stoi(value("--threads="));
    } else if (arg.rfind("--batches=", 0) == 0) {
      o.batches.clear();
      for (const std::string& b : split(value("--batches="))) o.batches.push_back(std::stoll(b));
    } else if (arg.rfind("--quiet-below=", 0) == 0) {
      o.quiet_below = std::stod(value("--quiet-below="));
    } else {
      argv[kept++] = argv[i];
    }
  }
  argc = kept;
  for (const std::string& name : o.libraries)
    if (name != "openblas" && name != "onednn" && name != "blis")
      throw std::runtime_error("unknown library '" + name + "' (expected openblas, onednn, blis)");
  if (o.threads < 1) throw std::runtime_error("--threads must be at least 1");
  return o;
}

bool selected(const Options& o, const std::string& name) {
  return std::find(o.libraries.begin(), o.libraries.end(), name) != o.libraries.end();
}

int run(int argc, char** argv) {
  const Options options = parse_options(argc, argv);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  run_policy.quiet_below = options.quiet_below;

  // Threads. OpenBLAS gets 1 thread in a run that does not time it: it only computes the reference
  // then, and idle OpenBLAS workers spin-waiting on a 2-core machine would steal time from the
  // library under test.
  openblas_set_num_threads(selected(options, "openblas") ? options.threads : 1);
  omp_set_num_threads(options.threads);  // oneDNN (and BLIS-openmp) parallel regions
  if (selected(options, "blis")) {
    blis::load();
    blis::api.set_num_threads(options.threads);
  }
  benchmark::AddCustomContext("threads", std::to_string(options.threads));
  benchmark::AddCustomContext(
      "openblas", std::string(openblas_get_config()) + " core=" + openblas_get_corename());
  const dnnl_version_t* v = dnnl_version();
  benchmark::AddCustomContext(
      "onednn", std::to_string(v->major) + "." + std::to_string(v->minor) + "." +
                    std::to_string(v->patch) +
                    " cpu_runtime=" + (v->cpu_runtime == DNNL_RUNTIME_OMP ? "omp" : "other") +
                    " isa=" + onednn_isa_name(dnnl_get_effective_cpu_isa()));
  if (selected(options, "blis"))
    benchmark::AddCustomContext("blis", blis::api.version + " arch=" + blis::api.arch);

  // Operands and the check. Workloads live until the benchmarks have run (registered by pointer).
  static std::vector<Workload> workloads;
  workloads.reserve(options.batches.size());
  std::map<std::string, double> errors;  // "<library>/<batch>/<case>" → max relative error
  std::mt19937 rng(20240601);
  std::uniform_real_distribution<float> uniform(-1.f, 1.f);
  bool all_pass = true;
  for (int64_t batch : options.batches) {
    Workload& w = workloads.emplace_back();
    w.batch = batch;
    w.cases = training_step_gemms(batch);
    for (const GemmCase& g : w.cases) {
      GemmBuffers& buf = w.buffers.emplace_back();
      buf.a.resize(g.a_size());
      buf.b.resize(g.b_size());
      buf.c.resize(g.m * g.n);
      for (float& x : buf.a) x = uniform(rng);
      for (float& x : buf.b) x = uniform(rng);
      const std::vector<double> exact = float64_gemm(g, buf.a.data(), buf.b.data());
      const double openblas_error = check_case(kLibraries[0], g, buf, exact);
      const std::vector<double> reference(buf.c.begin(), buf.c.end());  // OpenBLAS's C
      for (const Library& lib : kLibraries) {
        if (!selected(options, lib.name)) continue;
        const bool is_openblas = std::string(lib.name) == "openblas";
        const double e = is_openblas ? openblas_error : check_case(lib, g, buf, reference);
        const bool pass = e <= tolerance(g);
        all_pass = all_pass && pass;
        errors[std::string(lib.name) + "/" + std::to_string(batch) + "/" + g.name] = e;
        std::fprintf(stderr, "check %-8s M=%-5lld %-14s max_rel_err %.2e vs %s (tol %.1e) %s\n",
                     lib.name, static_cast<long long>(batch), g.name.c_str(), e,
                     is_openblas ? "float64" : "openblas", tolerance(g), pass ? "ok" : "FAIL");
      }
    }
  }
  if (!all_pass) {
    std::fprintf(stderr, "a library disagrees with the reference; not timing anything\n");
    return 1;
  }

  for (const Library& lib : kLibraries) {
    if (!selected(options, lib.name)) continue;
    for (Workload& w : workloads) {
      const std::string prefix = std::string(lib.name) + "/M" + std::to_string(w.batch) + "/";
      for (size_t i = 0; i < w.cases.size(); ++i) {
        const double e = errors.at(std::string(lib.name) + "/" + std::to_string(w.batch) + "/" +
                                   w.cases[i].name);
        benchmark::RegisterBenchmark((prefix + w.cases[i].name).c_str(), bench_one, &lib, &w, i, e)
            ->UseRealTime()
            ->Unit(benchmark::kMicrosecond);
      }
      benchmark::RegisterBenchmark((prefix + "step.predicted").c_str(), bench_step, &lib, &w,
                                   InStep::Predicted)
          ->UseRealTime()
          ->Unit(benchmark::kMicrosecond);
      benchmark::RegisterBenchmark((prefix + "step.dense").c_str(), bench_step, &lib, &w,
                                   InStep::Dense)
          ->UseRealTime()
          ->Unit(benchmark::kMicrosecond);
    }
  }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_cpu_gemm_libraries: %s\n", e.what());
    return 1;
  }
}
