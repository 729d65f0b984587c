// CPU convolution and max-pooling (NHWC; kernels/conv2d_args.h). Instantiated for float (training)
// and double (finite-difference checks).
#pragma once

#include "kernels/conv2d_args.h"

namespace uv::cpu {

template <typename Scalar>
void im2col(const Conv2dShape& s, const Scalar* x, Scalar* cols);  // cols (rows, patch)
template <typename Scalar>
void col2im(const Conv2dShape& s, const Scalar* dcols, Scalar* dx);  // dx overwritten: Σ overlaps

template <typename Scalar>
void conv2d_forward(const Conv2dForwardArgsT<Scalar>& args);
template <typename Scalar>
void conv2d_backward(const Conv2dBackwardArgsT<Scalar>& args);

template <typename Scalar>
void maxpool2d_forward(const Pool2dShape& s, const Scalar* x, Scalar* y);
// dx (overwritten) receives each dy at its window's argmax (first among equals).
template <typename Scalar>
void maxpool2d_backward(const Pool2dShape& s, const Scalar* x, const Scalar* dy, Scalar* dx);

}  // namespace uv::cpu
