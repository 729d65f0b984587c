// Every CPU op: float64 finite-difference gradient checks of its backward, strategies agreeing,
// gradient accumulation, and poisoned outputs fully written. Sizes are deliberately odd.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <functional>

#include "engine/backend/backend.h"
#include "engine/core/philox.h"
#include "kernels/cpu/elementwise.h"
#include "kernels/cpu/predicted_linear.h"
#include "tests/test_util.h"

namespace uv {
namespace {

using test::all_close;
using Vec = std::vector<double>;

// Central differences of `loss` w.r.t. every element of `param` against `analytic`.
// Tolerance: h = 1e-6 leaves O(h²)·|f'''| ≈ 1e-12 truncation and ≈ ε/h ≈ 1e-10 rounding per
// unit of loss, so 1e-7 absolute plus 1e-6 relative is far above noise and far below a wrong term.
void check_gradient(const std::string& what, Vec& param, const Vec& analytic,
                    const std::function<double()>& loss, double h = 1e-6) {
  ASSERT_EQ(param.size(), analytic.size()) << what;
  double norm = 0;
  for (size_t i = 0; i < param.size(); ++i) {
    const double saved = param[i];
    param[i] = saved + h;
    const double up = loss();
    param[i] = saved - h;
    const double down = loss();
    param[i] = saved;
    const double fd = (up - down) / (2 * h);
    EXPECT_NEAR(analytic[i], fd, 1e-7 + 1e-6 * std::fabs(fd)) << what << "[" << i << "]";
    norm += fd * fd;
  }
  EXPECT_GT(norm, 0.0) << what << ": gradient is identically zero, the check proves nothing";
}

double dot(const Vec& a, const Vec& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

using test::PredictedCase;

class PredictedLinearGradient : public ::testing::TestWithParam<PredictedCase> {};

TEST_P(PredictedLinearGradient, MatchesFiniteDifferencesInFloat64) {
  const PredictedCase c = GetParam();
  std::mt19937_64 rng(test::fresh_seed());
  PredictedLinearShape s;
  s.m = 5;
  s.k = 7;
  s.rank = 3;
  s.columns = c.columns;
  s.n = 5 * c.columns;  // 5 outputs per column: off any tile
  Vec x = test::random_vector<double>(s.m * s.k, rng), u = test::random_vector<double>(s.k * s.t_cols(), rng),
      v = test::random_vector<double>(s.rank * s.n, rng), b = test::random_vector<double>(s.n, rng),
      g = test::random_vector<double>(s.m * s.n, rng);  // L = Σ G ⊙ Y, so dL/dY = G
  Vec saved(predicted_linear_saved_floats(s, c.strategy)), y(s.m * s.n);
  auto loss = [&] {
    PredictedLinearForwardArgsT<double> f;
    f.shape = s;
    f.strategy = c.strategy;
    f.x = x.data(); f.u = u.data(); f.v = v.data(); f.bias = b.data();
    f.saved = saved.data(); f.y = y.data();
    cpu::predicted_linear_forward(f);
    return dot(g, y);
  };
  loss();
  Vec dx = test::poisoned<double>(x.size()), dv = test::poisoned<double>(v.size()),
      db = test::poisoned<double>(b.size()), du = test::poisoned<double>(u.size()),
      scratch(predicted_linear_backward_scratch_floats(s, c.strategy));
  PredictedLinearBackwardArgsT<double> bw;
  bw.shape = s;
  bw.strategy = c.strategy;
  bw.x = x.data(); bw.u = u.data(); bw.v = v.data(); bw.saved = saved.data(); bw.dy = g.data();
  bw.scratch = scratch.data(); bw.dx = dx.data(); bw.dv = dv.data(); bw.dbias = db.data();
  bw.du = c.learn_u ? du.data() : nullptr;
  cpu::predicted_linear_backward(bw);
  check_gradient("dX", x, dx, loss);
  check_gradient("dV", v, dv, loss);
  check_gradient("db", b, db, loss);
  if (c.learn_u) check_gradient("dU", u, du, loss);
}

INSTANTIATE_TEST_SUITE_P(
    OpsAllStrategies, PredictedLinearGradient,
    ::testing::Values(PredictedCase{PredictedStrategy::Chain, 1, false},
                      PredictedCase{PredictedStrategy::Chain, 3, false},
                      PredictedCase{PredictedStrategy::Chain, 3, true},
                      PredictedCase{PredictedStrategy::Materialise, 1, false},
                      PredictedCase{PredictedStrategy::Materialise, 3, false},
                      PredictedCase{PredictedStrategy::Materialise, 3, true},
                      PredictedCase{PredictedStrategy::ChainFused, 3, false},  // the chain on the CPU
                      // materialise's products in panels of W rows on the CPU
                      PredictedCase{PredictedStrategy::OnTheFlyW, 1, false},
                      PredictedCase{PredictedStrategy::OnTheFlyW, 3, false},
                      PredictedCase{PredictedStrategy::OnTheFlyW, 3, true}),
    test::predicted_case_name);

// onthefly_w on the CPU forms W a panel of 256 rows at a time: with K across three panels (the
// last short) it must give materialise's results, gradients accumulated into included. Float64,
// so the only differences are the panels' summation order: the tolerance rule at ε(double).
TEST(OpsPredictedLinear, OnTheFlyWPanelsMatchMaterialise) {
  std::mt19937_64 rng(test::fresh_seed());
  PredictedLinearShape s;
  s.m = 6; s.k = 2 * 256 + 37; s.rank = 5; s.columns = 2; s.n = 2 * 7;
  const Vec x = test::random_vector<double>(s.m * s.k, rng), u = test::random_vector<double>(s.k * s.t_cols(), rng),
            v = test::random_vector<double>(s.rank * s.n, rng), b = test::random_vector<double>(s.n, rng),
            dy = test::random_vector<double>(s.m * s.n, rng), dv0 = test::random_vector<double>(v.size(), rng),
            du0 = test::random_vector<double>(u.size(), rng);
  struct Out { Vec y, dx, dv, db, du; };
  auto run = [&](PredictedStrategy strategy, GradientMode mode) {
    Out o{test::poisoned<double>(s.m * s.n), test::poisoned<double>(x.size()), dv0,
          test::poisoned<double>(b.size()), du0};
    Vec saved(predicted_linear_saved_floats(s, strategy)), scratch(predicted_linear_backward_scratch_floats(s, strategy));
    PredictedLinearForwardArgsT<double> f;
    f.shape = s; f.strategy = strategy; f.x = x.data(); f.u = u.data(); f.v = v.data();
    f.bias = b.data(); f.saved = saved.data(); f.y = o.y.data();
    cpu::predicted_linear_forward(f);
    PredictedLinearBackwardArgsT<double> bw;
    bw.shape = s; bw.strategy = strategy; bw.x = x.data(); bw.u = u.data(); bw.v = v.data();
    bw.saved = saved.data(); bw.dy = dy.data(); bw.scratch = scratch.data(); bw.dx = o.dx.data();
    bw.dv = o.dv.data(); bw.dbias = o.db.data(); bw.du = o.du.data();
    bw.dv_mode = bw.du_mode = mode;
    cpu::predicted_linear_backward(bw);
    return o;
  };
  EXPECT_EQ(predicted_linear_saved_floats(s, PredictedStrategy::OnTheFlyW), 0);  // nothing K×N
  for (GradientMode mode : {GradientMode::Overwrite, GradientMode::Accumulate}) {
    const Out ref = run(PredictedStrategy::Materialise, mode), out = run(PredictedStrategy::OnTheFlyW, mode);
    const double r = test::rtol_for<double>(s.k * s.rank);
    EXPECT_TRUE(all_close(out.y, ref.y, r, r * std::sqrt(double(s.k * s.rank))));
    EXPECT_TRUE(all_close(out.dx, ref.dx, r, r * std::sqrt(double(s.n * s.rank))));
    EXPECT_TRUE(all_close(out.dv, ref.dv, r, r * std::sqrt(double(s.m * s.k))));
    EXPECT_TRUE(all_close(out.du, ref.du, r, r * std::sqrt(double(s.m * s.n))));
    EXPECT_TRUE(all_close(out.db, ref.db, 0.0, 0.0));  // the same column sums
  }
}

// T and dT keep rows of t_ld floats (J·r rounded up to 4: 16-byte aligned rows, which the
// tensor-core products copy in 16-byte chunks). The chain writes the J·r real columns of each row,
// T = X·U exactly where the products agree, and never touches the padding: it stays poisoned through
// forward and backward (a product reading it would turn outputs NaN; the other tests compare those).
TEST(OpsPredictedLinear, TRowsArePaddedTo16BytesAndThePaddingIsNeverTouched) {
  for (int64_t t_cols = 1; t_cols <= 64; ++t_cols) {
    const PredictedLinearShape one{3, 5, 7, t_cols, 1};
    EXPECT_EQ(one.t_ld() % 4, 0) << t_cols;
    EXPECT_GE(one.t_ld(), t_cols);
    EXPECT_LT(one.t_ld() - t_cols, 4);
  }
  const PredictedLinearShape bench{4096, 16384, 16384, 819, 1};  // a goal shape: r = 5% of K
  EXPECT_EQ(bench.t_ld(), 820);
  EXPECT_EQ(predicted_linear_saved_floats(bench, PredictedStrategy::ChainFused), 4096 * 820);
  EXPECT_EQ(predicted_linear_backward_scratch_floats(bench, PredictedStrategy::Chain), 4096 * 820);

  std::mt19937_64 rng(test::fresh_seed());
  for (const int64_t columns : {int64_t{1}, int64_t{3}}) {
    SCOPED_TRACE("J " + std::to_string(columns));
    PredictedLinearShape s;
    s.m = 9; s.k = 11; s.rank = 5; s.columns = columns; s.n = columns * 6;  // J·r = 5 or 15: 3 or 1 pads
    const Vec x = test::random_vector<double>(s.m * s.k, rng), u = test::random_vector<double>(s.k * s.t_cols(), rng),
              v = test::random_vector<double>(s.rank * s.n, rng), dy = test::random_vector<double>(s.m * s.n, rng);
    Vec saved = test::poisoned<double>(predicted_linear_saved_floats(s, PredictedStrategy::Chain)),
        scratch = test::poisoned<double>(predicted_linear_backward_scratch_floats(s, PredictedStrategy::Chain)),
        y(s.m * s.n), dx(x.size()), dv(v.size()), du(u.size());
    ASSERT_EQ(saved.size(), static_cast<size_t>(s.m * s.t_ld()));
    PredictedLinearForwardArgsT<double> f;
    f.shape = s; f.x = x.data(); f.u = u.data(); f.v = v.data(); f.saved = saved.data(); f.y = y.data();
    cpu::predicted_linear_forward(f);
    const double tol = test::rtol_for<double>(s.k);
    for (int64_t i = 0; i < s.m; ++i) {
      for (int64_t c = 0; c < s.t_ld(); ++c) {
        const double got = saved[static_cast<size_t>(i * s.t_ld() + c)];
        if (c >= s.t_cols()) {
          EXPECT_TRUE(std::isnan(got)) << "T's padding written at row " << i << " column " << c;
          continue;
        }
        double want = 0;
        for (int64_t k = 0; k < s.k; ++k) want += x[static_cast<size_t>(i * s.k + k)] * u[static_cast<size_t>(k * s.t_cols() + c)];
        EXPECT_NEAR(got, want, tol * (1 + std::abs(want))) << "T at row " << i << " column " << c;
      }
    }
    PredictedLinearBackwardArgsT<double> bw;
    bw.shape = s; bw.x = x.data(); bw.u = u.data(); bw.v = v.data(); bw.saved = saved.data(); bw.dy = dy.data();
    bw.scratch = scratch.data(); bw.dx = dx.data(); bw.dv = dv.data(); bw.du = du.data();
    cpu::predicted_linear_backward(bw);
    for (int64_t i = 0; i < s.m; ++i) {
      for (int64_t c = s.t_cols(); c < s.t_ld(); ++c) {
        EXPECT_TRUE(std::isnan(saved[static_cast<size_t>(i * s.t_ld() + c)])) << "T's padding, row " << i;
        EXPECT_TRUE(std::isnan(scratch[static_cast<size_t>(i * s.t_ld() + c)])) << "dT's padding, row " << i;
      }
    }
    for (const Vec* out : {&y, &dx, &dv, &du}) {
      for (double e : *out) ASSERT_TRUE(std::isfinite(e));
    }
  }
}

TEST(OpsPredictedLinear, MaterialiseAndChainAgreeInFloat32) {
  std::mt19937_64 rng(test::fresh_seed());
  PredictedLinearShape s;
  s.m = 37; s.k = 101; s.rank = 13; s.columns = 3; s.n = 3 * 29;
  const auto x = test::random_vector<float>(s.m * s.k, rng), u = test::random_vector<float>(s.k * s.t_cols(), rng),
             v = test::random_vector<float>(s.rank * s.n, rng), b = test::random_vector<float>(s.n, rng),
             dy = test::random_vector<float>(s.m * s.n, rng);
  struct Out { std::vector<float> y, dx, dv, db, du; };
  auto run = [&](PredictedStrategy strategy) {
    Out o{test::poisoned<float>(s.m * s.n), test::poisoned<float>(s.m * s.k), test::poisoned<float>(v.size()),
          test::poisoned<float>(b.size()), test::poisoned<float>(u.size())};
    std::vector<float> saved(predicted_linear_saved_floats(s, strategy), NAN),
        scratch(predicted_linear_backward_scratch_floats(s, strategy), NAN);
    PredictedLinearForwardArgs f;
    f.shape = s; f.strategy = strategy; f.x = x.data(); f.u = u.data(); f.v = v.data();
    f.bias = b.data(); f.saved = saved.data(); f.y = o.y.data();
    cpu::predicted_linear_forward(f);
    PredictedLinearBackwardArgs bw;
    bw.shape = s; bw.strategy = strategy; bw.x = x.data(); bw.u = u.data(); bw.v = v.data();
    bw.saved = saved.data(); bw.dy = dy.data(); bw.scratch = scratch.data(); bw.dx = o.dx.data();
    bw.dv = o.dv.data(); bw.dbias = o.db.data(); bw.du = o.du.data();
    cpu::predicted_linear_backward(bw);
    return o;
  };
  const Out chain = run(PredictedStrategy::Chain), mat = run(PredictedStrategy::Materialise);
  // Both sum K·r products per output in different orders; scale: entries are sums of ~K·r terms
  // of size ≤ 1, typical magnitude √(K·r).
  const double rtol = test::rtol_for<float>(s.k * s.rank);
  const double atol = rtol * std::sqrt(double(s.k * s.rank));
  EXPECT_TRUE(all_close(mat.y, chain.y, rtol, atol));
  EXPECT_TRUE(all_close(mat.dx, chain.dx, rtol, rtol * std::sqrt(double(s.n * s.rank))));
  EXPECT_TRUE(all_close(mat.dv, chain.dv, rtol, rtol * std::sqrt(double(s.m * s.k))));
  EXPECT_TRUE(all_close(mat.du, chain.du, rtol, rtol * std::sqrt(double(s.m * s.n))));
  EXPECT_TRUE(all_close(mat.db, chain.db, test::rtol_for<float>(s.m), 0.0));
}

TEST(OpsPredictedLinear, AccumulateAddsToExistingGradients) {
  std::mt19937_64 rng(test::fresh_seed());
  PredictedLinearShape s;
  s.m = 4; s.k = 6; s.rank = 2; s.columns = 1; s.n = 5;
  const auto x = test::random_vector<double>(s.m * s.k, rng), u = test::random_vector<double>(s.k * s.rank, rng),
             v = test::random_vector<double>(s.rank * s.n, rng), dy = test::random_vector<double>(s.m * s.n, rng);
  Vec saved(predicted_linear_saved_floats(s, PredictedStrategy::Chain)), y(s.m * s.n),
      scratch(predicted_linear_backward_scratch_floats(s, PredictedStrategy::Chain));
  PredictedLinearForwardArgsT<double> f;
  f.shape = s; f.x = x.data(); f.u = u.data(); f.v = v.data(); f.saved = saved.data(); f.y = y.data();
  cpu::predicted_linear_forward(f);
  Vec dv_once(v.size()), dv_twice(v.size());
  PredictedLinearBackwardArgsT<double> bw;
  bw.shape = s; bw.x = x.data(); bw.u = u.data(); bw.v = v.data(); bw.saved = saved.data();
  bw.dy = dy.data(); bw.scratch = scratch.data(); bw.dv = dv_once.data();
  cpu::predicted_linear_backward(bw);
  bw.dv = dv_twice.data();
  cpu::predicted_linear_backward(bw);
  bw.dv_mode = GradientMode::Accumulate;
  cpu::predicted_linear_backward(bw);
  for (size_t i = 0; i < v.size(); ++i) EXPECT_NEAR(dv_twice[i], 2 * dv_once[i], 1e-12);
}

TEST(OpsDense, MatchesFiniteDifferencesInFloat64) {
  std::mt19937_64 rng(test::fresh_seed());
  const int64_t m = 3, k = 7, n = 5;
  Vec x = test::random_vector<double>(m * k, rng), w = test::random_vector<double>(k * n, rng),
      b = test::random_vector<double>(n, rng), g = test::random_vector<double>(m * n, rng), y(m * n);
  auto loss = [&] {
    cpu::dense_forward(x.data(), w.data(), b.data(), y.data(), m, k, n);
    return dot(g, y);
  };
  Vec dx = test::poisoned<double>(x.size()), dw = test::poisoned<double>(w.size()), db = test::poisoned<double>(n);
  cpu::dense_backward(x.data(), w.data(), g.data(), dx.data(), dw.data(), db.data(), m, k, n,
                      GradientMode::Overwrite, GradientMode::Overwrite);
  check_gradient("dX", x, dx, loss);
  check_gradient("dW", w, dw, loss);
  check_gradient("db", b, db, loss);
}

TEST(OpsTiedDecoder, MatchesFiniteDifferencesInFloat64) {
  std::mt19937_64 rng(test::fresh_seed());
  PredictedLinearShape s;  // encoder shape: K inputs, N outputs; the decoder maps N → K
  s.m = 4; s.k = 7; s.rank = 3; s.columns = 2; s.n = 2 * 5;
  Vec h = test::random_vector<double>(s.m * s.n, rng), u = test::random_vector<double>(s.k * s.t_cols(), rng),
      v = test::random_vector<double>(s.rank * s.n, rng), c = test::random_vector<double>(s.k, rng),
      g = test::random_vector<double>(s.m * s.k, rng), saved(s.m * s.t_cols()), z(s.m * s.k);
  auto loss = [&] {
    cpu::tied_decoder_forward(s, h.data(), u.data(), v.data(), c.data(), saved.data(), z.data());
    return dot(g, z);
  };
  loss();
  Vec dh = test::poisoned<double>(h.size()), dv = test::poisoned<double>(v.size()),
      dc = test::poisoned<double>(c.size()), du = test::poisoned<double>(u.size()), scratch(s.m * s.t_cols());
  cpu::tied_decoder_backward(s, h.data(), u.data(), v.data(), saved.data(), g.data(), scratch.data(),
                             dh.data(), dv.data(), dc.data(), du.data(), GradientMode::Overwrite,
                             GradientMode::Overwrite, GradientMode::Overwrite);
  check_gradient("dH", h, dh, loss);
  check_gradient("dV", v, dv, loss);
  check_gradient("dc", c, dc, loss);
  check_gradient("dU", u, du, loss);
}

TEST(OpsTiedDenseDecoder, MatchesFiniteDifferencesInFloat64) {
  std::mt19937_64 rng(test::fresh_seed());
  const int64_t m = 4, k = 9, n = 5;  // encoder K → N; the decoder maps N → K
  Vec h = test::random_vector<double>(m * n, rng), w = test::random_vector<double>(k * n, rng),
      c = test::random_vector<double>(k, rng), g = test::random_vector<double>(m * k, rng), z(m * k);
  auto loss = [&] {
    cpu::tied_dense_decoder_forward(h.data(), w.data(), c.data(), z.data(), m, k, n);
    return dot(g, z);
  };
  Vec dh = test::poisoned<double>(h.size()), dw = test::poisoned<double>(w.size()),
      dc = test::poisoned<double>(c.size());
  cpu::tied_dense_decoder_backward(h.data(), w.data(), g.data(), dh.data(), dw.data(), dc.data(), m, k, n,
                                   GradientMode::Overwrite, GradientMode::Overwrite);
  check_gradient("dH", h, dh, loss);
  check_gradient("dW", w, dw, loss);
  check_gradient("dc", c, dc, loss);
  // Accumulate adds this op's dW to what the encoder wrote.
  Vec dw_twice = dw;
  cpu::tied_dense_decoder_backward<double>(h.data(), w.data(), g.data(), nullptr, dw_twice.data(), nullptr, m, k, n,
                                   GradientMode::Accumulate, GradientMode::Overwrite);
  for (size_t i = 0; i < dw.size(); ++i) EXPECT_NEAR(dw_twice[i], 2 * dw[i], 1e-12);
}

class ActivationGradient : public ::testing::TestWithParam<Activation> {};

TEST_P(ActivationGradient, MatchesFiniteDifferencesInFloat64) {
  const Activation act = GetParam();
  std::mt19937_64 rng(test::fresh_seed());
  const int64_t n = 23;
  Vec x = test::random_vector<double>(n, rng, -3, 3), g = test::random_vector<double>(n, rng), y(n);
  for (double& xi : x)
    if (std::fabs(xi) < 1e-3) xi = 0.5;  // ReLU has no derivative at 0
  auto loss = [&] {
    cpu::activation_forward(act, x.data(), y.data(), n);
    return dot(g, y);
  };
  loss();
  Vec dx = test::poisoned<double>(n);
  cpu::activation_backward(act, y.data(), g.data(), dx.data(), n);
  check_gradient(activation_name(act), x, dx, loss, 1e-5);
}

INSTANTIATE_TEST_SUITE_P(OpsActivations, ActivationGradient,
                         ::testing::Values(Activation::Identity, Activation::Sigmoid,
                                           Activation::Tanh, Activation::ReLU));

// ReLU with a bit mask for backward (what ActivationOp keeps in place of its output) against the
// Activation path: outputs and input gradients bit for bit, and the mask's bits, at sizes off the
// 32-bit words and the 64-element thread chunks, and one past the parallel threshold. Zeros, −0
// and NaN included (NaN > 0 is false: the unit is off, as in the output-based backward).
TEST(OpsActivations, ReluMaskMatchesTheOutputPathBitForBit) {
  std::mt19937_64 rng(test::fresh_seed());
  for (int64_t n : {int64_t{1}, int64_t{31}, int64_t{32}, int64_t{33}, int64_t{64 * 3 + 5}, (int64_t{1} << 17) + 37}) {
    std::vector<float> x = test::random_vector<float>(n, rng), dy = test::random_vector<float>(n, rng);
    x[0] = 0.f;
    if (n > 2) x[1] = -0.f, x[2] = std::nanf("");
    std::vector<float> y_ref(n), dx_ref(n);
    cpu::activation_forward(Activation::ReLU, x.data(), y_ref.data(), n);
    cpu::activation_backward(Activation::ReLU, y_ref.data(), dy.data(), dx_ref.data(), n);
    std::vector<float> y = test::poisoned<float>(n), dx = test::poisoned<float>(n);
    std::vector<uint32_t> mask((n + 31) / 32, 0xA5A5A5A5u);
    cpu::relu_forward_mask(x.data(), y.data(), mask.data(), n);
    cpu::relu_backward_mask(mask.data(), dy.data(), dx.data(), n);
    EXPECT_EQ(0, std::memcmp(y.data(), y_ref.data(), n * sizeof(float))) << n;
    EXPECT_EQ(0, std::memcmp(dx.data(), dx_ref.data(), n * sizeof(float))) << n;
    for (int64_t i = 0; i < static_cast<int64_t>(mask.size()) * 32; ++i)
      ASSERT_EQ((mask[i / 32] >> (i % 32)) & 1u, i < n && x[i] > 0.f ? 1u : 0u) << "n " << n << ", bit " << i;
  }
}

TEST(OpsActivations, SigmoidIsStableForLargeInputs) {
  const std::vector<float> x = {-1000.f, -80.f, 0.f, 80.f, 1000.f};
  std::vector<float> y(x.size());
  cpu::activation_forward(Activation::Sigmoid, x.data(), y.data(), 5);
  EXPECT_GE(y[0], 0.f);
  EXPECT_LT(y[0], 1e-37f);  // the vectorised exp clamps its argument at 88: σ(−1000) ≈ 6e-39
  EXPECT_FLOAT_EQ(y[2], 0.5f);
  EXPECT_EQ(y[4], 1.f);
  for (float v : y) EXPECT_TRUE(std::isfinite(v));
}

// The float sigmoid runs a vectorised polynomial exp (kernels/cpu/elementwise.cpp). Against σ in
// float64: relative error ≤ 5e-7 (about 4 float ulps) wherever σ(x) ≥ 1e-30, absolute 1e-37 below;
// NaN stays NaN (the trainer's divergence check relies on it), ±∞ give 1 and ~0.
TEST(OpsActivations, VectorisedSigmoidMatchesFloat64) {
  std::mt19937_64 rng(test::fresh_seed());
  std::vector<float> x;
  for (float v = -100.f; v <= 100.f; v += 0.01f) x.push_back(v);
  std::uniform_real_distribution<float> wide(-120.f, 120.f);
  for (int i = 0; i < 100000; ++i) x.push_back(wide(rng));
  x.push_back(0.f);
  x.push_back(-0.f);
  std::vector<float> y(x.size());
  cpu::activation_forward(Activation::Sigmoid, x.data(), y.data(), static_cast<int64_t>(x.size()));
  double worst = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    const double exact = 1.0 / (1.0 + std::exp(-static_cast<double>(x[i])));
    ASSERT_EQ(y[i], cpu::sigmoid_f32(x[i])) << "the one-element path differs at x = " << x[i];
    if (exact >= 1e-30) {
      const double rel = std::fabs(y[i] - exact) / exact;
      worst = std::max(worst, rel);
      ASSERT_LE(rel, 5e-7) << "x = " << x[i] << ": " << y[i] << " vs " << exact;
    } else {
      ASSERT_LE(std::fabs(y[i] - exact), 1e-37) << "x = " << x[i];
    }
  }
  RecordProperty("worst_relative_error", std::to_string(worst));
  EXPECT_TRUE(std::isnan(cpu::sigmoid_f32(std::nanf(""))));
  EXPECT_EQ(cpu::sigmoid_f32(INFINITY), 1.f);
  EXPECT_LT(cpu::sigmoid_f32(-INFINITY), 1e-37f);
}

TEST(OpsLosses, SoftmaxCrossEntropyMatchesFiniteDifferencesInFloat64) {
  std::mt19937_64 rng(test::fresh_seed());
  const int64_t m = 4, c = 7;
  Vec logits = test::random_vector<double>(m * c, rng, -4, 4), d(m * c);
  const std::vector<int32_t> labels = {0, 6, 3, 3};
  auto loss = [&] { return cpu::softmax_cross_entropy(logits.data(), labels.data(), m, c, d.data(), nullptr) / m; };
  loss();
  const Vec analytic = d;
  check_gradient("dlogits", logits, analytic, loss, 1e-5);
}

TEST(OpsLosses, SoftmaxCrossEntropyValuesAndCounts) {
  // Uniform logits: loss log(C) per row; huge logits must not overflow.
  const std::vector<float> logits = {0, 0, 0, 0, 1000, 0, 0, 0};
  const std::vector<int32_t> labels = {2, 0};
  std::vector<float> d(8);
  int64_t correct = -1;
  const double loss = cpu::softmax_cross_entropy(logits.data(), labels.data(), 2, 4, d.data(), &correct);
  EXPECT_NEAR(loss, std::log(4.0), 1e-6);
  EXPECT_EQ(correct, 1);  // row 0 ties resolve to class 0 ≠ 2; row 1 is right
}

TEST(OpsLosses, MeanSquaredErrorMatchesFiniteDifferencesInFloat64) {
  std::mt19937_64 rng(test::fresh_seed());
  const int64_t m = 3, n = 5;
  Vec y = test::random_vector<double>(m * n, rng), t = test::random_vector<double>(m * n, rng), d(m * n);
  auto loss = [&] { return cpu::mean_squared_error(y.data(), t.data(), m, n, d.data()) / m; };
  loss();
  const Vec analytic = d;
  check_gradient("dy", y, analytic, loss);
}

TEST(OpsOptimizer, SgdMomentumAndWeightDecay) {
  std::vector<float> p = {1.f, -2.f}, g = {0.5f, 0.25f}, m = {0.1f, 0.f};
  cpu::sgd_step(p.data(), g.data(), m.data(), 2, 0.1f, 0.9f, 0.01f, 2);
  // m = 0.9·m − 0.1·(g + 0.01·p);  p += m
  EXPECT_FLOAT_EQ(m[0], 0.9f * 0.1f - 0.1f * (0.5f + 0.01f));
  EXPECT_FLOAT_EQ(p[0], 1.f + m[0]);
  EXPECT_FLOAT_EQ(m[1], -0.1f * (0.25f - 0.02f));
}

TEST(OpsOptimizer, MaxColumnNormRescalesOnlyLongColumns) {
  // Two 2×2 matrices; column norms: 5, 0.5 | 1, 10.
  std::vector<float> v = {3, 0.3f, 4, 0.4f, 1, 6, 0, 8};
  cpu::max_column_norm(v.data(), 2, 2, 2, 2.f);
  EXPECT_FLOAT_EQ(v[0], 3 * 0.4f);
  EXPECT_FLOAT_EQ(v[2], 4 * 0.4f);
  EXPECT_FLOAT_EQ(v[1], 0.3f);
  EXPECT_FLOAT_EQ(v[4], 1.f);
  EXPECT_FLOAT_EQ(v[5], 6 * 0.2f);
  EXPECT_FLOAT_EQ(v[7], 8 * 0.2f);
}

TEST(OpsPhilox, MatchesRandom123KnownAnswers) {
  // Known-answer vectors of Philox4x32-10 from the Random123 distribution (kat_vectors).
  const Philox4x32 zero = philox4x32(0, 0, 0);
  EXPECT_EQ(zero.v[0], 0x6627e8d5u);
  EXPECT_EQ(zero.v[1], 0xe169c58du);
  EXPECT_EQ(zero.v[2], 0xbc57ac4cu);
  EXPECT_EQ(zero.v[3], 0x9b00dbd8u);
  const Philox4x32 ones = philox4x32(~0ull, ~0ull, ~0ull);
  EXPECT_EQ(ones.v[0], 0x408f276du);
  EXPECT_EQ(ones.v[3], 0x6d5451fdu);
  const Philox4x32 pi = philox4x32(0x299f31d0a4093822ull, 0x0370734413198a2eull, 0x85a308d3243f6a88ull);
  EXPECT_EQ(pi.v[0], 0xd16cfe09u);
  EXPECT_EQ(pi.v[1], 0x94fdccebu);
  EXPECT_EQ(pi.v[2], 0x5001e420u);
  EXPECT_EQ(pi.v[3], 0x24126ea1u);
}

TEST(OpsPhilox, UniformInitIsReproducibleAndInRange) {
  std::vector<float> a(1001), b(1001);
  cpu::uniform_init(a.data(), 1001, -0.1f, 0.1f, 42, rng_stream(RngStream::kInit, 3));
  cpu::uniform_init(b.data(), 1001, -0.1f, 0.1f, 42, rng_stream(RngStream::kInit, 3));
  EXPECT_EQ(a, b);
  double mean = 0;
  for (float x : a) {
    EXPECT_GE(x, -0.1f);
    EXPECT_LT(x, 0.1f);
    mean += x;
  }
  EXPECT_NEAR(mean / 1001, 0.0, 0.01);
  cpu::uniform_init(b.data(), 1001, -0.1f, 0.1f, 42, rng_stream(RngStream::kInit, 4));
  EXPECT_NE(a, b);
}

}  // namespace
}  // namespace uv
