#include "engine/dict/autoencoder.h"

#include <algorithm>

#include "engine/core/error.h"
#include "engine/core/philox.h"
#include "engine/data/dataset.h"
#include "engine/graph/graph.h"
#include "engine/ops/ops.h"

namespace uv::dict {

namespace {

// The initialisation stream of layer L's autoencoder is rng_stream(kDictionary, bit | L): the bit
// keeps it apart from the α streams (below 2^40) and the random-value streams (bit 40) of
// dictionary.cpp.
constexpr uint64_t kAutoencoderStreamBit = uint64_t{1} << 41;
// Shuffles use data::epoch_permutation's streams under a seed of their own ("AE_DICT"), so they
// never repeat the supervised epochs' or the pretraining's orders.
constexpr uint64_t kShuffleSeedSalt = 0x41455F44494354ull;

// Mean reconstruction loss over all rows (forward only). `x` (batch, n_v) is scratch on the backend.
double mean_loss(Backend& backend, Graph& graph, const float* inputs, int64_t rows, int64_t n_v, float* x) {
  double sum = 0;
  const int64_t batch = graph.max_batch();
  for (int64_t begin = 0; begin < rows; begin += batch) {
    const int64_t m = std::min(batch, rows - begin);
    backend.copy(x, inputs + begin * n_v, static_cast<size_t>(m * n_v) * sizeof(float));
    const float* z = graph.forward(x, m);
    sum += backend.mean_squared_error(z, x, m, n_v, graph.output_grad()).loss_sum;
  }
  return sum / static_cast<double>(rows);
}

}  // namespace

AutoencoderResult train_autoencoder(Backend& backend, const float* inputs, int64_t rows, int64_t n_v,
                                    const AutoencoderConfig& config) {
  UV_REQUIRE(inputs != nullptr && rows >= 1 && n_v >= 1,
             "the ae dictionary's autoencoder needs inputs, got " << rows << " rows of " << n_v);
  UV_REQUIRE(config.atoms >= 1 && config.epochs >= 0 && config.batch_size >= 1,
             "autoencoder: atoms = " << config.atoms << ", epochs = " << config.epochs
                                     << ", batch size = " << config.batch_size << " out of range");
  UV_REQUIRE(std::isfinite(config.lr) && config.lr > 0 && config.momentum >= 0 && config.momentum <= 1,
             "autoencoder: lr = " << config.lr << " must be > 0, momentum = " << config.momentum
                                  << " in [0, 1]");

  ParameterStore store;
  Dense encoder("ae.encoder", store, n_v, config.atoms, config.init_scale, /*max_col_norm=*/0.f);
  ActivationOp hidden("ae.encoder.sigmoid", config.atoms, Activation::Sigmoid);
  TiedDenseDecoder decoder("ae.decoder", store, encoder);
  ActivationOp output("ae.decoder.sigmoid", n_v, Activation::Sigmoid);
  store.allocate(backend);  // zeroes values and momentum: biases start at 0
  const Parameter& w = store.at(encoder.weight());
  backend.uniform_init(w.value, w.numel(), -config.init_scale, config.init_scale, config.seed,
                       rng_stream(RngStream::kDictionary, kAutoencoderStreamBit | config.layer_index));

  const int64_t batch = std::min(config.batch_size, rows);
  Graph graph(backend, store, batch);
  for (Op* op : std::initializer_list<Op*>{&encoder, &hidden, &decoder, &output}) graph.add(op);
  graph.keep_value_for_loss(0);  // the reconstruction target is the input
  graph.finalize();
  const std::vector<int> params = graph.trainable_params();  // W, c, b

  // The inputs on the backend (a copy, so the host array may be anything the caller owns), the
  // epoch's order and the batch gathered through it.
  Buffer resident = backend.allocate(static_cast<size_t>(rows * n_v) * sizeof(float));
  backend.copy_to_device(resident.data(), inputs, static_cast<size_t>(rows * n_v) * sizeof(float));
  Buffer order = backend.allocate(static_cast<size_t>(rows) * sizeof(int32_t));
  Buffer x = backend.allocate(static_cast<size_t>(batch * n_v) * sizeof(float));
  const float* data = resident.floats();

  AutoencoderResult result;
  result.loss_before = mean_loss(backend, graph, data, rows, n_v, x.floats());
  const uint64_t shuffle_seed = config.seed + kShuffleSeedSalt * (config.layer_index + 1);
  for (int64_t epoch = 0; epoch < config.epochs; ++epoch) {
    const std::vector<int32_t> perm = data::epoch_permutation(rows, shuffle_seed, static_cast<uint64_t>(epoch));
    backend.copy_to_device(order.data(), perm.data(), perm.size() * sizeof(int32_t));
    const auto* index = static_cast<const int32_t*>(order.data());
    for (int64_t begin = 0; begin < rows; begin += batch) {
      const int64_t m = std::min(batch, rows - begin);
      backend.gather_rows(data, index + begin, m, n_v, x.floats());
      const float* z = graph.forward(x.floats(), m);
      const LossResult loss = backend.mean_squared_error(z, x.floats(), m, n_v, graph.output_grad());
      UV_REQUIRE(std::isfinite(loss.loss_sum),
                 "the ae dictionary's autoencoder diverged: loss " << loss.loss_sum << " at epoch "
                                                                    << epoch + 1 << "; lower ae_lr");
      graph.backward(m);
      for (int p : params) {
        Parameter& param = store.at(p);
        SgdArgs args;
        args.params = param.value;
        args.grads = param.grad;
        args.momentum_buffer = param.momentum;
        args.n = param.numel();
        args.lr = static_cast<float>(config.lr);
        args.momentum = static_cast<float>(config.momentum);
        backend.sgd_step(args);
      }
    }
  }
  result.loss_after = mean_loss(backend, graph, data, rows, n_v, x.floats());

  auto download = [&](int param) {
    const Parameter& p = store.at(param);
    std::vector<float> host(static_cast<size_t>(p.numel()));
    backend.copy_to_host(host.data(), p.value, host.size() * sizeof(float));
    return host;
  };
  result.encoder = download(encoder.weight());
  result.encoder_bias = download(encoder.bias());
  result.decoder_bias = download(decoder.bias());
  return result;
}

}  // namespace uv::dict
