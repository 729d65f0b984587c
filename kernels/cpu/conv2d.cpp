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

template <typename Scalar>
void im2col(const Conv2dShape& s, const Scalar* x, Scalar* cols) {
  const int64_t patch = s.patch(), c = s.in_c;
  for (int64_t row = 0; row < s.rows(); ++row) {
    Scalar* out = cols + row * patch;
    // One filter row-col position reads C contiguous channels (NHWC), or padding.
    for (int64_t col = 0; col < patch; col += c) {
      const int64_t at = conv2d_input_offset(s, row, col);
      if (at < 0)
        std::fill(out + col, out + col + c, Scalar(0));
      else
        std::memcpy(out + col, x + at, sizeof(Scalar) * static_cast<size_t>(c));
    }
  }
}

template <typename Scalar>
void col2im(const Conv2dShape& s, const Scalar* dcols, Scalar* dx) {
  std::fill(dx, dx + s.batch * s.in_features(), Scalar(0));
  const int64_t patch = s.patch(), c = s.in_c;
  for (int64_t row = 0; row < s.rows(); ++row) {
    const Scalar* in = dcols + row * patch;
    for (int64_t col = 0; col < patch; col += c) {
      const int64_t at = conv2d_input_offset(s, row, col);
      if (at < 0) continue;
      for (int64_t ch = 0; ch < c; ++ch) dx[at + ch] += in[col + ch];
    }
  }
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
