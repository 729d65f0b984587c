// The CUDA backend's cuDNN route, checked on the CPU in every build: which conv layers go to cuDNN
// (the padding decision), the descriptor dims, the buffers each route plans, and the layers' data
// flow (kernels/conv2d_krsc_algorithm.h: transposes, batched GEMM strides, call order) run over a
// float64 reference of cuDNN's NHWC/KRSC cross-correlation against the im2col form. cuDNN itself
// runs only in the device tests (tests/test_conv.cpp, Conv2dDevice), which skip without a GPU.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>

#include "engine/core/error.h"
#include "kernels/conv2d_krsc_algorithm.h"
#include "kernels/conv2d_onthefly_w_algorithm.h"
#include "kernels/cpu/conv2d.h"
#include "kernels/cpu/cpu_ops.h"
#include "kernels/cudnn_conv_shape.h"
#include "tests/test_util.h"

namespace uv {
namespace {

using test::all_close;

// Padding: explicit `pad` on both sides gives cuDNN's output; "same" (−1) does for odd filters only.
TEST(CudnnConvRoute, SymmetricPaddingGoesToCudnnAsymmetricStaysOnIm2col) {
  for (int64_t kernel = 1; kernel <= 6; ++kernel)
    for (int64_t in = kernel; in <= 12; ++in) {
      for (int64_t stride = 1; stride <= 3; ++stride)
        for (int64_t pad = 0; pad < kernel; ++pad) {
          const Conv2dShape s = make_conv2d_shape(2, in, in + 1, 3, 4, kernel, stride, pad);
          EXPECT_TRUE(cudnn_conv_padding_matches(s)) << "k" << kernel << " in" << in << " s" << stride << " p" << pad;
        }
      const Conv2dShape same = make_conv2d_shape(2, in, in + 2, 3, 4, kernel, 1, -1);
      EXPECT_EQ(cudnn_conv_padding_matches(same), kernel % 2 == 1) << "same, k" << kernel << " in" << in;
    }
  const Conv2dShape symmetric = make_conv2d_shape(2, 7, 9, 3, 6, 3, 1, -1), even_same = make_conv2d_shape(2, 8, 6, 3, 6, 4, 1, -1);
  for (PredictedStrategy strategy : {PredictedStrategy::Materialise, PredictedStrategy::Chain}) {
    EXPECT_EQ(cuda_conv2d_route(symmetric, true, strategy, 5, 2), Conv2dRoute::Cudnn);
    EXPECT_EQ(cuda_conv2d_route(even_same, true, strategy, 5, 2), Conv2dRoute::Im2col);
  }
  EXPECT_EQ(cuda_conv2d_route(symmetric, false, PredictedStrategy::Chain, 0, 1), Conv2dRoute::Cudnn);
  EXPECT_EQ(cuda_conv2d_route(even_same, false, PredictedStrategy::Chain, 0, 1), Conv2dRoute::Im2col);
  // chain_fused routes its im2col rows through the fused predicted-linear kernels.
  EXPECT_EQ(cuda_conv2d_route(symmetric, true, PredictedStrategy::ChainFused, 5, 2), Conv2dRoute::Im2col);
  // onthefly_w takes its implicit-GEMM kernels, whatever the padding.
  for (const Conv2dShape& s : {symmetric, even_same})
    EXPECT_EQ(cuda_conv2d_route(s, true, PredictedStrategy::OnTheFlyW, 5, 2), Conv2dRoute::OnTheFlyWImplicit);
  // The route ignores the batch, so a plan made at the maximum batch holds for every smaller one.
  for (int64_t batch : {1, 7, 1000})
    EXPECT_EQ(cuda_conv2d_route(make_conv2d_shape(batch, 7, 9, 3, 6, 3, 2, 1), false, PredictedStrategy::Chain, 0, 1),
              Conv2dRoute::Cudnn);
}

TEST(CudnnConvRoute, DescriptorDimsInCudnnArgumentOrder) {
  const Conv2dShape s = make_conv2d_shape(3, 10, 9, 4, 6, 3, 2, 1);  // out 5×5
  const CudnnConvDims d = cudnn_conv_dims(s, cudnn_conv_filters(true, PredictedStrategy::Chain, 6, 5, 2));
  EXPECT_EQ(d.n, 3);
  EXPECT_EQ(d.in_c, 4);
  EXPECT_EQ(d.in_h, 10);
  EXPECT_EQ(d.in_w, 9);
  EXPECT_EQ(d.filters, 10);  // the chain convolves with J·r = 2·5 dictionary filters
  EXPECT_EQ(d.kernel, 3);
  EXPECT_EQ(d.out_h, 5);
  EXPECT_EQ(d.out_w, 5);
  EXPECT_EQ(d.pad_h, 1);
  EXPECT_EQ(d.pad_w, 1);
  EXPECT_EQ(d.stride, 2);
  EXPECT_EQ(cudnn_conv_filters(true, PredictedStrategy::Materialise, 6, 5, 2), 6);
  EXPECT_EQ(cudnn_conv_filters(false, PredictedStrategy::Chain, 6, 0, 1), 6);
  EXPECT_THROW(cudnn_conv_dims(make_conv2d_shape(1, 8, 6, 3, 4, 4, 1, -1), 4), Error);  // asymmetric
  // 2^31 elements in one tensor: beyond the legacy descriptors' int sizes.
  EXPECT_THROW(cudnn_conv_dims(make_conv2d_shape(int64_t{1} << 22, 32, 32, 1, 1, 1, 1, 0), 1), UserError);
}

TEST(CudnnConvRoute, BuffersOfEachRoute) {
  const Conv2dShape s = make_conv2d_shape(4, 9, 8, 3, 6, 3, 1, 1);
  const int64_t patch = s.patch(), rank = 5, columns = 2;
  const Conv2dBuffers dense = cuda_conv2d_buffers({s, false, PredictedStrategy::Chain, 0, 1, false});
  EXPECT_EQ(dense.forward_cols + dense.backward_cols + dense.dcols + dense.saved + dense.backward_scratch, 0);
  EXPECT_EQ(dense.forward_filter, patch * s.out_c);
  EXPECT_EQ(dense.backward_filter, patch * s.out_c);
  const Conv2dBuffers materialise = cuda_conv2d_buffers({s, true, PredictedStrategy::Materialise, rank, columns, true});
  EXPECT_EQ(materialise.forward_cols + materialise.backward_cols + materialise.dcols, 0);
  EXPECT_EQ(materialise.saved, patch * s.out_c);             // Wᵀ
  EXPECT_EQ(materialise.backward_scratch, patch * s.out_c);  // dWᵀ
  EXPECT_EQ(materialise.forward_filter + materialise.backward_filter, 0);
  const Conv2dBuffers chain = cuda_conv2d_buffers({s, true, PredictedStrategy::Chain, rank, columns, true});
  EXPECT_EQ(chain.forward_cols + chain.backward_cols + chain.dcols, 0);
  EXPECT_EQ(chain.saved, s.rows() * rank * columns);             // T
  EXPECT_EQ(chain.backward_scratch, s.rows() * rank * columns);  // dT
  EXPECT_EQ(chain.forward_filter, patch * rank * columns);       // Uᵀ
  EXPECT_EQ(chain.backward_filter, patch * rank * columns);      // Uᵀ, then dUᵀ
  // onthefly_w's implicit GEMM: no im2col matrix forward, nothing saved, T recomputed in backward,
  // dcols for col2im; LowRank's backward runs the im2col route and gets its rebuilt im2col matrix.
  for (bool learn_u : {false, true}) {
    const Conv2dBuffers implicit = cuda_conv2d_buffers({s, true, PredictedStrategy::OnTheFlyW, rank, columns, learn_u});
    EXPECT_EQ(implicit.forward_cols + implicit.saved + implicit.forward_filter + implicit.backward_filter, 0);
    EXPECT_EQ(implicit.backward_scratch, s.rows() * 12);  // T: J·r = 10 padded to 12 (the im2col route's layout)
    EXPECT_EQ(implicit.dcols, s.rows() * patch);
    EXPECT_EQ(implicit.backward_cols, learn_u ? s.rows() * patch : 0);
    const Conv2dBuffers im2col = conv2d_im2col_buffers({s, true, PredictedStrategy::OnTheFlyW, rank, columns, learn_u});
    EXPECT_EQ(implicit.backward_scratch, im2col.backward_scratch);  // the fallback's scratch fits too
  }
  // Where the route is im2col, im2col's buffers, and no filter copies.
  for (const Conv2dLayout& l : {Conv2dLayout{s, true, PredictedStrategy::ChainFused, rank, columns, false},
                                Conv2dLayout{make_conv2d_shape(4, 8, 8, 3, 6, 2, 1, -1), false,
                                             PredictedStrategy::Chain, 0, 1, false}}) {
    const Conv2dBuffers got = cuda_conv2d_buffers(l), want = conv2d_im2col_buffers(l);
    EXPECT_EQ(got.forward_cols, want.forward_cols);
    EXPECT_GT(got.forward_cols, 0);
    EXPECT_EQ(got.dcols, want.dcols);
    EXPECT_EQ(got.saved, want.saved);
    EXPECT_EQ(got.backward_scratch, want.backward_scratch);
    EXPECT_EQ(got.forward_filter + got.backward_filter, 0);
  }
}

TEST(CudnnConvRoute, TransposeSourceIsTheTranspose) {
  const int64_t rows = 5, cols = 7;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) EXPECT_EQ(transpose_source(c * rows + r, rows, cols), r * cols + c);
}

// ---- the layers' data flow over a float64 model of cuDNN ------------------------------------------

// cuDNN's cross-correlation as its documentation defines it, on the descriptors' dims: x NHWC,
// w KRSC, one padding per dimension on both sides, y NHWC with `filters` channels.
struct CudnnReferenceOps : cpu::CpuOps<double> {
  void transpose(const double* a, int64_t rows, int64_t cols, double* out, GradientMode mode) {
    for (int64_t i = 0; i < rows * cols; ++i)
      out[i] = (mode == GradientMode::Accumulate ? out[i] : 0.0) + a[transpose_source(i, rows, cols)];
  }
  // Calls f(y index, x index, w index) for every product of the convolution.
  template <typename F>
  static void each_product(const Conv2dShape& s, int64_t filters, F f) {
    const CudnnConvDims d = cudnn_conv_dims(s, filters);
    for (int64_t b = 0; b < d.n; ++b)
      for (int64_t oy = 0; oy < d.out_h; ++oy)
        for (int64_t ox = 0; ox < d.out_w; ++ox)
          for (int64_t k = 0; k < d.filters; ++k)
            for (int64_t r = 0; r < d.kernel; ++r)
              for (int64_t q = 0; q < d.kernel; ++q) {
                const int64_t iy = oy * d.stride - d.pad_h + r, ix = ox * d.stride - d.pad_w + q;
                if (iy < 0 || iy >= d.in_h || ix < 0 || ix >= d.in_w) continue;
                for (int64_t c = 0; c < d.in_c; ++c)
                  f(((b * d.out_h + oy) * d.out_w + ox) * d.filters + k, ((b * d.in_h + iy) * d.in_w + ix) * d.in_c + c,
                    ((k * d.kernel + r) * d.kernel + q) * d.in_c + c);
              }
  }
  void conv_forward(const Conv2dShape& s, int64_t filters, const double* x, const double* w, double* y) {
    std::fill(y, y + s.rows() * filters, 0.0);
    each_product(s, filters, [&](int64_t yi, int64_t xi, int64_t wi) { y[yi] += x[xi] * w[wi]; });
  }
  void conv_backward_data(const Conv2dShape& s, int64_t filters, const double* w, const double* dy, double* dx) {
    std::fill(dx, dx + s.batch * s.in_features(), 0.0);
    each_product(s, filters, [&](int64_t yi, int64_t xi, int64_t wi) { dx[xi] += dy[yi] * w[wi]; });
  }
  void conv_backward_filter(const Conv2dShape& s, int64_t filters, const double* x, const double* dy, double* dw) {
    std::fill(dw, dw + filters * s.patch(), 0.0);
    each_product(s, filters, [&](int64_t yi, int64_t xi, int64_t wi) { dw[wi] += dy[yi] * x[xi]; });
  }
};

// onthefly_w's conv kernels (kernels/cuda/onthefly_w.h) by their definitions: im2col(X) read element
// by element where conv2d_input_offset says, W = U·V formed in full.
struct OnTheFlyWReferenceOps : cpu::CpuOps<double> {
  static std::vector<double> filter_bank(const PredictedLinearShape& l, const double* u, const double* v) {
    const int64_t nc = l.n_per_column(), r = l.rank, tc = l.t_cols();
    std::vector<double> w(static_cast<size_t>(l.k * l.n), 0.0);  // (K, N)
    for (int64_t k = 0; k < l.k; ++k)
      for (int64_t j = 0; j < l.columns; ++j)
        for (int64_t c = 0; c < nc; ++c)
          for (int64_t q = 0; q < r; ++q) w[k * l.n + j * nc + c] += u[k * tc + j * r + q] * v[(j * r + q) * nc + c];
    return w;
  }
  static double im2col_at(const Conv2dShape& s, const double* x, int64_t row, int64_t col) {
    const int64_t at = conv2d_input_offset(s, row, col);
    return at < 0 ? 0.0 : x[at];
  }
  void onthefly_w_conv2d_forward(const Conv2dShape& s, int64_t rank, int64_t columns, const double* x, const double* u,
                                 const double* v, const double* bias, double* y) {
    const PredictedLinearShape l{s.rows(), s.patch(), s.out_c, rank, columns};
    const std::vector<double> w = filter_bank(l, u, v);
    for (int64_t m = 0; m < l.m; ++m)
      for (int64_t n = 0; n < l.n; ++n) {
        double sum = bias ? bias[n] : 0.0;
        for (int64_t k = 0; k < l.k; ++k) sum += im2col_at(s, x, m, k) * w[static_cast<size_t>(k * l.n + n)];
        y[m * l.n + n] = sum;
      }
  }
  void onthefly_w_conv2d_t(const Conv2dShape& s, int64_t rank, int64_t columns, const double* x, const double* u,
                           double* t) {
    const int64_t tc = rank * columns;
    for (int64_t m = 0; m < s.rows(); ++m)
      for (int64_t q = 0; q < tc; ++q) {
        double sum = 0.0;
        for (int64_t k = 0; k < s.patch(); ++k) sum += im2col_at(s, x, m, k) * u[k * tc + q];
        t[m * tc + q] = sum;
      }
  }
  void onthefly_w_backward_data(const PredictedLinearShape& l, const double* dy, const double* u, const double* v,
                                double* dx) {
    const std::vector<double> w = filter_bank(l, u, v);
    for (int64_t m = 0; m < l.m; ++m)
      for (int64_t k = 0; k < l.k; ++k) {
        double sum = 0.0;
        for (int64_t n = 0; n < l.n; ++n) sum += dy[m * l.n + n] * w[static_cast<size_t>(k * l.n + n)];
        dx[m * l.k + k] = sum;
      }
  }
};

struct KrscCase {
  int64_t batch, h, w, c, out_c, kernel, stride, pad;
  bool predicted;
  PredictedStrategy strategy;
  int64_t rank, columns;
  bool learn_u;
  GradientMode mode;  // of every parameter gradient
};

void PrintTo(const KrscCase& c, std::ostream* out) {
  *out << c.batch << "x" << c.h << "x" << c.w << "x" << c.c << " -> " << c.out_c << " k" << c.kernel << " s" << c.stride
       << " p" << c.pad << " " << (c.predicted ? predicted_strategy_name(c.strategy) : "dense") << " r" << c.rank
       << " J" << c.columns << (c.learn_u ? " learnU" : "") << (c.mode == GradientMode::Accumulate ? " accumulate" : "");
}

std::string krsc_case_name(const ::testing::TestParamInfo<KrscCase>& info) {
  const KrscCase& c = info.param;
  return std::to_string(info.index) + "_" + (c.predicted ? predicted_strategy_name(c.strategy) : "dense") + "_k" +
         std::to_string(c.kernel) + "s" + std::to_string(c.stride) + "_J" + std::to_string(c.columns) +
         (c.learn_u ? "_learnU" : "") + (c.mode == GradientMode::Accumulate ? "_accumulate" : "");
}

class Conv2dKrsc : public ::testing::TestWithParam<KrscCase> {};

// The cuDNN route's forward and backward (kernels/conv2d_krsc_algorithm.h) and onthefly_w's
// implicit-GEMM route (kernels/conv2d_onthefly_w_algorithm.h), over the references above and only
// the buffers each route plans (the rest are null), equal the im2col form (cpu::conv2d_*, itself
// checked by finite differences), float64.
TEST_P(Conv2dKrsc, MatchesTheIm2colForm) {
  const KrscCase kc = GetParam();
  const Conv2dShape s = make_conv2d_shape(kc.batch, kc.h, kc.w, kc.c, kc.out_c, kc.kernel, kc.stride, kc.pad);
  const Conv2dRoute route = cuda_conv2d_route(s, kc.predicted, kc.strategy, kc.rank, kc.columns);
  ASSERT_NE(route, Conv2dRoute::Im2col);
  const Conv2dLayout layout{s, kc.predicted, kc.strategy, kc.rank, kc.columns, kc.learn_u};
  std::mt19937_64 rng(test::fresh_seed());
  const int64_t tc = std::max<int64_t>(kc.rank, 1) * kc.columns;
  const auto x = test::random_vector<double>(s.batch * s.in_features(), rng),
             w = test::random_vector<double>(s.patch() * s.out_c, rng),
             u = test::random_vector<double>(s.patch() * tc, rng),
             v = test::random_vector<double>(std::max<int64_t>(kc.rank, 1) * s.out_c, rng),
             bias = test::random_vector<double>(s.out_c, rng), dy = test::random_vector<double>(s.rows() * s.out_c, rng);
  // Accumulate: both sides start from the same gradients.
  const bool accumulate = kc.mode == GradientMode::Accumulate;
  const auto start = [&](size_t n) { return accumulate ? test::random_vector<double>(n, rng) : test::poisoned<double>(n); };
  const std::vector<double> dweight0 = start(kc.predicted ? v.size() : w.size()), db0 = start(bias.size()),
                            du0 = start(u.size());
  struct Out {
    std::vector<double> y, dx, dweight, db, du;
  };
  auto run = [&](const Conv2dBuffers& sizes, auto forward, auto backward) {
    std::vector<double> saved = test::poisoned<double>(sizes.saved), cols = test::poisoned<double>(sizes.forward_cols),
                        filter = test::poisoned<double>(sizes.forward_filter);
    Out o{test::poisoned<double>(dy.size()), test::poisoned<double>(x.size()), dweight0, db0, du0};
    Conv2dForwardArgsT<double> f;
    f.conv = s; f.predicted = kc.predicted; f.strategy = kc.strategy; f.rank = kc.rank; f.columns = kc.columns;
    f.x = x.data(); f.w = w.data(); f.u = u.data(); f.v = v.data(); f.bias = bias.data();
    f.saved = saved.data(); f.cols = cols.data(); f.filter = filter.data(); f.y = o.y.data();
    forward(f);
    std::vector<double> bcols = test::poisoned<double>(sizes.backward_cols), dcols = test::poisoned<double>(sizes.dcols),
                        scratch = test::poisoned<double>(sizes.backward_scratch),
                        bfilter = test::poisoned<double>(sizes.backward_filter);
    Conv2dBackwardArgsT<double> b;
    b.conv = s; b.predicted = kc.predicted; b.strategy = kc.strategy; b.rank = kc.rank; b.columns = kc.columns;
    b.x = x.data(); b.w = w.data(); b.u = u.data(); b.v = v.data(); b.saved = saved.data(); b.dy = dy.data();
    b.cols = bcols.data(); b.dcols = dcols.data(); b.scratch = scratch.data(); b.filter = bfilter.data();
    b.dx = o.dx.data(); b.dbias = o.db.data();
    if (kc.predicted) b.dv = o.dweight.data(); else b.dw = o.dweight.data();
    if (kc.learn_u) b.du = o.du.data();
    b.weight_mode = b.dbias_mode = b.du_mode = kc.mode;
    backward(b);
    return o;
  };
  const Out ref = run(conv2d_im2col_buffers(layout), [](const auto& a) { cpu::conv2d_forward(a); },
                      [](const auto& a) { cpu::conv2d_backward(a); });
  Out out;
  if (route == Conv2dRoute::Cudnn) {
    CudnnReferenceOps ops;
    out = run(cudnn_conv2d_buffers(layout), [&](const auto& a) { algorithm::conv2d_krsc_forward(ops, a); },
              [&](const auto& a) { algorithm::conv2d_krsc_backward(ops, a); });
  } else {
    ASSERT_FALSE(kc.learn_u) << "LowRank's backward takes the im2col route";
    OnTheFlyWReferenceOps ops;
    out = run(onthefly_w_implicit_conv2d_buffers(layout),
              [&](const auto& a) { algorithm::conv2d_onthefly_w_forward(ops, a); },
              [&](const auto& a) { algorithm::conv2d_onthefly_w_backward(ops, a); });
  }
  // Same products, summed in another order: float64 rounding of the longest reduction, the suite's
  // rule with each reference's magnitude as the scale.
  const double r = test::rtol_for<double>(s.rows() * s.patch() * tc);
  auto close = [&](const std::vector<double>& got, const std::vector<double>& want) {
    return all_close(got, want, r, r * std::max(1.0, test::max_abs(want)));
  };
  EXPECT_TRUE(close(out.y, ref.y));
  EXPECT_TRUE(close(out.dx, ref.dx));
  EXPECT_TRUE(close(out.dweight, ref.dweight));
  EXPECT_TRUE(close(out.db, ref.db));
  if (kc.learn_u) {
    EXPECT_TRUE(close(out.du, ref.du));
  }
}

std::vector<KrscCase> krsc_cases() {
  // Off every grid: odd sizes and channels, stride 2 with padding, "same" with an odd filter,
  // 1×1, a filter as large as the padded input.
  struct Geometry {
    int64_t batch, h, w, c, out_c, kernel, stride, pad;
  };
  const Geometry geometries[] = {
      {2, 7, 9, 3, 6, 3, 1, 1}, {3, 10, 9, 4, 6, 3, 2, 1}, {2, 6, 7, 2, 4, 5, 1, -1},
      {2, 11, 10, 2, 6, 3, 2, 0}, {1, 5, 5, 3, 6, 1, 1, 0}, {2, 4, 5, 1, 3, 5, 2, 2},
  };
  std::vector<KrscCase> cases;
  for (const Geometry& g : geometries) {
    const int64_t patch = g.kernel * g.kernel * g.c, rank = std::max<int64_t>(1, patch / 3);
    const int64_t columns = g.out_c % 3 == 0 ? 3 : (g.out_c % 2 == 0 ? 2 : 1);
    for (GradientMode mode : {GradientMode::Overwrite, GradientMode::Accumulate}) {
      cases.push_back({g.batch, g.h, g.w, g.c, g.out_c, g.kernel, g.stride, g.pad, false, PredictedStrategy::Chain, 0,
                       1, false, mode});
      for (PredictedStrategy strategy : {PredictedStrategy::Materialise, PredictedStrategy::Chain}) {
        cases.push_back({g.batch, g.h, g.w, g.c, g.out_c, g.kernel, g.stride, g.pad, true, strategy, rank, columns,
                         false, mode});
        cases.push_back({g.batch, g.h, g.w, g.c, g.out_c, g.kernel, g.stride, g.pad, true, strategy, rank, columns,
                         true, mode});
      }
      cases.push_back({g.batch, g.h, g.w, g.c, g.out_c, g.kernel, g.stride, g.pad, true, PredictedStrategy::OnTheFlyW,
                       rank, columns, false, mode});
    }
  }
  // onthefly_w also where cuDNN is not used: "same" with an even filter (padding bottom/right only).
  for (GradientMode mode : {GradientMode::Overwrite, GradientMode::Accumulate})
    cases.push_back({3, 8, 6, 5, 7, 4, 1, -1, true, PredictedStrategy::OnTheFlyW, 26, 1, false, mode});
  return cases;
}

INSTANTIATE_TEST_SUITE_P(EveryCudnnLayer, Conv2dKrsc, ::testing::ValuesIn(krsc_cases()), krsc_case_name);

}  // namespace
}  // namespace uv
