// A CPU training step allocates nothing once the first step has run (issue 6): the graph's arena
// holds every activation, the optimiser updates in place, the column-norm bound and the onthefly_w
// panel reuse their memory. Counted two ways: C++ operator new in this test binary (every
// std::vector or make_unique in the engine), and the backend's own allocation count. oneDNN's
// dnnl_sgemm allocates scratch inside the library on some shapes (one call per step here): those
// calls are told apart by their caller (dladdr) and reported, not failed.
#include <gtest/gtest.h>

#include <dlfcn.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <random>

#include "engine/backend/backend.h"
#include "engine/data/dataset.h"
#include "engine/train/config.h"
#include "models/network.h"
#include "tests/test_util.h"

namespace {
std::atomic<bool> g_counting{false};
std::atomic<int64_t> g_news{0}, g_library_news{0};

void count_new(void* caller) {
  if (!g_counting.load(std::memory_order_relaxed)) return;
  Dl_info info{};
  if (dladdr(caller, &info) && info.dli_fname && std::strstr(info.dli_fname, "libdnnl"))
    g_library_news.fetch_add(1, std::memory_order_relaxed);
  else
    g_news.fetch_add(1, std::memory_order_relaxed);
}
}  // namespace

// Replacements for the whole test binary; they only count while g_counting is set.
void* operator new(std::size_t n) {
  count_new(__builtin_return_address(0));
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n) {
  count_new(__builtin_return_address(0));
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void* operator new(std::size_t n, std::align_val_t a) {
  count_new(__builtin_return_address(0));
  const std::size_t align = static_cast<std::size_t>(a);
  if (void* p = std::aligned_alloc(align, (n + align - 1) / align * align)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n, std::align_val_t a) {
  count_new(__builtin_return_address(0));
  const std::size_t align = static_cast<std::size_t>(a);
  if (void* p = std::aligned_alloc(align, (n + align - 1) / align * align)) return p;
  throw std::bad_alloc();
}
// The nothrow forms too (std::stable_sort's temporary buffer takes one): left to the library, they
// would hand out memory that the replaced delete frees with free (ASan: alloc-dealloc-mismatch).
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  count_new(__builtin_return_address(0));
  return std::malloc(n ? n : 1);
}
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept {
  count_new(__builtin_return_address(0));
  return std::malloc(n ? n : 1);
}
void* operator new(std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  count_new(__builtin_return_address(0));
  const std::size_t align = static_cast<std::size_t>(a);
  return std::aligned_alloc(align, (n + align - 1) / align * align);
}
void* operator new[](std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  count_new(__builtin_return_address(0));
  const std::size_t align = static_cast<std::size_t>(a);
  return std::aligned_alloc(align, (n + align - 1) / align * align);
}
// These replacements take their memory from malloc/aligned_alloc, so free is the matching release;
// GCC cannot see that and warns about free on a pointer from operator new.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept { std::free(p); }
#pragma GCC diagnostic pop

namespace uv {
namespace {

// Every predicted layer kind and strategy the CPU runs, a projected first layer or not.
class StepAllocations : public ::testing::TestWithParam<bool> {};

TEST_P(StepAllocations, NoneAfterTheFirstStep) {
  const bool project = GetParam();
  const RunConfig config = parse_config(R"({
    "name": "alloc", "data": {"dataset": "mnist"},
    "model": {"layers": [
      {"type": "predicted_dense", "units": 40, "dictionary": "se", "fraction": 0.1, "strategy": "chain"},
      {"type": "predicted_dense", "units": 30, "dictionary": "randfixu", "fraction": 0.3, "columns": 3,
       "strategy": "materialise"},
      {"type": "predicted_dense", "units": 20, "dictionary": "randfixu", "fraction": 0.5, "strategy": "onthefly_w"},
      {"type": "lowrank", "units": 16, "fraction": 0.5},
      {"type": "dense", "units": 10, "activation": "identity"}]},
    "train": {"max_col_norm": 1.9}})", "inline", {});
  std::unique_ptr<Backend> backend = make_cpu_backend();
  Network network(config, *backend, ImageShape{28, 28, 1});
  network.init_parameters(3);
  data::Dataset train;
  train.count = 64;
  train.rows = train.cols = 28;
  std::mt19937_64 rng(test::fresh_seed());
  train.images = test::random_vector<float>(64 * 784, rng, 0, 1);
  train.labels.resize(64);
  for (int32_t& label : train.labels) label = static_cast<int32_t>(rng() % 10);
  for (size_t i = 0; i < network.layers().size(); ++i) network.build_dictionary(i, train, 5, 64);

  const int64_t m = 32;
  std::unique_ptr<Graph> graph = network.supervised_graph(m, project);
  std::vector<float> x(static_cast<size_t>(m * 784));
  std::copy(train.images.begin(), train.images.begin() + m * 784, x.begin());
  std::vector<float> t(static_cast<size_t>(m * network.projected_features()));
  if (project) network.project_inputs(x.data(), m, t.data());
  const std::vector<int> params = graph->trainable_params();
  auto step = [&] {
    const float* logits = graph->forward(project ? t.data() : x.data(), m);
    backend->softmax_cross_entropy(logits, train.labels.data(), m, 10, graph->output_grad());
    graph->backward(m);
    for (int index : params) {
      Parameter& p = network.store().at(index);
      SgdArgs args;
      args.params = p.value;
      args.grads = p.grad;
      args.momentum_buffer = p.momentum;
      args.n = p.numel();
      args.lr = 0.1f;
      args.momentum = 0.9f;
      backend->sgd_step(args);
      if (p.spec.max_col_norm)
        backend->max_column_norm(p.value, p.spec.norm_count, p.spec.norm_rows, p.spec.norm_cols, 1.9f);
    }
  };
  step();  // the first step may size thread-local scratch
  const size_t backend_bytes = backend->allocated_bytes();
  g_news = 0;
  g_library_news = 0;
  g_counting = true;
  for (int i = 0; i < 5; ++i) step();
  g_counting = false;
  EXPECT_EQ(g_news.load(), 0) << "operator new calls from the engine in 5 steps";
  RecordProperty("onednn_allocations_in_5_steps", std::to_string(g_library_news.load()));
  std::printf("oneDNN's sgemm allocated %lld times in 5 steps (inside the library)\n",
              static_cast<long long>(g_library_news.load()));
  EXPECT_EQ(backend->allocated_bytes(), backend_bytes);
}

INSTANTIATE_TEST_SUITE_P(CpuStep, StepAllocations, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? "ProjectedInput" : "BatchedX"; });

}  // namespace
}  // namespace uv
