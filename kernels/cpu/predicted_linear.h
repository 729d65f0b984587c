// CPU predicted-linear layer: forward and backward for every strategy (chain_fused runs the chain,
// onthefly_w materialise's products a panel of W rows at a time).
// Instantiated for float (training) and double (finite-difference checks).
#pragma once

#include "kernels/predicted_linear_args.h"

namespace uv::cpu {

template <typename Scalar>
void predicted_linear_forward(const PredictedLinearForwardArgsT<Scalar>& args);

template <typename Scalar>
void predicted_linear_backward(const PredictedLinearBackwardArgsT<Scalar>& args);

// Dense layer Y(M×N) = X(M×K)·W(K×N) + b and its backward; dx may be null.
template <typename Scalar>
void dense_forward(const Scalar* x, const Scalar* w, const Scalar* bias, Scalar* y, int64_t m,
                   int64_t k, int64_t n);
template <typename Scalar>
void dense_backward(const Scalar* x, const Scalar* w, const Scalar* dy, Scalar* dx, Scalar* dw,
                    Scalar* dbias, int64_t m, int64_t k, int64_t n, GradientMode dw_mode,
                    GradientMode dbias_mode);

// Tied decoder of a dense encoder (W: K×N): Z(M×K) = H(M×N)·Wᵀ + c and its backward; dh may be null.
template <typename Scalar>
void tied_dense_decoder_forward(const Scalar* h, const Scalar* w, const Scalar* bias, Scalar* z,
                                int64_t m, int64_t k, int64_t n);
template <typename Scalar>
void tied_dense_decoder_backward(const Scalar* h, const Scalar* w, const Scalar* dz, Scalar* dh,
                                 Scalar* dw, Scalar* dbias, int64_t m, int64_t k, int64_t n,
                                 GradientMode dw_mode, GradientMode dbias_mode);

// Tied decoder of a predicted encoder (autoencoder pretraining): Z(M×K) = H(M×N)·Wᵀ + c with
// W = U·V. Uses S = H·Vᵀ blockwise (M×J·r) so W is never formed; `scratch` holds S then dS.
template <typename Scalar>
void tied_decoder_forward(const PredictedLinearShape& s, const Scalar* h, const Scalar* u,
                          const Scalar* v, const Scalar* bias, Scalar* s_saved, Scalar* z);
template <typename Scalar>
void tied_decoder_backward(const PredictedLinearShape& s, const Scalar* h, const Scalar* u,
                           const Scalar* v, const Scalar* s_saved, const Scalar* dz,
                           Scalar* scratch, Scalar* dh, Scalar* dv, Scalar* dbias, Scalar* du,
                           GradientMode dv_mode, GradientMode dbias_mode, GradientMode du_mode);

template <typename Scalar>
void bias_add_rows(Scalar* y, const Scalar* bias, int64_t m, int64_t n);
template <typename Scalar>
void column_sums(const Scalar* x, int64_t m, int64_t n, Scalar* out, GradientMode mode);

}  // namespace uv::cpu
