// CUDA im2col / col2im / max-pooling / filter-bank transpose kernels, then their launchers.
#include "kernels/cuda/conv2d.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/elementwise.h"
#include "kernels/cudnn_conv_shape.h"

namespace uv::cuda {

#define UV_GRID_STRIDE(i, n) \
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < (n); i += int64_t{gridDim.x} * blockDim.x)

// One thread per im2col element; consecutive threads walk a row's channels, so reads of the NHWC
// input and writes of cols both coalesce.
__global__ void im2col_kernel(Conv2dShape s, const float* x, float* cols) {
  const int64_t patch = s.patch();
  UV_GRID_STRIDE(i, s.rows() * patch) {
    const int64_t at = conv2d_input_offset(s, i / patch, i % patch);
    cols[i] = at < 0 ? 0.f : x[at];
  }
}

// One thread per input element: sums the im2col entries that read it, windows in ascending
// (oy, ox) order as the CPU's row loop adds them.
__global__ void col2im_kernel(Conv2dShape s, const float* dcols, float* dx) {
  UV_GRID_STRIDE(i, s.batch * s.in_features()) {
    const int64_t c = i % s.in_c, ix = (i / s.in_c) % s.in_w, iy = (i / (s.in_c * s.in_w)) % s.in_h,
                  b = i / s.in_features();
    const int64_t oy0 = conv2d_first_window(iy, s.pad_top, s.kernel, s.stride),
                  oy1 = conv2d_last_window(iy, s.pad_top, s.stride, s.out_h),
                  ox0 = conv2d_first_window(ix, s.pad_left, s.kernel, s.stride),
                  ox1 = conv2d_last_window(ix, s.pad_left, s.stride, s.out_w);
    float sum = 0.f;
    for (int64_t oy = oy0; oy <= oy1; ++oy)
      for (int64_t ox = ox0; ox <= ox1; ++ox) {
        const int64_t ky = iy + s.pad_top - oy * s.stride, kx = ix + s.pad_left - ox * s.stride;
        const int64_t row = (b * s.out_h + oy) * s.out_w + ox;
        sum += dcols[row * s.patch() + (ky * s.kernel + kx) * s.in_c + c];
      }
    dx[i] = sum;
  }
}

__global__ void maxpool2d_forward_kernel(Pool2dShape s, const float* x, float* y) {
  UV_GRID_STRIDE(i, s.batch * s.out_features()) {
    const int64_t c = i % s.channels, ox = (i / s.channels) % s.out_w, oy = (i / (s.channels * s.out_w)) % s.out_h,
                  b = i / s.out_features();
    y[i] = x[maxpool2d_argmax(s, x, b, oy, ox, c)];
  }
}

// One thread per input element: adds dy of every window whose first maximum it is.
__global__ void maxpool2d_backward_kernel(Pool2dShape s, const float* x, const float* dy, float* dx) {
  UV_GRID_STRIDE(i, s.batch * s.in_features()) {
    const int64_t c = i % s.channels, ix = (i / s.channels) % s.in_w, iy = (i / (s.channels * s.in_w)) % s.in_h,
                  b = i / s.in_features();
    const int64_t oy0 = conv2d_first_window(iy, 0, s.size, s.stride), oy1 = conv2d_last_window(iy, 0, s.stride, s.out_h),
                  ox0 = conv2d_first_window(ix, 0, s.size, s.stride), ox1 = conv2d_last_window(ix, 0, s.stride, s.out_w);
    float sum = 0.f;
    for (int64_t oy = oy0; oy <= oy1; ++oy)
      for (int64_t ox = ox0; ox <= ox1; ++ox)
        if (maxpool2d_argmax(s, x, b, oy, ox, c) == i) sum += dy[((b * s.out_h + oy) * s.out_w + ox) * s.channels + c];
    dx[i] = sum;
  }
}

// One thread per output element: consecutive threads write consecutive outputs (coalesced) and
// read a column of `a` (strided); filter banks are small next to the activations.
__global__ void transpose_kernel(const float* a, int64_t rows, int64_t cols, float* out, bool accumulate) {
  UV_GRID_STRIDE(i, rows * cols) {
    const float value = a[transpose_source(i, rows, cols)];
    out[i] = accumulate ? out[i] + value : value;
  }
}

void im2col(const Conv2dShape& s, const float* x, float* cols, cudaStream_t stream) {
  im2col_kernel<<<blocks_for(s.rows() * s.patch()), kThreadsPerBlock, 0, stream>>>(s, x, cols);
  CUDA_CHECK(cudaGetLastError());
}
void col2im(const Conv2dShape& s, const float* dcols, float* dx, cudaStream_t stream) {
  col2im_kernel<<<blocks_for(s.batch * s.in_features()), kThreadsPerBlock, 0, stream>>>(s, dcols, dx);
  CUDA_CHECK(cudaGetLastError());
}
void maxpool2d_forward(const Pool2dShape& s, const float* x, float* y, cudaStream_t stream) {
  maxpool2d_forward_kernel<<<blocks_for(s.batch * s.out_features()), kThreadsPerBlock, 0, stream>>>(s, x, y);
  CUDA_CHECK(cudaGetLastError());
}
void maxpool2d_backward(const Pool2dShape& s, const float* x, const float* dy, float* dx, cudaStream_t stream) {
  maxpool2d_backward_kernel<<<blocks_for(s.batch * s.in_features()), kThreadsPerBlock, 0, stream>>>(s, x, dy, dx);
  CUDA_CHECK(cudaGetLastError());
}
void transpose(const float* a, int64_t rows, int64_t cols, float* out, GradientMode mode, cudaStream_t stream) {
  transpose_kernel<<<blocks_for(rows * cols), kThreadsPerBlock, 0, stream>>>(a, rows, cols, out,
                                                                             mode == GradientMode::Accumulate);
  CUDA_CHECK(cudaGetLastError());
}

}  // namespace uv::cuda
