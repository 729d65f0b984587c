#include "kernels/cpu/conv2d.h"

#include <algorithm>
#include <cstring>

#include "engine/core/error.h"
#include "kernels/conv2d_algorithm.h"
#include "kernels/cpu/cpu_ops.h"

namespace uv {

Conv2dShape make_conv2d_shape(int64_t batch, int64_t in_h, int64_t in_w, int64_t in_c, int64_t out_c,
                              int64_t kernel, int64_t stride, int64_t pad) {
  Conv2dShape s;
  s.batch = batch;
  s.in_h = in_h;
  s.in_w = in_w;
  s.in_c = in_c;
  s.out_c = out_c;
  s.kernel = kernel;
  s.stride = stride;
  UV_REQUIRE(kernel >= 1 && stride >= 1 && in_c >= 1 && out_c >= 1,
             "conv: kernel, stride and channels must be ≥ 1 (kernel " << kernel << ", stride " << stride
                                                                      << ", channels " << in_c << "→" << out_c << ")");
  int64_t pad_h_total, pad_w_total;
  if (pad < 0) {  // "same"
    UV_REQUIRE(stride == 1, "conv: padding \"same\" needs stride 1, got stride " << stride);
    pad_h_total = pad_w_total = kernel - 1;
    s.pad_top = s.pad_left = (kernel - 1) / 2;
  } else {
    pad_h_total = pad_w_total = 2 * pad;
    s.pad_top = s.pad_left = pad;
  }
  UV_REQUIRE(in_h + pad_h_total >= kernel && in_w + pad_w_total >= kernel,
             "conv: a " << kernel << "x" << kernel << " filter does not fit the " << in_h << "x" << in_w
                        << " input with padding " << pad);
  s.out_h = (in_h + pad_h_total - kernel) / stride + 1;
  s.out_w = (in_w + pad_w_total - kernel) / stride + 1;
  return s;
}

Pool2dShape make_pool2d_shape(int64_t batch, int64_t in_h, int64_t in_w, int64_t channels, int64_t size,
                              int64_t stride) {
  UV_REQUIRE(size >= 1 && stride >= 1, "maxpool: size and stride must be ≥ 1, got " << size << ", " << stride);
  UV_REQUIRE(in_h >= size && in_w >= size,
             "maxpool: a " << size << "x" << size << " window does not fit the " << in_h << "x" << in_w << " input");
  Pool2dShape s;
  s.batch = batch;
  s.in_h = in_h;
  s.in_w = in_w;
  s.channels = channels;
  s.size = size;
  s.stride = stride;
  s.out_h = (in_h - size) / stride + 1;
  s.out_w = (in_w - size) / stride + 1;
  return s;
}

namespace cpu {

// Per output pixel and filter row, the filter's p columns × C channels are one contiguous run of
// the NHWC input (clipped at the left/right edges), so each is one copy instead of p·C lookups.
template <typename Scalar, typename RunFn>
void for_each_filter_row_run(const Conv2dShape& s, RunFn&& run) {
  const int64_t c = s.in_c, p = s.kernel, patch = s.patch();
  int64_t row = 0;
  for (int64_t b = 0; b < s.batch; ++b)
    for (int64_t oy = 0; oy < s.out_h; ++oy)
      for (int64_t ox = 0; ox < s.out_w; ++ox, ++row) {
        const int64_t ix0 = ox * s.stride - s.pad_left;
        const int64_t kx_begin = ix0 < 0 ? -ix0 : 0, kx_end = ix0 + p > s.in_w ? s.in_w - ix0 : p;
        for (int64_t ky = 0; ky < p; ++ky) {
          const int64_t iy = oy * s.stride - s.pad_top + ky;
          const int64_t col = ky * p * c;  // first im2col column of this filter row
          const bool inside = iy >= 0 && iy < s.in_h && kx_begin < kx_end;
          // (cols offset, input offset or −1, floats before the run, floats in it, floats after)
          run(row * patch + col, inside ? ((b * s.in_h + iy) * s.in_w + ix0 + kx_begin) * c : int64_t{-1},
              (inside ? kx_begin : p) * c, inside ? (kx_end - kx_begin) * c : 0, inside ? (p - kx_end) * c : 0);
        }
      }
}

template <typename Scalar>
void im2col(const Conv2dShape& s, const Scalar* x, Scalar* cols) {
  for_each_filter_row_run<Scalar>(s, [&](int64_t at, int64_t in, int64_t before, int64_t count, int64_t after) {
    Scalar* out = cols + at;
    std::fill(out, out + before, Scalar(0));
    if (count > 0) std::memcpy(out + before, x + in, sizeof(Scalar) * static_cast<size_t>(count));
    std::fill(out + before + count, out + before + count + after, Scalar(0));
  });
}

template <typename Scalar>
void col2im(const Conv2dShape& s, const Scalar* dcols, Scalar* dx) {
  std::fill(dx, dx + s.batch * s.in_features(), Scalar(0));
  // Rows in ascending order, as the CUDA kernel sums an input's windows: identical results.
  for_each_filter_row_run<Scalar>(s, [&](int64_t at, int64_t in, int64_t before, int64_t count, int64_t) {
    const Scalar* g = dcols + at + before;
    Scalar* out = dx + in;
    for (int64_t i = 0; i < count; ++i) out[i] += g[i];
  });
}

template <typename Scalar>
void conv2d_forward(const Conv2dForwardArgsT<Scalar>& args) {
  CpuOps<Scalar> ops;
  algorithm::conv2d_forward(ops, args);
}

template <typename Scalar>
void conv2d_backward(const Conv2dBackwardArgsT<Scalar>& args) {
  CpuOps<Scalar> ops;
  algorithm::conv2d_backward(ops, args);
}

template <typename Scalar>
void maxpool2d_forward(const Pool2dShape& s, const Scalar* x, Scalar* y) {
  for (int64_t b = 0; b < s.batch; ++b)
    for (int64_t oy = 0; oy < s.out_h; ++oy)
      for (int64_t ox = 0; ox < s.out_w; ++ox)
        for (int64_t c = 0; c < s.channels; ++c)
          y[((b * s.out_h + oy) * s.out_w + ox) * s.channels + c] = x[maxpool2d_argmax(s, x, b, oy, ox, c)];
}

template <typename Scalar>
void maxpool2d_backward(const Pool2dShape& s, const Scalar* x, const Scalar* dy, Scalar* dx) {
  std::fill(dx, dx + s.batch * s.in_features(), Scalar(0));
  // Windows in ascending output order, as the CUDA kernel sums them: identical results.
  for (int64_t b = 0; b < s.batch; ++b)
    for (int64_t oy = 0; oy < s.out_h; ++oy)
      for (int64_t ox = 0; ox < s.out_w; ++ox)
        for (int64_t c = 0; c < s.channels; ++c)
          dx[maxpool2d_argmax(s, x, b, oy, ox, c)] += dy[((b * s.out_h + oy) * s.out_w + ox) * s.channels + c];
}

#define UV_INSTANTIATE(Scalar)                                                                  \
  template void im2col<Scalar>(const Conv2dShape&, const Scalar*, Scalar*);                     \
  template void col2im<Scalar>(const Conv2dShape&, const Scalar*, Scalar*);                     \
  template void conv2d_forward<Scalar>(const Conv2dForwardArgsT<Scalar>&);                      \
  template void conv2d_backward<Scalar>(const Conv2dBackwardArgsT<Scalar>&);                    \
  template void maxpool2d_forward<Scalar>(const Pool2dShape&, const Scalar*, Scalar*);          \
  template void maxpool2d_backward<Scalar>(const Pool2dShape&, const Scalar*, const Scalar*, Scalar*);
UV_INSTANTIATE(float)
UV_INSTANTIATE(double)
#undef UV_INSTANTIATE

}  // namespace cpu
}  // namespace uv
