// Shared test helpers: fresh random inputs, poisoning, and the one tolerance rule of the suite.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "kernels/predicted_linear_args.h"

namespace uv::test {

// A seed that differs on every run (fresh inputs) but is printed, so a failure can be replayed
// with UV_TEST_SEED=<seed>.
inline uint64_t fresh_seed() {
  static const uint64_t seed = [] {
    if (const char* env = std::getenv("UV_TEST_SEED")) return static_cast<uint64_t>(std::stoull(env));
    return static_cast<uint64_t>(std::random_device{}()) << 32 | std::random_device{}();
  }();
  static bool printed = false;
  if (!printed) {
    printed = true;
    std::printf("[uv] random inputs from UV_TEST_SEED=%llu\n", static_cast<unsigned long long>(seed));
  }
  return seed;
}

template <typename Scalar>
std::vector<Scalar> random_vector(size_t n, std::mt19937_64& rng, double lo = -1.0, double hi = 1.0) {
  std::uniform_real_distribution<double> dist(lo, hi);
  std::vector<Scalar> v(n);
  for (Scalar& x : v) x = static_cast<Scalar>(dist(rng));
  return v;
}

template <typename Scalar>
std::vector<Scalar> poisoned(size_t n) {
  return std::vector<Scalar>(n, std::numeric_limits<Scalar>::quiet_NaN());
}

// The tolerance rule, written once: |out − ref| ≤ atol + rtol·|ref| with
// rtol = 4·ε(dtype)·√(reduction length) (rounding errors of a length-L sum grow like √L) and
// atol = rtol·scale, where scale is the typical magnitude of the reference (so entries that
// cancel to ~0 are judged against the size of what was summed, not against themselves).
template <typename Scalar>
double rtol_for(int64_t reduction_length) {
  return 4.0 * std::numeric_limits<Scalar>::epsilon() * std::sqrt(static_cast<double>(reduction_length));
}

template <typename A, typename B>
::testing::AssertionResult all_close(const std::vector<A>& out, const std::vector<B>& ref,
                                     double rtol, double atol) {
  if (out.size() != ref.size())
    return ::testing::AssertionFailure() << "sizes differ: " << out.size() << " vs " << ref.size();
  double norm = 0;
  for (size_t i = 0; i < out.size(); ++i) {
    const double o = static_cast<double>(out[i]), r = static_cast<double>(ref[i]);
    if (!std::isfinite(o))
      return ::testing::AssertionFailure() << "element " << i << " is " << o << " (unwritten?)";
    if (std::fabs(o - r) > atol + rtol * std::fabs(r))
      return ::testing::AssertionFailure() << "element " << i << ": " << o << " vs reference " << r
                                           << " (rtol " << rtol << ", atol " << atol << ")";
    norm += o * o;
  }
  if (!out.empty() && norm == 0.0)
    return ::testing::AssertionFailure() << "output is all zeros: the test would prove nothing";
  return ::testing::AssertionSuccess();
}

// A fresh empty directory per test under the system temp dir, removed afterwards; the random part
// keeps parallel ctest processes (and repeated runs) apart.
class TempDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const ::testing::TestInfo* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = std::filesystem::temp_directory_path() /
           (std::string("uvtrain_") + info->test_suite_name() + "_" + info->name() + "_" +
            std::to_string(std::random_device{}()));
    std::filesystem::remove_all(dir_);
    ASSERT_TRUE(std::filesystem::create_directories(dir_)) << dir_;
  }
  void TearDown() override {
    std::error_code ignored;  // a failed cleanup must not hide the test's own result
    std::filesystem::remove_all(dir_, ignored);
  }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  std::filesystem::path dir_;
};

// One case of the predicted-layer tests: strategy, columns J, and whether U is learned (LowRank).
struct PredictedCase {
  PredictedStrategy strategy;
  int64_t columns;
  bool learn_u;
};

// Readable test names and parameter printing: chain_J3_learnU instead of a byte dump.
inline std::string predicted_case_string(const PredictedCase& c) {
  return std::string(predicted_strategy_name(c.strategy)) + "_J" + std::to_string(c.columns) +
         (c.learn_u ? "_learnU" : "");
}
inline std::string predicted_case_name(const ::testing::TestParamInfo<PredictedCase>& info) {
  return predicted_case_string(info.param);
}
inline void PrintTo(const PredictedCase& c, std::ostream* out) { *out << predicted_case_string(c); }

inline double max_abs(const std::vector<double>& v) {
  double m = 0;
  for (double x : v) m = std::max(m, std::fabs(x));
  return m;
}

}  // namespace uv::test
