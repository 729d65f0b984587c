// Marks functions that host code and CUDA kernels share (index and tile arithmetic, Philox), so
// CPU tests cover what the kernels compute.
#pragma once

#if defined(__CUDACC__)
#define UV_HOST_DEVICE __host__ __device__
#else
#define UV_HOST_DEVICE
#endif
