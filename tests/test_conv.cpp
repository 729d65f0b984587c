// Convolution and max-pooling: index arithmetic, the im2col form against a direct convolution,
// float64 finite-difference gradients of every conv op, the factored (predicted) form against the
// materialised one, and every device op against the CPU twin (skipped without a GPU).
#include <gtest/gtest.h>

#include <algorithm>
#include <random>

#include "engine/backend/backend.h"
#include "engine/core/error.h"
#include "engine/graph/graph.h"
#include "engine/ops/ops.h"
#include "kernels/cpu/conv2d.h"
#include "tests/test_util.h"

namespace uv {
namespace {

using test::all_close;

// Shapes off every grid: odd sizes, channels not multiples of 8, stride, padding, "same" with
// an even filter (asymmetric padding).
struct ConvCase {
  int64_t batch, h, w, c, out_c, kernel, stride, pad;
};
const ConvCase kCases[] = {
    {2, 7, 9, 3, 5, 3, 1, 1},   // symmetric padding
    {3, 8, 6, 5, 7, 4, 1, -1},  // "same", even filter
    {2, 11, 10, 2, 6, 3, 2, 0}, // stride 2, valid
    {1, 9, 9, 1, 4, 5, 2, 2},   // stride 2 with padding, one channel
};

std::string case_name(const ConvCase& c) {
  return std::to_string(c.batch) + "x" + std::to_string(c.h) + "x" + std::to_string(c.w) + "x" + std::to_string(c.c) +
         " -> " + std::to_string(c.out_c) + " k" + std::to_string(c.kernel) + " s" + std::to_string(c.stride) + " p" +
         std::to_string(c.pad);
}

Conv2dShape shape_of(const ConvCase& c) {
  return make_conv2d_shape(c.batch, c.h, c.w, c.c, c.out_c, c.kernel, c.stride, c.pad);
}

// The definition: y[b, oy, ox, o] = Σ_{ky, kx, c} x[b, oy·s − pt + ky, ox·s − pl + kx, c] · W[(ky, kx, c), o].
std::vector<double> direct_conv(const Conv2dShape& s, const std::vector<double>& x, const std::vector<double>& w) {
  std::vector<double> y(static_cast<size_t>(s.rows() * s.out_c), 0.0);
  for (int64_t b = 0; b < s.batch; ++b)
    for (int64_t oy = 0; oy < s.out_h; ++oy)
      for (int64_t ox = 0; ox < s.out_w; ++ox)
        for (int64_t o = 0; o < s.out_c; ++o) {
          double sum = 0;
          for (int64_t ky = 0; ky < s.kernel; ++ky)
            for (int64_t kx = 0; kx < s.kernel; ++kx)
              for (int64_t c = 0; c < s.in_c; ++c) {
                const int64_t iy = oy * s.stride - s.pad_top + ky, ix = ox * s.stride - s.pad_left + kx;
                if (iy < 0 || iy >= s.in_h || ix < 0 || ix >= s.in_w) continue;
                sum += x[((b * s.in_h + iy) * s.in_w + ix) * s.in_c + c] * w[((ky * s.kernel + kx) * s.in_c + c) * s.out_c + o];
              }
          y[((b * s.out_h + oy) * s.out_w + ox) * s.out_c + o] = sum;
        }
  return y;
}

TEST(Conv2dShape, OutputSizesAndSamePadding) {
  const Conv2dShape same = make_conv2d_shape(2, 8, 6, 3, 4, 4, 1, -1);
  EXPECT_EQ(same.out_h, 8);
  EXPECT_EQ(same.out_w, 6);
  EXPECT_EQ(same.pad_top, 1);  // the extra zero row of an even filter goes to the bottom
  const Conv2dShape strided = make_conv2d_shape(1, 11, 10, 1, 1, 3, 2, 0);
  EXPECT_EQ(strided.out_h, 5);
  EXPECT_EQ(strided.out_w, 4);
  EXPECT_THROW(make_conv2d_shape(1, 4, 4, 1, 1, 7, 1, 0), UserError);
  EXPECT_THROW(make_conv2d_shape(1, 8, 8, 1, 1, 3, 2, -1), UserError);  // "same" needs stride 1
  EXPECT_THROW(make_pool2d_shape(1, 1, 5, 3, 2, 2), UserError);
  const Pool2dShape pool = make_pool2d_shape(1, 7, 6, 3, 2, 2);
  EXPECT_EQ(pool.out_h, 3);
  EXPECT_EQ(pool.out_w, 3);
}

// The windows an input row lies in, from conv2d_first/last_window, against a brute-force scan.
TEST(Conv2dShape, WindowRangesMatchABruteForceScan) {
  for (int64_t kernel = 1; kernel <= 5; ++kernel)
    for (int64_t stride = 1; stride <= 3; ++stride)
      for (int64_t pad = 0; pad < kernel; ++pad)
        for (int64_t in = kernel; in <= 9; ++in) {
          const int64_t out = (in + 2 * pad - kernel) / stride + 1;
          for (int64_t i = 0; i < in; ++i) {
            int64_t first = out, last = -1;
            for (int64_t o = 0; o < out; ++o)
              if (o * stride - pad <= i && i <= o * stride - pad + kernel - 1) {
                first = std::min(first, o);
                last = std::max(last, o);
              }
            const int64_t f = conv2d_first_window(i, pad, kernel, stride), l = conv2d_last_window(i, pad, stride, out);
            if (last < 0) {
              EXPECT_GT(f, l) << "k" << kernel << " s" << stride << " p" << pad << " in" << in << " i" << i;
            } else {
              EXPECT_EQ(f, first) << "k" << kernel << " s" << stride << " p" << pad << " in" << in << " i" << i;
              EXPECT_EQ(l, last) << "k" << kernel << " s" << stride << " p" << pad << " in" << in << " i" << i;
            }
          }
        }
}

TEST(Conv2dCpu, Im2colGemmEqualsTheDirectConvolution) {
  std::mt19937_64 rng(test::fresh_seed());
  for (const ConvCase& c : kCases) {
    const Conv2dShape s = shape_of(c);
    const auto x = test::random_vector<double>(s.batch * s.in_features(), rng);
    const auto w = test::random_vector<double>(s.patch() * s.out_c, rng);
    std::vector<double> y = test::poisoned<double>(s.rows() * s.out_c), cols = test::poisoned<double>(s.rows() * s.patch());
    Conv2dForwardArgsT<double> a;
    a.conv = s;
    a.x = x.data();
    a.w = w.data();
    a.cols = cols.data();
    a.y = y.data();
    cpu::conv2d_forward(a);
    const double r = test::rtol_for<double>(s.patch());
    EXPECT_TRUE(all_close(y, direct_conv(s, x, w), r, r)) << case_name(c);
  }
}

// The shared index function (what the CUDA kernel reads) builds the same matrix as the CPU's
// run-by-run copy.
TEST(Conv2dCpu, IndexFunctionAgreesWithTheCpuIm2col) {
  std::mt19937_64 rng(test::fresh_seed());
  for (const ConvCase& c : kCases) {
    const Conv2dShape s = shape_of(c);
    const auto x = test::random_vector<double>(s.batch * s.in_features(), rng);
    std::vector<double> cols = test::poisoned<double>(s.rows() * s.patch()), ref(cols.size());
    cpu::im2col(s, x.data(), cols.data());
    for (int64_t row = 0; row < s.rows(); ++row)
      for (int64_t col = 0; col < s.patch(); ++col) {
        const int64_t at = conv2d_input_offset(s, row, col);
        ref[row * s.patch() + col] = at < 0 ? 0.0 : x[at];
      }
    EXPECT_EQ(cols, ref) << case_name(c);
  }
}

// col2im is im2col's adjoint: <im2col(x), g> = <x, col2im(g)> for every x, g.
TEST(Conv2dCpu, Col2imIsTheAdjointOfIm2col) {
  std::mt19937_64 rng(test::fresh_seed());
  for (const ConvCase& c : kCases) {
    const Conv2dShape s = shape_of(c);
    const auto x = test::random_vector<double>(s.batch * s.in_features(), rng);
    const auto g = test::random_vector<double>(s.rows() * s.patch(), rng);
    std::vector<double> cols = test::poisoned<double>(g.size()), dx = test::poisoned<double>(x.size());
    cpu::im2col(s, x.data(), cols.data());
    cpu::col2im(s, g.data(), dx.data());
    double lhs = 0, rhs = 0;
    for (size_t i = 0; i < g.size(); ++i) lhs += cols[i] * g[i];
    for (size_t i = 0; i < x.size(); ++i) rhs += x[i] * dx[i];
    EXPECT_NEAR(lhs, rhs, 1e-12 * static_cast<double>(g.size())) << case_name(c);
  }
}

// A conv layer in float64 with fresh parameters: the loss L = Σ g ⊙ y, its analytic gradients
// from conv2d_backward, and a central-difference check of every gradient entry.
struct ConvLayerCase {
  ConvCase conv;
  bool predicted;
  PredictedStrategy strategy;
  int64_t rank, columns;
  bool learn_u;
};

std::string layer_case_name(const ConvLayerCase& c) {
  return (c.predicted ? std::string(predicted_strategy_name(c.strategy)) : std::string("dense")) + "_J" +
         std::to_string(c.columns) + (c.learn_u ? "_learnU" : "");
}
void PrintTo(const ConvLayerCase& c, std::ostream* out) { *out << case_name(c.conv) << " " << layer_case_name(c); }

class Conv2dGradient : public ::testing::TestWithParam<ConvLayerCase> {};

TEST_P(Conv2dGradient, MatchesFiniteDifferences) {
  const ConvLayerCase lc = GetParam();
  const Conv2dShape s = shape_of(lc.conv);
  std::mt19937_64 rng(test::fresh_seed());
  std::vector<double> x = test::random_vector<double>(s.batch * s.in_features(), rng);
  std::vector<double> w = test::random_vector<double>(s.patch() * s.out_c, rng);
  std::vector<double> u = test::random_vector<double>(s.patch() * lc.columns * lc.rank, rng);
  std::vector<double> v = test::random_vector<double>(lc.rank * s.out_c, rng);
  std::vector<double> bias = test::random_vector<double>(s.out_c, rng);
  const std::vector<double> g = test::random_vector<double>(s.rows() * s.out_c, rng);
  Conv2dLayout layout;
  layout.conv = s;
  layout.predicted = lc.predicted;
  layout.strategy = lc.strategy;
  layout.rank = lc.rank;
  layout.columns = lc.columns;
  layout.learn_u = lc.learn_u;
  const Conv2dBuffers sizes = conv2d_im2col_buffers(layout);
  std::vector<double> saved(sizes.saved), cols(sizes.forward_cols), y(s.rows() * s.out_c);
  auto forward = [&] {
    Conv2dForwardArgsT<double> a;
    a.conv = s;
    a.predicted = lc.predicted;
    a.strategy = lc.strategy;
    a.rank = lc.rank;
    a.columns = lc.columns;
    a.x = x.data(); a.w = w.data(); a.u = u.data(); a.v = v.data(); a.bias = bias.data();
    a.saved = saved.data(); a.cols = cols.data(); a.y = y.data();
    cpu::conv2d_forward(a);
    double loss = 0;
    for (size_t i = 0; i < y.size(); ++i) loss += g[i] * y[i];
    return loss;
  };
  forward();
  std::vector<double> bcols = test::poisoned<double>(sizes.backward_cols), dcols = test::poisoned<double>(sizes.dcols),
                      scratch = test::poisoned<double>(sizes.backward_scratch), dx = test::poisoned<double>(x.size()),
                      dw = test::poisoned<double>(w.size()), dv = test::poisoned<double>(v.size()),
                      du = test::poisoned<double>(u.size()), db = test::poisoned<double>(bias.size());
  Conv2dBackwardArgsT<double> b;
  b.conv = s;
  b.predicted = lc.predicted;
  b.strategy = lc.strategy;
  b.rank = lc.rank;
  b.columns = lc.columns;
  b.x = x.data(); b.w = w.data(); b.u = u.data(); b.v = v.data(); b.saved = saved.data(); b.dy = g.data();
  b.cols = bcols.data(); b.dcols = dcols.data(); b.scratch = scratch.data();
  b.dx = dx.data(); b.dbias = db.data();
  if (lc.predicted) b.dv = dv.data(); else b.dw = dw.data();
  if (lc.learn_u) b.du = du.data();
  cpu::conv2d_backward(b);

  auto check = [&](std::vector<double>& param, const std::vector<double>& grad, const char* what) {
    std::vector<double> numeric(param.size());
    const double eps = 1e-6;
    for (size_t i = 0; i < param.size(); ++i) {
      const double keep = param[i];
      param[i] = keep + eps;
      const double up = forward();
      param[i] = keep - eps;
      const double down = forward();
      param[i] = keep;
      numeric[i] = (up - down) / (2 * eps);
    }
    // Central differences of a function linear in each parameter: only rounding remains.
    EXPECT_TRUE(all_close(grad, numeric, 1e-6, 1e-7 * std::max(1.0, test::max_abs(numeric))))
        << what << " of " << case_name(lc.conv);
  };
  check(x, dx, "dx");
  check(bias, db, "dbias");
  if (lc.predicted) check(v, dv, "dv"); else check(w, dw, "dw");
  if (lc.learn_u) check(u, du, "du");
}

std::vector<ConvLayerCase> gradient_cases() {
  std::vector<ConvLayerCase> cases;
  for (const ConvCase& c : kCases) {
    cases.push_back({c, false, PredictedStrategy::Chain, 0, 1, false});
    const int64_t patch = c.kernel * c.kernel * c.c;
    const int64_t rank = std::max<int64_t>(1, patch / 3);
    const int64_t columns = c.out_c % 2 == 0 ? 2 : 1;
    cases.push_back({c, true, PredictedStrategy::Chain, rank, columns, false});
    cases.push_back({c, true, PredictedStrategy::Materialise, rank, columns, false});
    cases.push_back({c, true, PredictedStrategy::Chain, rank, 1, true});
  }
  return cases;
}

INSTANTIATE_TEST_SUITE_P(EveryConvOp, Conv2dGradient, ::testing::ValuesIn(gradient_cases()),
                         [](const ::testing::TestParamInfo<ConvLayerCase>& info) {
                           return std::to_string(info.index) + "_" + layer_case_name(info.param);
                         });

// The factored form (conv with the dictionary filters, then a 1×1 conv with V) equals the
// convolution with the materialised filter bank W = U·V, on every strategy.
TEST(Conv2dCpu, FactoredFormEqualsTheMaterialisedFilterBank) {
  std::mt19937_64 rng(test::fresh_seed());
  for (const ConvCase& c : kCases) {
    const Conv2dShape s = shape_of(c);
    const int64_t rank = std::max<int64_t>(1, s.patch() / 4), columns = s.out_c % 2 == 0 ? 2 : 1;
    const int64_t nc = s.out_c / columns;
    const auto x = test::random_vector<double>(s.batch * s.in_features(), rng);
    const auto u = test::random_vector<double>(s.patch() * columns * rank, rng);
    const auto v = test::random_vector<double>(rank * s.out_c, rng);
    std::vector<double> w(s.patch() * s.out_c, 0.0);  // W[:, block j] = U_j · V_j
    for (int64_t i = 0; i < s.patch(); ++i)
      for (int64_t j = 0; j < columns; ++j)
        for (int64_t o = 0; o < nc; ++o)
          for (int64_t a = 0; a < rank; ++a)
            w[i * s.out_c + j * nc + o] += u[i * columns * rank + j * rank + a] * v[(j * rank + a) * nc + o];
    const std::vector<double> ref = direct_conv(s, x, w);
    for (PredictedStrategy strategy : {PredictedStrategy::Chain, PredictedStrategy::Materialise}) {
      Conv2dLayout layout{s, true, strategy, rank, columns, false};
      const Conv2dBuffers sizes = conv2d_im2col_buffers(layout);
      std::vector<double> saved = test::poisoned<double>(sizes.saved), cols = test::poisoned<double>(sizes.forward_cols),
                          y = test::poisoned<double>(s.rows() * s.out_c);
      Conv2dForwardArgsT<double> a;
      a.conv = s; a.predicted = true; a.strategy = strategy; a.rank = rank; a.columns = columns;
      a.x = x.data(); a.u = u.data(); a.v = v.data(); a.saved = saved.data(); a.cols = cols.data(); a.y = y.data();
      cpu::conv2d_forward(a);
      const double r = test::rtol_for<double>(s.patch() * rank);
      EXPECT_TRUE(all_close(y, ref, r, r)) << predicted_strategy_name(strategy) << " " << case_name(c);
    }
  }
}

TEST(MaxPool2dCpu, ForwardPicksTheMaximumAndBackwardRoutesToIt) {
  std::mt19937_64 rng(test::fresh_seed());
  for (auto [size, stride] : {std::pair<int64_t, int64_t>{2, 2}, {3, 2}, {2, 1}, {3, 3}}) {
    const Pool2dShape s = make_pool2d_shape(2, 7, 8, 3, size, stride);
    const auto x = test::random_vector<double>(s.batch * s.in_features(), rng);
    const auto g = test::random_vector<double>(s.batch * s.out_features(), rng);
    std::vector<double> y = test::poisoned<double>(g.size()), dx = test::poisoned<double>(x.size());
    cpu::maxpool2d_forward(s, x.data(), y.data());
    for (int64_t b = 0; b < s.batch; ++b)
      for (int64_t oy = 0; oy < s.out_h; ++oy)
        for (int64_t ox = 0; ox < s.out_w; ++ox)
          for (int64_t c = 0; c < s.channels; ++c) {
            double best = -1e300;
            for (int64_t ky = 0; ky < size; ++ky)
              for (int64_t kx = 0; kx < size; ++kx)
                best = std::max(best, x[((b * s.in_h + oy * stride + ky) * s.in_w + ox * stride + kx) * s.channels + c]);
            ASSERT_EQ(y[((b * s.out_h + oy) * s.out_w + ox) * s.channels + c], best);
          }
    // Finite differences: away from ties max is locally linear, so they are exact up to rounding.
    cpu::maxpool2d_backward(s, x.data(), g.data(), dx.data());
    std::vector<double> xp = x, numeric(x.size()), yp(y.size());
    for (size_t i = 0; i < x.size(); ++i) {
      const double eps = 1e-7;
      auto loss = [&](double value) {
        xp[i] = value;
        cpu::maxpool2d_forward(s, xp.data(), yp.data());
        double l = 0;
        for (size_t j = 0; j < yp.size(); ++j) l += g[j] * yp[j];
        return l;
      };
      numeric[i] = (loss(x[i] + eps) - loss(x[i] - eps)) / (2 * eps);
      xp[i] = x[i];
    }
    EXPECT_TRUE(all_close(dx, numeric, 1e-6, 1e-6)) << "size " << size << " stride " << stride;
  }
}

// The float ops through the CPU backend equal the float64 reference (what training runs).
TEST(Conv2dBackend, CpuBackendMatchesTheFloat64Reference) {
  std::unique_ptr<Backend> cpu = make_cpu_backend();
  std::mt19937_64 rng(test::fresh_seed());
  const Conv2dShape s = shape_of(kCases[1]);
  const auto x = test::random_vector<double>(s.batch * s.in_features(), rng);
  const auto w = test::random_vector<double>(s.patch() * s.out_c, rng);
  std::vector<float> xf(x.begin(), x.end()), wf(w.begin(), w.end()), cols(s.rows() * s.patch()),
      y = test::poisoned<float>(s.rows() * s.out_c);
  Conv2dForwardArgs a;
  a.conv = s; a.x = xf.data(); a.w = wf.data(); a.cols = cols.data(); a.y = y.data();
  cpu->conv2d_forward(a);
  const double r = test::rtol_for<float>(s.patch());
  EXPECT_TRUE(all_close(y, direct_conv(s, x, w), r, r * std::sqrt(double(s.patch()))));
}

// ---- device against the CPU twin ------------------------------------------------------------------

std::unique_ptr<Backend> device_backend(std::string* why) {
  const DeviceReport report = query_devices();
#ifdef UV_WITH_CUDA
  if (report.cuda_devices > 0) return make_cuda_backend(0);
#endif
  *why = "no CUDA device: " + report.cuda_status;
  return nullptr;
}

struct Mirror {
  Backend& backend;
  std::vector<Buffer> buffers;
  float* put(const std::vector<float>& host) {
    buffers.push_back(backend.allocate(std::max<size_t>(host.size(), 1) * sizeof(float)));
    if (!host.empty()) backend.copy_to_device(buffers.back().data(), host.data(), host.size() * sizeof(float));
    return buffers.back().floats();
  }
  std::vector<float> get(const float* device, size_t n) {
    std::vector<float> host(n);
    backend.copy_to_host(host.data(), device, n * sizeof(float));
    return host;
  }
};

class Conv2dDevice : public ::testing::TestWithParam<ConvLayerCase> {};

// conv2d_forward/backward (im2col, col2im and each strategy; cuDNN and onthefly_w's implicit GEMM
// where the backend uses them) on
// the device against the CPU backend, poisoned outputs. Tolerance: the suite's rule with the
// longest reduction of each output.
TEST_P(Conv2dDevice, MatchesTheCpu) {
  std::string why;
  std::unique_ptr<Backend> device = device_backend(&why);
  if (!device) GTEST_SKIP() << why;
  const ConvLayerCase lc = GetParam();
  const Conv2dShape s = shape_of(lc.conv);
  std::unique_ptr<Backend> cpu = make_cpu_backend();
  std::mt19937_64 rng(test::fresh_seed());
  const auto x = test::random_vector<float>(s.batch * s.in_features(), rng),
             w = test::random_vector<float>(s.patch() * s.out_c, rng),
             u = test::random_vector<float>(s.patch() * lc.columns * std::max<int64_t>(lc.rank, 1), rng),
             v = test::random_vector<float>(std::max<int64_t>(lc.rank, 1) * s.out_c, rng),
             bias = test::random_vector<float>(s.out_c, rng), dy = test::random_vector<float>(s.rows() * s.out_c, rng);
  Conv2dLayout layout{s, lc.predicted, lc.strategy, lc.rank, lc.columns, lc.learn_u};
  struct Out { std::vector<float> y, dx, dweight, db, du; };
  auto run = [&](Backend& be) {
    const Conv2dBuffers sizes = be.conv2d_buffers(layout);
    Mirror d{be, {}};
    Conv2dForwardArgs f;
    f.conv = s; f.predicted = lc.predicted; f.strategy = lc.strategy; f.rank = lc.rank; f.columns = lc.columns;
    f.x = d.put(x); f.w = d.put(w); f.u = d.put(u); f.v = d.put(v); f.bias = d.put(bias);
    f.saved = d.put(test::poisoned<float>(sizes.saved)); f.cols = d.put(test::poisoned<float>(sizes.forward_cols));
    f.filter = d.put(test::poisoned<float>(sizes.forward_filter));
    f.y = d.put(test::poisoned<float>(dy.size()));
    be.conv2d_forward(f);
    Conv2dBackwardArgs b;
    b.conv = s; b.predicted = lc.predicted; b.strategy = lc.strategy; b.rank = lc.rank; b.columns = lc.columns;
    b.x = f.x; b.w = f.w; b.u = f.u; b.v = f.v; b.saved = f.saved; b.dy = d.put(dy);
    b.cols = d.put(test::poisoned<float>(sizes.backward_cols)); b.dcols = d.put(test::poisoned<float>(sizes.dcols));
    b.scratch = d.put(test::poisoned<float>(sizes.backward_scratch));
    b.filter = d.put(test::poisoned<float>(sizes.backward_filter));
    b.dx = d.put(test::poisoned<float>(x.size())); b.dbias = d.put(test::poisoned<float>(bias.size()));
    float* dweight = d.put(test::poisoned<float>(lc.predicted ? v.size() : w.size()));
    if (lc.predicted) b.dv = dweight; else b.dw = dweight;
    if (lc.learn_u) b.du = d.put(test::poisoned<float>(u.size()));
    be.conv2d_backward(b);
    Out o{d.get(f.y, dy.size()), d.get(b.dx, x.size()), d.get(dweight, lc.predicted ? v.size() : w.size()),
          d.get(b.dbias, bias.size()), {}};
    if (lc.learn_u) o.du = d.get(b.du, u.size());
    return o;
  };
  const Out ref = run(*cpu), out = run(*device);
  const int64_t inner = s.patch() * std::max<int64_t>(lc.rank, 1);
  const double r = test::rtol_for<float>(inner), scale = std::sqrt(double(inner));
  EXPECT_TRUE(all_close(out.y, ref.y, r, r * scale));
  EXPECT_TRUE(all_close(out.dx, ref.dx, r * 4, r * 4 * scale));
  const double rw = test::rtol_for<float>(s.rows() * s.patch());
  EXPECT_TRUE(all_close(out.dweight, ref.dweight, rw, rw * std::sqrt(double(s.rows() * s.patch()))));
  EXPECT_TRUE(all_close(out.db, ref.db, test::rtol_for<float>(s.rows()), test::rtol_for<float>(s.rows()) * 4));
  if (lc.learn_u) {
    EXPECT_TRUE(all_close(out.du, ref.du, rw, rw * std::sqrt(double(s.rows() * s.out_c))));
  }
}

std::vector<ConvLayerCase> device_cases() {
  std::vector<ConvLayerCase> cases = gradient_cases();
  for (const ConvCase& c : kCases) {
    const int64_t rank = std::max<int64_t>(1, c.kernel * c.kernel * c.c / 3);
    cases.push_back({c, true, PredictedStrategy::ChainFused, rank, c.out_c % 2 == 0 ? 2 : 1, false});
  }
  // On CUDA these go to cuDNN (kCases[1], "same" with an even filter, stays on im2col): stride 2
  // with padding and several channels, "same" with an odd filter, three columns, LowRank.
  for (const ConvCase& c : {ConvCase{3, 10, 9, 4, 6, 3, 2, 1}, ConvCase{2, 6, 7, 2, 9, 5, 1, -1}}) {
    const int64_t rank = std::max<int64_t>(1, c.kernel * c.kernel * c.c / 4);
    cases.push_back({c, false, PredictedStrategy::Chain, 0, 1, false});
    for (PredictedStrategy strategy : {PredictedStrategy::Materialise, PredictedStrategy::Chain}) {
      cases.push_back({c, true, strategy, rank, 3, false});
      cases.push_back({c, true, strategy, rank, 3, true});
    }
  }
  // onthefly_w's implicit-GEMM kernels (every padding: the route is not cuDNN's): each kCases
  // geometry (asymmetric "same", stride 2 with padding, one channel), three columns, LowRank (its
  // backward on the im2col route), and a layer past one tile each way (B·Ho·Wo = 286 rows: 5 row
  // tiles; p·p·C_in = 45: 3 K chunks; C_out/J = 70: 2 column tiles; r = 20: 2 rank slices).
  for (const ConvCase& c : kCases) {
    const int64_t rank = std::max<int64_t>(1, c.kernel * c.kernel * c.c / 3);
    cases.push_back({c, true, PredictedStrategy::OnTheFlyW, rank, c.out_c % 2 == 0 ? 2 : 1, false});
  }
  cases.push_back({ConvCase{3, 10, 9, 4, 6, 3, 2, 1}, true, PredictedStrategy::OnTheFlyW, 9, 3, false});
  cases.push_back({ConvCase{3, 10, 9, 4, 6, 3, 2, 1}, true, PredictedStrategy::OnTheFlyW, 9, 3, true});
  cases.push_back({ConvCase{2, 13, 11, 5, 70, 3, 1, 1}, true, PredictedStrategy::OnTheFlyW, 20, 1, false});
  return cases;
}

INSTANTIATE_TEST_SUITE_P(EveryConvOp, Conv2dDevice, ::testing::ValuesIn(device_cases()),
                         [](const ::testing::TestParamInfo<ConvLayerCase>& info) {
                           return std::to_string(info.index) + "_" + layer_case_name(info.param);
                         });

TEST(MaxPool2dDevice, MatchesTheCpuExactly) {
  std::string why;
  std::unique_ptr<Backend> device = device_backend(&why);
  if (!device) GTEST_SKIP() << why;
  std::unique_ptr<Backend> cpu = make_cpu_backend();
  std::mt19937_64 rng(test::fresh_seed());
  const Pool2dShape s = make_pool2d_shape(3, 9, 7, 5, 3, 2);
  const auto x = test::random_vector<float>(s.batch * s.in_features(), rng),
             dy = test::random_vector<float>(s.batch * s.out_features(), rng);
  auto run = [&](Backend& be) {
    Mirror d{be, {}};
    float* xd = d.put(x);
    float* y = d.put(test::poisoned<float>(dy.size()));
    float* dx = d.put(test::poisoned<float>(x.size()));
    be.maxpool2d_forward(s, xd, y);
    be.maxpool2d_backward(s, xd, d.put(dy), dx);
    return std::make_pair(d.get(y, dy.size()), d.get(dx, x.size()));
  };
  const auto ref = run(*cpu), out = run(*device);
  EXPECT_EQ(out.first, ref.first);    // a selection
  EXPECT_EQ(out.second, ref.second);  // the same additions in the same order
}

}  // namespace
}  // namespace uv
