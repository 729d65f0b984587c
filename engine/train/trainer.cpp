#include "engine/train/trainer.h"

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>

#include "engine/backend/backend.h"
#include "engine/checkpoint/safetensors.h"
#include "engine/core/clock.h"
#include "engine/core/error.h"
#include "engine/core/nvtx.h"
#include "engine/core/philox.h"
#include "engine/data/dataset.h"
#include "engine/train/progress.h"
#include "models/network.h"

namespace uv {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// The pipeline, one stage after another (spec section 5): parameters drawn, then layer by layer the
// layer's dictionary and its autoencoder pretraining, then supervised training (fine-tuning when
// layers were pretrained). Every stage ends with a checkpoint; a resumed run skips finished ones.
enum class StageKind { Init, Dictionary, Pretrain, Train };

struct Stage {
  StageKind kind = StageKind::Init;
  size_t layer = 0;       // Dictionary, Pretrain: the layer's index
  std::string layer_name; // "layer2"; empty for Init and Train

  // The name saved in checkpoints ("init", "dictionary", "pretrain", "train").
  const char* name() const {
    switch (kind) {
      case StageKind::Init: return "init";
      case StageKind::Dictionary: return "dictionary";
      case StageKind::Pretrain: return "pretrain";
      case StageKind::Train: return "train";
    }
    return "?";
  }
  // "dictionary:layer2": one entry of the plan a checkpoint is checked against.
  std::string id() const { return layer_name.empty() ? name() : std::string(name()) + ":" + layer_name; }
};

// Where the run is in its pipeline and schedule; saved in the checkpoint's metadata.
struct TrainState {
  size_t stage = 0;              // index into the plan: the stage in progress, or the last one finished
  bool stage_done = false;       // whether `stage` has finished
  int64_t pretrain_steps = 0;    // optimiser steps taken in pretraining, all layers together
  int64_t pretrain_epoch = 0;    // position inside the pretraining stage in progress:
  int64_t pretrain_step_in_epoch = 0;  //   its epoch (0-based) and the batches of it already done
  int64_t step = 0;              // optimiser steps taken in supervised training
  int64_t epoch = 0;             // current epoch (0-based)
  int64_t step_in_epoch = 0;     // batches of `epoch` already done
  double lr = 0.0;               // learning rate for the next step
  // Optimiser steps in all, the count --max-steps stops at.
  int64_t total_steps() const { return pretrain_steps + step; }
};

// What became of a stage in this invocation (summary.json, metrics, the printed summary).
enum class StageOutcome { NotReached, Skipped, Ran, Resumed };

const char* outcome_name(StageOutcome o) {
  switch (o) {
    case StageOutcome::NotReached: return "not reached";
    case StageOutcome::Skipped: return "skipped";  // finished before this invocation: from the checkpoint
    case StageOutcome::Ran: return "ran";          // ran start to end in this invocation
    case StageOutcome::Resumed: return "resumed";  // begun before this invocation, continued here
  }
  return "?";
}

// A data set where the backend batches it from: uploaded to the device once, or the host arrays
// used in place when the backend computes in host memory.
struct ResidentSet {
  const data::Dataset* host = nullptr;
  const float* images = nullptr;    // (count, features)
  const int32_t* labels = nullptr;  // (count)
  int64_t features = 0;             // the host's, or J·r for projected inputs
  Buffer owned_images, owned_labels;
};

ResidentSet make_resident(Backend& backend, const data::Dataset& set) {
  ResidentSet r;
  r.host = &set;
  r.features = set.features();
  if (backend.shares_host_memory()) {
    r.images = set.images.data();
    r.labels = set.labels.data();
    return r;
  }
  r.owned_images = backend.allocate(set.images.size() * sizeof(float));
  r.owned_labels = backend.allocate(set.labels.size() * sizeof(int32_t));
  backend.copy_to_device(r.owned_images.data(), set.images.data(), set.images.size() * sizeof(float));
  backend.copy_to_device(r.owned_labels.data(), set.labels.data(), set.labels.size() * sizeof(int32_t));
  r.images = r.owned_images.floats();
  r.labels = static_cast<const int32_t*>(r.owned_labels.data());
  return r;
}

class Run {
 public:
  Run(const RunConfig& config, const TrainOptions& options) : config_(config), options_(options) {}
  json execute();

 private:
  void load_data();
  void build_model();  // the network, its buffers and graph, the plan; the checkpoint when resuming
  void plan_stages();
  // Runs the plan from where the checkpoint left it; false when --max-steps stopped it.
  bool run_stages();
  void build_dictionary(size_t index);
  bool pretrain_layer(size_t index);  // false when --max-steps stopped it
  bool train_supervised();  // false when --max-steps stopped it
  bool max_steps_reached() const { return options_.max_steps >= 0 && state_.total_steps() >= options_.max_steps; }
  void stop_for_max_steps();  // logs the stop (the checkpoint is already written)
  double evaluate(const ResidentSet& set, double* mean_loss);
  // What the supervised graph batches from: the data sets, or with projected inputs T = X·U of
  // every example (computed on first use, once U is built: after the dictionary stages).
  const ResidentSet& train_input();
  const ResidentSet& test_input();
  // The raw data set where the backend batches it from, uploaded on first use: a run with
  // projected inputs never holds the raw images on the device unless pretraining needs them.
  const ResidentSet& resident(ResidentSet& slot, const data::Dataset& set);
  ResidentSet project(const data::Dataset& set);
  // lr_from set: the rate is read on the backend from the step state and `lr` is ignored.
  // advance.state set: the step state advances after the update (on the GPU in the update's own
  // launch for the whole arena, in the norm bound's for single tensors).
  void sgd(const std::vector<int>& params, double lr, double momentum, double weight_decay,
           const StepState* lr_from = nullptr, const Backend::StepAdvance& advance = {});
  // Bounds the column norms of the parameters among `params` that have the bound: one grouped call,
  // which also advances the step state where `advance` says so.
  void bound_column_norms(ParameterStore& store, const std::vector<int>& params, const Backend::StepAdvance& advance);
  // norm_targets_ ← the bounded parameters among `params` (none when train.max_col_norm is 0), for
  // sgd() and bound_column_norms().
  void collect_norm_targets(ParameterStore& store, const std::vector<int>& params);
  std::vector<Backend::ColumnNormTarget> norm_targets_;  // collect_norm_targets' list, reused
  void save_checkpoint();  // the parameters, optimiser state and state_ (stage and position)
  void load_checkpoint();
  void log_metrics(const json& row);
  std::string kept_checkpoint_note() const;
  std::string stage_label(const Stage& stage) const;  // "pretrain layer2", "fine-tune"
  std::string resolved_device() const;  // the --device to use (TrainOptions::device)
  std::string position_text() const;  // where state_ stands: "step 12", "pretrain layer2, epoch 1 batch 3"
  // The order batches are taken in, once an epoch, into order_buffer_: data.shuffle = host makes
  // it on the host (Fisher-Yates) and uploads it; device sorts Philox keys on the backend.
  void shuffle(int64_t n, uint64_t seed, uint64_t epoch);
  // Copies an order made on the host (an epoch's permutation, or evaluation's 0..n-1) there.
  void set_order(const std::vector<int32_t>& order);
  // Gathers examples order[begin, begin + m) of `set` into x_ and y_, on the backend.
  void stage_batch(const ResidentSet& set, int64_t begin, int64_t m);
  // --- the supervised step, its values in step_state_ so that the CUDA backend can capture it --
  StepState* step_state() { return static_cast<StepState*>(step_state_.data()); }
  // Batch, forward, loss added into the step state, backward, optimiser, the schedule's advance.
  void step_body(const ResidentSet& input, const std::vector<int>& params, int64_t m);
  // step_body, or for a full batch its captured graph once one step has run directly (warm-up).
  void train_step(const ResidentSet& input, const std::vector<int>& params, int64_t m);
  // Step state ← TrainState at the start of an epoch or a resumed run: begin, lr, zero totals.
  void reset_step_state();
  // Reads the totals back (one small copy; a sync on the GPU) as epoch_totals_, for `seen`
  // examples; a non-finite loss stops the run, naming the steps since the last read.
  void read_step_totals(int64_t seen);
  json stages_json() const;
  json summary(double seconds);
  json gemm_summary() const;

  const RunConfig& config_;
  TrainOptions options_;
  std::unique_ptr<Backend> backend_;
  data::DataSplit data_;
  std::unique_ptr<Network> model_;
  std::unique_ptr<Graph> graph_;
  Buffer x_, y_;  // the batch on the device: x (batch, features), labels (batch) as int32
  ResidentSet train_set_, test_set_;  // empty until resident() uploads them
  bool project_input_ = false;  // layer 1 reads T = X·U (train.project_input)
  ResidentSet projected_train_, projected_test_;
  Buffer order_buffer_;  // (max count) on the backend: the current order of examples
  Buffer step_state_;    // one StepState on the backend
  // The epoch's totals as last read from the step state: what progress lines and metrics show.
  struct EpochTotals {
    double loss_sum = 0;
    int64_t correct = 0, seen = 0;
  } epoch_totals_;
  int64_t totals_step_ = 0;  // state_.step when they were read; the loss was finite up to it
  // train.cuda_graph: whether full batches run as one captured graph, and if not, why.
  bool capture_step_ = false;
  std::string capture_note_;
  bool step_warmed_up_ = false;  // a full batch has run uncaptured (sizes lazy scratch)
  std::unique_ptr<Backend::Captured> step_graph_;
  int64_t step_replays_ = 0;
  std::vector<Stage> plan_;
  std::vector<StageOutcome> outcomes_;  // (plan_.size()) what this invocation did with each stage
  std::vector<double> stage_seconds_;   // (plan_.size()) time spent on each stage in this invocation
  bool pretrained_ = false;             // the plan holds a pretraining stage: training is fine-tuning
  TrainState state_;
  std::string last_good_;  // where the last checkpoint written stands ("step 12"); empty before one
  int64_t device_in_use_peak_ = -1;  // highest cudaMemGetInfo reading, sampled once per epoch
  double test_error_ = NAN, train_error_ = NAN, test_loss_ = NAN;
  json timings_ = json::object();
  fs::path out_;
};

void Run::load_data() {
  const auto t0 = std::chrono::steady_clock::now();
  const std::string dir = config_.data_dir.empty() ? data::default_data_dir(config_.dataset) : config_.data_dir;
  data_ = data::load_dataset(config_.dataset, dir);
  if (config_.train_limit > 0 && config_.train_limit < data_.train.count)
    data_.train = data::take_slice(data_.train, 0, config_.train_limit);
  if (config_.test_limit > 0 && config_.test_limit < data_.test.count)
    data_.test = data::take_slice(data_.test, 0, config_.test_limit);
  std::fprintf(stderr, "data: %s from %s: %lld train, %lld test, %lld features (%.1f s)\n",
               config_.dataset.c_str(), dir.c_str(), static_cast<long long>(data_.train.count),
               static_cast<long long>(data_.test.count),
               static_cast<long long>(data_.train.features()), seconds_since(t0));
  const int classes = data_.train.num_classes;
  UV_REQUIRE(config_.layers.back().units == classes,
             "config " << config_.source << ": the last layer has " << config_.layers.back().units
                       << " units but " << config_.dataset << " has " << classes << " classes");
}

void Run::build_model() {
  model_ = std::make_unique<Network>(config_, *backend_, ImageShape{data_.train.rows, data_.train.cols, data_.train.channels});
  if (config_.project_input != "off") {
    const std::string why = model_->why_no_input_projection();
    UV_REQUIRE(config_.project_input == "auto" || why.empty(),
               "config " << config_.source << ": 'train.project_input' = \"on\" but " << why);
    // auto: when it also saves memory (J·r ≤ K) and layer 1's strategy was left to the engine (a
    // named strategy is what the user wants timed).
    project_input_ = why.empty() && (config_.project_input == "on" ||
                                     (config_.layers.front().strategy == "auto" &&
                                      model_->projected_features() <= data_.train.features()));
  }
  const int64_t batch_features =
      std::max(data_.train.features(), project_input_ ? model_->projected_features() : int64_t{0});
  x_ = backend_->allocate(static_cast<size_t>(config_.batch_size * batch_features) * sizeof(float));
  y_ = backend_->allocate(static_cast<size_t>(config_.batch_size) * sizeof(int32_t));
  order_buffer_ = backend_->allocate(static_cast<size_t>(std::max(data_.train.count, data_.test.count)) *
                                     sizeof(int32_t));
  graph_ = model_->supervised_graph(config_.batch_size, project_input_);
  step_state_ = backend_->allocate(sizeof(StepState));
  if (config_.cuda_graph == "off") {
    capture_note_ = "off (train.cuda_graph)";
  } else if (!backend_->can_capture()) {
    capture_note_ = backend_->device() == Device::CPU ? "the CPU backend runs the step directly"
                                                      : "this backend cannot capture";
  } else if (std::any_of(config_.layers.begin(), config_.layers.end(), [](const LayerConfig& l) {
               return l.type.find("conv") != std::string::npos;
             })) {
    // cuDNN's legacy convolution calls have not been checked under stream capture here.
    capture_note_ = "off: conv layers (cuDNN under capture not yet verified)";
  } else {
    capture_step_ = true;
  }
  state_.lr = config_.lr;
  plan_stages();
  if (options_.resume) load_checkpoint();
}

void Run::plan_stages() {
  plan_.push_back({StageKind::Init, 0, ""});
  // Layer by layer, as the paper's pipeline: a data-driven dictionary (Emp) of layer i reads the
  // codes of the layers below, which are pretrained first when pretraining is on.
  for (size_t i = 0; i < model_->layers().size(); ++i) {
    const Network::Layer& layer = model_->layers()[i];
    if (layer.config.is_predicted()) plan_.push_back({StageKind::Dictionary, i, layer.name});
    if (layer.decoder && config_.pretrain_epochs > 0) {
      plan_.push_back({StageKind::Pretrain, i, layer.name});
      pretrained_ = true;
    }
  }
  plan_.push_back({StageKind::Train, 0, ""});
  outcomes_.assign(plan_.size(), StageOutcome::NotReached);
  stage_seconds_.assign(plan_.size(), 0.0);
}

std::string Run::stage_label(const Stage& stage) const {
  if (stage.kind == StageKind::Train) return pretrained_ ? "fine-tune" : "train";
  return stage.layer_name.empty() ? stage.name() : std::string(stage.name()) + " " + stage.layer_name;
}

bool Run::run_stages() {
  // A fresh run starts stage 0; a resumed one the stage its checkpoint is in (its train stage always
  // continues: its epochs may have been raised with --epochs), or the one after a finished stage.
  const size_t resume_at = !options_.resume ? 0
                           : state_.stage_done && plan_[state_.stage].kind != StageKind::Train ? state_.stage + 1
                                                                                              : state_.stage;
  for (size_t k = 0; k < plan_.size(); ++k) {
    const Stage& stage = plan_[k];
    char head[64];
    std::snprintf(head, sizeof head, "stage %zu/%zu: ", k + 1, plan_.size());
    if (k < resume_at) {
      outcomes_[k] = StageOutcome::Skipped;
      std::fprintf(stderr, "%s%s: finished before, restored from the checkpoint (skipped)\n", head,
                   stage_label(stage).c_str());
      log_metrics({{"kind", "stage"}, {"stage", stage.name()}, {"layer", stage.layer_name}, {"index", k},
                   {"status", outcome_name(StageOutcome::Skipped)}});
      continue;
    }
    // Begun in an earlier invocation: the checkpoint stands inside this stage.
    const bool resumed = options_.resume && k == resume_at &&
                         (stage.kind == StageKind::Train
                              ? state_.step > 0 && state_.epoch < config_.epochs
                              : state_.pretrain_step_in_epoch > 0 || state_.pretrain_epoch > 0);
    if (!(options_.resume && k == resume_at)) {  // entering the stage from its start
      state_.pretrain_epoch = 0;
      state_.pretrain_step_in_epoch = 0;
    }
    state_.stage = k;
    state_.stage_done = false;
    std::string detail;
    if (stage.kind == StageKind::Dictionary) detail = ", " + model_->layers()[stage.layer].config.dictionary;
    if (stage.kind == StageKind::Pretrain)
      detail = ", tied sigmoid autoencoder, " + std::to_string(config_.pretrain_epochs) + " epochs";
    if (stage.kind == StageKind::Train) detail = ", " + std::to_string(config_.epochs) + " epochs";
    if (resumed)
      detail += stage.kind == StageKind::Train
                    ? " (resumed at epoch " + std::to_string(state_.epoch + 1) + ", batch " +
                          std::to_string(state_.step_in_epoch) + ")"
                    : " (resumed at epoch " + std::to_string(state_.pretrain_epoch + 1) + ", batch " +
                          std::to_string(state_.pretrain_step_in_epoch) + ")";
    std::fprintf(stderr, "%s%s%s\n", head, stage_label(stage).c_str(), detail.c_str());
    const bool all_epochs_done_before = state_.step > 0 && state_.epoch >= config_.epochs;
    const auto t0 = std::chrono::steady_clock::now();
    bool finished = true;
    switch (stage.kind) {
      case StageKind::Init: model_->init_parameters(config_.seed); break;
      case StageKind::Dictionary: build_dictionary(stage.layer); break;
      case StageKind::Pretrain: finished = pretrain_layer(stage.layer); break;
      case StageKind::Train: finished = train_supervised(); break;
    }
    stage_seconds_[k] += seconds_since(t0);
    outcomes_[k] = resumed ? StageOutcome::Resumed : StageOutcome::Ran;
    // A resumed run whose epochs were all done already (no larger --epochs) trained nothing.
    if (stage.kind == StageKind::Train && options_.resume && k == resume_at && all_epochs_done_before)
      outcomes_[k] = StageOutcome::Skipped;
    if (!finished) {
      stop_for_max_steps();
      return false;
    }
    if (stage.kind == StageKind::Train) break;  // the last stage; its epochs write its checkpoints
    state_.stage_done = true;
    state_.pretrain_epoch = 0;
    state_.pretrain_step_in_epoch = 0;
    save_checkpoint();
    log_metrics({{"kind", "stage"}, {"stage", stage.name()}, {"layer", stage.layer_name}, {"index", k},
                 {"status", outcome_name(outcomes_[k])}, {"seconds", stage_seconds_[k]}});
    // A pretraining stage that reached --max-steps on its last step stops here, between stages.
    if (stage.kind == StageKind::Pretrain && max_steps_reached()) {
      stop_for_max_steps();
      return false;
    }
  }
  const size_t last = plan_.size() - 1;
  log_metrics({{"kind", "stage"}, {"stage", plan_[last].name()}, {"layer", ""}, {"index", last},
               {"status", outcome_name(outcomes_[last])}, {"seconds", stage_seconds_[last]}});
  return true;
}

void Run::stop_for_max_steps() {
  const Stage& stage = plan_[state_.stage];
  log_metrics({{"kind", "stopped"}, {"step", state_.total_steps()}, {"pretrain_steps", state_.pretrain_steps},
               {"train_steps", state_.step}, {"stage", stage.name()}, {"layer", stage.layer_name},
               {"stage_done", state_.stage_done}});
}

void Run::build_dictionary(size_t i) {
  const auto t0 = std::chrono::steady_clock::now();
  const Network::Layer& layer = model_->layers()[i];
  const DictionaryReport report = model_->build_dictionary(i, data_.train, config_.seed, config_.emp_samples);
  const double s = seconds_since(t0);
  timings_["dictionary_" + layer.name] = s;
  const long long rank = layer.conv ? layer.conv->config().rank : layer.predicted->config().rank;
  const long long columns = layer.conv ? layer.conv->config().columns : layer.predicted->config().columns;
  json row = {{"kind", "dictionary"}, {"layer", layer.name}, {"dictionary", layer.config.dictionary},
              {"precision", layer.config.dictionary_precision}, {"n_alpha", rank}, {"columns", columns},
              {"seconds", s}};
  char detail[200] = "";
  if (report.data_rows > 0) {
    std::snprintf(detail, sizeof detail, ", from %lld examples", static_cast<long long>(report.data_rows));
    row["data_rows"] = report.data_rows;
  }
  if (layer.config.dictionary_precision == "tf32") {
    const size_t used = std::strlen(detail);
    std::snprintf(detail + used, sizeof detail - used, ", rounded to TF32");
  }
  if (layer.config.dictionary == "ae") {
    const size_t used = std::strlen(detail);
    std::snprintf(detail + used, sizeof detail - used,
                  ", autoencoder %lld atoms, %lld epochs: reconstruction loss %.4f -> %.4f",
                  static_cast<long long>(layer.config.ae_atoms), static_cast<long long>(layer.config.ae_epochs),
                  report.ae_loss_before, report.ae_loss_after);
    row["ae_atoms"] = layer.config.ae_atoms;
    row["ae_epochs"] = layer.config.ae_epochs;
    row["ae_loss_before"] = report.ae_loss_before;
    row["ae_loss_after"] = report.ae_loss_after;
  }
  std::fprintf(stderr, "dictionary: %s %s, n_alpha %lld x %lld columns%s (%.2f s)\n", layer.name.c_str(),
               layer.config.dictionary.c_str(), rank, columns, detail, s);
  log_metrics(row);
}

void Run::collect_norm_targets(ParameterStore& store, const std::vector<int>& params) {
  norm_targets_.clear();  // keeps its capacity: no allocation per step after the first
  if (config_.max_col_norm <= 0) return;
  for (int index : params) {
    const Parameter& p = store.at(index);
    if (p.spec.max_col_norm) norm_targets_.push_back({p.value, p.spec.norm_count, p.spec.norm_rows, p.spec.norm_cols});
  }
}

void Run::bound_column_norms(ParameterStore& store, const std::vector<int>& params,
                             const Backend::StepAdvance& advance) {
  collect_norm_targets(store, params);  // none: the backends advance alone
  backend_->max_column_norms(norm_targets_, static_cast<float>(config_.max_col_norm), advance);
}

void Run::sgd(const std::vector<int>& params, double lr, double momentum, double weight_decay,
              const StepState* lr_from, const Backend::StepAdvance& advance) {
  ParameterStore& store = model_->store();
  // Every learned tensor trains (supervised training): one call over the contiguous arena, weight
  // decay on its leading decayed part. The arena's alignment padding is zero with zero gradients,
  // so it stays zero. Pretraining trains a subset: one call per tensor.
  if (static_cast<int64_t>(params.size()) == store.learned_tensors()) {
    SgdArgs args;
    args.params = store.learned_arena();
    args.grads = store.grad_arena();
    args.momentum_buffer = store.momentum_arena();
    args.n = store.learned_floats();
    args.lr = static_cast<float>(lr);
    args.lr_from = lr_from;
    args.momentum = static_cast<float>(momentum);
    args.weight_decay = static_cast<float>(weight_decay);
    args.decay_end = store.decayed_floats();
    collect_norm_targets(store, params);
    if (config_.fused_optimizer == "on") {  // update, bounds (if any) and advance: one launch on the GPU
      backend_->sgd_step_bounded(args, norm_targets_, static_cast<float>(config_.max_col_norm), advance);
      return;
    }
    backend_->sgd_step(args);
    if (!norm_targets_.empty())
      backend_->max_column_norms(norm_targets_, static_cast<float>(config_.max_col_norm), Backend::StepAdvance{});
    if (advance.state) backend_->advance_step(advance.state, advance.batch, advance.lr_decay);
    return;
  }
  for (int index : params) {
    Parameter& p = store.at(index);
    SgdArgs args;
    args.params = p.value;
    args.grads = p.grad;
    args.momentum_buffer = p.momentum;
    args.n = p.numel();
    args.lr = static_cast<float>(lr);
    args.lr_from = lr_from;
    args.momentum = static_cast<float>(momentum);
    args.weight_decay = p.spec.weight_decay ? static_cast<float>(weight_decay) : 0.f;
    backend_->sgd_step(args);
  }
  bound_column_norms(store, params, advance);
}

bool Run::pretrain_layer(size_t index) {
  const Network::Layer& layer = model_->layers()[index];
  std::unique_ptr<Graph> graph = model_->pretrain_graph(index, config_.batch_size);
  const std::vector<int> params = graph->trainable_params();
  const data::Dataset& train = data_.train;
  const int64_t steps = (train.count + config_.batch_size - 1) / config_.batch_size;
  const size_t target_value = graph->size() - (layer.activation ? 4 : 3);  // this layer's input
  Progress progress("pretrain " + layer.name, config_.pretrain_epochs, steps, config_.batch_size,
                    config_.log_every_steps);
  const auto t0 = std::chrono::steady_clock::now();
  // From the checkpoint's position when resumed inside this stage, else from epoch 0, batch 0.
  while (state_.pretrain_epoch < config_.pretrain_epochs) {
    const int64_t epoch = state_.pretrain_epoch;
    // A stream of its own so pretraining does not shift the supervised epochs' shuffles.
    shuffle(train.count, config_.seed + 0x5052455452414Eull * (index + 1), epoch);
    double loss_sum = 0;
    int64_t seen = 0;
    for (int64_t s = state_.pretrain_step_in_epoch; s < steps; ++s) {
      NvtxRange step_range("pretrain step");
      const int64_t begin = s * config_.batch_size;
      const int64_t m = std::min(config_.batch_size, train.count - begin);
      stage_batch(resident(train_set_, data_.train), begin, m);
      const float* out = graph->forward(x_.floats(), m);
      const LossResult loss = backend_->mean_squared_error(
          out, graph->value(target_value), m, graph->out_features(), graph->output_grad());
      if (!std::isfinite(loss.loss_sum)) {
        log_metrics({{"kind", "error"}, {"stage", "pretrain"}, {"layer", layer.name},
                     {"pretrain_step", state_.pretrain_steps + 1}, {"loss", "nan"}});
        UV_FAIL("pretraining " << layer.name << " diverged: the loss is " << loss.loss_sum << " at epoch "
                               << epoch + 1 << " step " << s + 1 << "; " << kept_checkpoint_note()
                               << "; lower pretrain.lr");
      }
      graph->backward(m);
      sgd(params, config_.pretrain_lr, config_.pretrain_momentum, 0.0);
      ++state_.pretrain_steps;
      state_.pretrain_step_in_epoch = s + 1;
      loss_sum += loss.loss_sum;
      seen += m;
      progress.step(epoch, s + 1, loss_sum / seen, -1);
      const bool last_of_epoch = s + 1 == steps;
      if (!last_of_epoch && max_steps_reached()) {
        save_checkpoint();
        return false;
      }
      if (config_.checkpoint_every_steps > 0 && state_.pretrain_steps % config_.checkpoint_every_steps == 0 &&
          !last_of_epoch)
        save_checkpoint();
    }
    char line[160];
    std::snprintf(line, sizeof line, "pretrain %s epoch %lld/%lld reconstruction loss %.4f",
                  layer.name.c_str(), static_cast<long long>(epoch + 1),
                  static_cast<long long>(config_.pretrain_epochs), seen ? loss_sum / seen : NAN);
    progress.end_epoch(line);
    log_metrics({{"kind", "pretrain"}, {"layer", layer.name}, {"epoch", epoch + 1},
                 {"pretrain_step", state_.pretrain_steps}, {"loss", seen ? loss_sum / seen : NAN}});
    state_.pretrain_step_in_epoch = 0;
    ++state_.pretrain_epoch;
    if (state_.pretrain_epoch == config_.pretrain_epochs) break;  // the stage's own checkpoint follows
    save_checkpoint();
    if (max_steps_reached()) return false;
  }
  // Fine-tuning starts from rest: pretraining's velocities belong to another objective.
  for (int p : params) backend_->fill(model_->store().at(p).momentum, model_->store().at(p).numel(), 0.f);
  timings_["pretrain_" + layer.name] = seconds_since(t0);  // this invocation's share
  return true;
}

double Run::evaluate(const ResidentSet& resident, double* mean_loss) {
  const data::Dataset& set = *resident.host;
  NvtxRange range("evaluate");
  const int64_t batch = config_.batch_size;
  std::vector<int32_t> order(static_cast<size_t>(set.count));
  for (int64_t i = 0; i < set.count; ++i) order[static_cast<size_t>(i)] = static_cast<int32_t>(i);
  set_order(order);
  int64_t correct = 0;
  double loss = 0;
  for (int64_t begin = 0; begin < set.count; begin += batch) {
    const int64_t m = std::min(batch, set.count - begin);
    stage_batch(resident, begin, m);
    const float* logits = graph_->forward(x_.floats(), m);
    const LossResult r = backend_->softmax_cross_entropy(
        logits, static_cast<const int32_t*>(y_.data()), m, graph_->out_features(), graph_->output_grad());
    correct += r.correct;
    loss += r.loss_sum;
  }
  if (mean_loss) *mean_loss = loss / static_cast<double>(set.count);
  return 1.0 - static_cast<double>(correct) / static_cast<double>(set.count);
}

void Run::step_body(const ResidentSet& input, const std::vector<int>& params, int64_t m) {
  StepState* state = step_state();
  int32_t* labels = static_cast<int32_t*>(y_.data());
  backend_->gather_batch(input.images, input.labels, static_cast<const int32_t*>(order_buffer_.data()), state, m,
                         input.features, x_.floats(), labels);
  const float* logits = graph_->forward(x_.floats(), m);
  backend_->softmax_cross_entropy_accumulate(logits, labels, m, graph_->out_features(), graph_->output_grad(),
                                             state);
  graph_->backward(m);
  {
    NvtxRange range("optimizer");
    // The pipeline's per-minibatch decay: the step state advances in the optimizer's last launch.
    sgd(params, 0.0, config_.momentum, config_.weight_decay, state, {state, m, config_.lr_decay});
  }
}

void Run::train_step(const ResidentSet& input, const std::vector<int>& params, int64_t m) {
  // The last batch of an epoch may be partial: it runs directly, as every step off the GPU.
  if (!capture_step_ || m != config_.batch_size) return step_body(input, params, m);
  if (!step_graph_) {
    // The first full step runs directly: it sizes what backends create on first use (the loss's
    // row scratch, cuBLAS's and the kernels' lazy set-up), none of which a capture may do.
    if (!step_warmed_up_) {
      step_body(input, params, m);
      step_warmed_up_ = true;
      return;
    }
    try {
      step_graph_ = backend_->capture([&] { step_body(input, params, m); });
    } catch (const UserError&) {
      throw;
    } catch (const Error& e) {
      UV_CHECK(false, "capturing the training step as a CUDA graph failed: "
                          << e.what() << " (--set train.cuda_graph=off runs it uncaptured)");
    }
  }
  step_graph_->replay();
  ++step_replays_;
}

void Run::reset_step_state() {
  StepState start;
  start.begin = state_.step_in_epoch * config_.batch_size;
  start.lr = state_.lr;
  backend_->copy_to_device(step_state_.data(), &start, sizeof start);
  epoch_totals_ = {};
  totals_step_ = state_.step;
}

void Run::read_step_totals(int64_t seen) {
  StepState now;
  backend_->copy_to_host(&now, step_state_.data(), sizeof now);
  if (!std::isfinite(now.loss_sum)) {
    // Some step since the last read made the loss NaN or infinite; the checkpoint written before
    // that read (if any) predates it and is kept.
    const int64_t from = totals_step_ + 1, to = state_.step;
    const int64_t to_batch = state_.step_in_epoch, from_batch = to_batch - (to - from);
    log_metrics({{"kind", "error"}, {"step", to}, {"from_step", from}, {"loss", "nan"}});
    std::ostringstream where;
    if (from == to)
      where << "at step " << to << " (epoch " << state_.epoch + 1 << ", batch " << to_batch << ")";
    else
      where << "between steps " << from << " and " << to << " (epoch " << state_.epoch + 1 << ", batches "
            << from_batch << " to " << to_batch << "; the loss is read back every log.every_steps)";
    UV_FAIL("training diverged: the loss is " << now.loss_sum << " " << where.str() << "; "
                                              << kept_checkpoint_note() << "; lower train.lr");
  }
  epoch_totals_ = {now.loss_sum, now.correct, seen};
  totals_step_ = state_.step;
}

bool Run::train_supervised() {
  const data::Dataset& train = data_.train;
  const int64_t batch = config_.batch_size;
  const int64_t steps = (train.count + batch - 1) / batch;
  const std::vector<int> params = graph_->trainable_params();
  const ResidentSet& input = train_input();
  Progress progress(stage_label(plan_.back()), config_.epochs, steps, batch, config_.log_every_steps);
  const auto t0 = std::chrono::steady_clock::now();
  while (state_.epoch < config_.epochs) {
    const auto epoch_t0 = std::chrono::steady_clock::now();
    shuffle(train.count, config_.seed, static_cast<uint64_t>(state_.epoch));
    const int64_t first_step = state_.step_in_epoch;
    reset_step_state();  // re-derived from state_, so a resumed run continues the same numbers
    int64_t seen = 0;
    // Running means as of the last read; reads happen only where a value is shown or checked.
    auto means = [&] {
      if (totals_step_ != state_.step) read_step_totals(seen);
      const EpochTotals& t = epoch_totals_;
      return std::make_pair(t.loss_sum / t.seen, static_cast<double>(t.correct) / t.seen);
    };
    for (int64_t s = first_step; s < steps; ++s) {
      NvtxRange step_range("train step");
      const int64_t m = std::min(batch, train.count - s * batch);
      train_step(input, params, m);
      // The host's copy of the schedule (checkpoints, logs): the same double arithmetic as the
      // device's copy in the step state.
      state_.lr /= config_.lr_decay;
      ++state_.step;
      state_.step_in_epoch = s + 1;
      seen += m;
      const bool log_due = state_.step % config_.log_every_steps == 0;
      const bool stop_due = s + 1 < steps && max_steps_reached();
      const bool checkpoint_due =
          config_.checkpoint_every_steps > 0 && state_.step % config_.checkpoint_every_steps == 0 && s + 1 < steps;
      // Every value shown and every checkpoint comes after a read, which checks the loss.
      if (log_due || stop_due || checkpoint_due || s + 1 == steps) means();
      progress.step(state_.epoch, s + 1, means);
      // One sample an epoch, mid-step state included: buffers are all allocated by the first step.
      if (s == first_step) device_in_use_peak_ = std::max(device_in_use_peak_, backend_->device_bytes_in_use());
      if (log_due) {
        const auto [loss, accuracy] = means();
        log_metrics({{"kind", "train"}, {"step", state_.step}, {"epoch", state_.epoch + 1},
                     {"loss", loss}, {"accuracy", accuracy},
                     {"lr", state_.lr}, {"samples_per_s", progress.samples_per_second()}});
      }
      if (stop_due) {
        save_checkpoint();
        return false;
      }
      if (checkpoint_due) save_checkpoint();
    }
    const EpochTotals& totals = epoch_totals_;
    train_error_ = totals.seen ? 1.0 - static_cast<double>(totals.correct) / totals.seen : train_error_;
    const double train_loss = totals.seen ? totals.loss_sum / totals.seen : NAN;
    const double epoch_seconds = seconds_since(epoch_t0);
    test_error_ = evaluate(test_input(), &test_loss_);
    // Again with the test set on the device (uploaded or projected at the first evaluation).
    device_in_use_peak_ = std::max(device_in_use_peak_, backend_->device_bytes_in_use());
    char line[200];
    std::snprintf(line, sizeof line,
                  "%s epoch %lld/%lld  loss %.4f  train error %.2f%%  test error %.2f%%  %.0f samples/s  %.1f s",
                  stage_label(plan_.back()).c_str(), static_cast<long long>(state_.epoch + 1), static_cast<long long>(config_.epochs),
                  train_loss, 100 * train_error_, 100 * test_error_,
                  seen / std::max(epoch_seconds, 1e-9), epoch_seconds);
    progress.end_epoch(line);
    log_metrics({{"kind", "epoch"}, {"epoch", state_.epoch + 1}, {"step", state_.step},
                 {"train_loss", train_loss}, {"train_error", train_error_},
                 {"test_loss", test_loss_}, {"test_error", test_error_}, {"seconds", epoch_seconds}});
    ++state_.epoch;
    state_.step_in_epoch = 0;
    state_.stage_done = state_.epoch >= config_.epochs;
    save_checkpoint();
    if (max_steps_reached() && state_.epoch < config_.epochs) return false;
  }
  timings_["train"] = seconds_since(t0);
  return true;
}

// The plan as a checkpoint records it: "init,dictionary:layer1,pretrain:layer1,...,train".
std::string plan_text(const std::vector<Stage>& plan) {
  std::string text;
  for (const Stage& stage : plan) text += (text.empty() ? "" : ",") + stage.id();
  return text;
}

void Run::save_checkpoint() {
  const Stage& stage = plan_.at(state_.stage);
  const bool pretraining = stage.kind == StageKind::Pretrain;
  ckpt::SafetensorsFile file;
  std::vector<float> host;
  for (const Parameter& p : model_->store().all()) {
    host.resize(static_cast<size_t>(p.numel()));
    backend_->copy_to_host(host.data(), p.value, host.size() * sizeof(float));
    // Never replace the last good checkpoint with diverged parameters: an update can overflow
    // before the loss shows it (e.g. train.lr_decay < 1 drives the rate to inf).
    const auto bad = std::find_if(host.begin(), host.end(), [](float v) { return !std::isfinite(v); });
    if (bad != host.end()) {
      log_metrics({{"kind", "error"}, {"step", state_.step}, {"pretrain_step", state_.pretrain_steps},
                   {"stage", stage.name()}, {"parameter", p.spec.name}});
      if (pretraining)
        UV_FAIL("pretraining " << stage.layer_name << " diverged: parameter '" << p.spec.name << "' holds " << *bad
                               << " at pretraining step " << state_.pretrain_steps << "; "
                               << kept_checkpoint_note() << "; lower pretrain.lr");
      UV_FAIL("training diverged: parameter '" << p.spec.name << "' holds " << *bad << " at step "
                                               << state_.step << "; " << kept_checkpoint_note()
                                               << "; lower train.lr");
    }
    file.tensors.push_back(ckpt::TensorRecord::from_f32(p.spec.name, p.spec.shape, host.data()));
    if (p.spec.kind == ParamKind::Learned) {
      backend_->copy_to_host(host.data(), p.momentum, host.size() * sizeof(float));
      file.tensors.push_back(ckpt::TensorRecord::from_f32("optimizer.momentum." + p.spec.name, p.spec.shape, host.data()));
    }
  }
  char lr[64];
  std::snprintf(lr, sizeof lr, "%.17g", state_.lr);
  file.metadata = {{"format", "uvtrain-checkpoint-1"},
                   // The pipeline's position: which stage (its name, layer and index in `stages`)
                   // and whether it has finished; a resumed run continues it or starts the next.
                   {"stage", stage.name()},
                   {"stage_layer", stage.layer_name},
                   {"stage_index", std::to_string(state_.stage)},
                   {"stage_status", state_.stage_done ? "done" : "running"},
                   {"stages", plan_text(plan_)},
                   // Pretraining: steps in all layers so far, and the position inside the stage.
                   {"pretrain_step", std::to_string(state_.pretrain_steps)},
                   {"pretrain_epoch", std::to_string(state_.pretrain_epoch)},
                   {"pretrain_step_in_epoch", std::to_string(state_.pretrain_step_in_epoch)},
                   // Supervised training (fine-tuning).
                   {"step", std::to_string(state_.step)},
                   {"epoch", std::to_string(state_.epoch)},
                   {"step_in_epoch", std::to_string(state_.step_in_epoch)},
                   {"lr", lr},
                   // The device kind, which a --resume without --device continues on.
                   {"device", backend_->device() == Device::CUDA ? "cuda" : "cpu"},
                   // Every random draw is Philox(seed, stream, offset) with streams fixed by the
                   // stage, layer and epoch, so the RNG state is the seed plus the position above.
                   {"rng", json{{"generator", "philox4x32-10"}, {"seed", config_.seed},
                                {"shuffle_epoch", state_.epoch}, {"pretrain_shuffle_epoch", state_.pretrain_epoch}}
                               .dump()},
                   {"config", config_.resolved.dump()}};
  ckpt::write_safetensors_atomic((out_ / kCheckpointFile).string(), file);
  last_good_ = position_text();
}

std::string Run::position_text() const {
  const Stage& stage = plan_.at(state_.stage);
  if (stage.kind == StageKind::Train) return "step " + std::to_string(state_.step);
  if (stage.kind == StageKind::Pretrain && !state_.stage_done)
    return "pretrain " + stage.layer_name + ", epoch " + std::to_string(state_.pretrain_epoch + 1) + " batch " +
           std::to_string(state_.pretrain_step_in_epoch);
  return "end of stage " + stage_label(stage);
}

void Run::load_checkpoint() {
  const std::string path = (out_ / kCheckpointFile).string();
  const ckpt::SafetensorsFile file = ckpt::read_safetensors(path);
  auto meta = [&](const char* key) -> const std::string& {
    auto it = file.metadata.find(key);
    UV_REQUIRE(it != file.metadata.end(), "corrupt checkpoint " << path << ": no '" << key << "' in __metadata__");
    return it->second;
  };
  UV_REQUIRE(meta("format") == "uvtrain-checkpoint-1",
             "checkpoint " << path << ": unknown format '" << meta("format") << "'");
  auto number = [&](const char* key) {
    try {
      return std::stod(meta(key));
    } catch (const std::exception&) {
      UV_FAIL("corrupt checkpoint " << path << ": metadata '" << key << "' = '" << meta(key) << "' is not a number");
    }
  };
  state_.step = static_cast<int64_t>(number("step"));
  state_.epoch = static_cast<int64_t>(number("epoch"));
  state_.step_in_epoch = static_cast<int64_t>(number("step_in_epoch"));
  state_.lr = number("lr");
  if (file.metadata.count("stage_index")) {
    UV_REQUIRE(meta("stages") == plan_text(plan_),
               "--resume: checkpoint " << path << " belongs to a pipeline with the stages " << meta("stages")
                                       << " but this config plans " << plan_text(plan_)
                                       << " (were pretrain.epochs or a layer's pretrain or type changed?)");
    const double index = number("stage_index");
    UV_REQUIRE(index >= 0 && index < static_cast<double>(plan_.size()),
               "corrupt checkpoint " << path << ": stage_index " << meta("stage_index") << " is outside the plan");
    state_.stage = static_cast<size_t>(index);
    UV_REQUIRE(meta("stage") == plan_[state_.stage].name(),
               "corrupt checkpoint " << path << ": stage '" << meta("stage") << "' at stage_index "
                                     << state_.stage << " where the plan has '" << plan_[state_.stage].id() << "'");
    const std::string& status = meta("stage_status");
    UV_REQUIRE(status == "done" || status == "running",
               "corrupt checkpoint " << path << ": stage_status '" << status << "' is not done or running");
    state_.stage_done = status == "done";
    state_.pretrain_steps = static_cast<int64_t>(number("pretrain_step"));
    state_.pretrain_epoch = static_cast<int64_t>(number("pretrain_epoch"));
    state_.pretrain_step_in_epoch = static_cast<int64_t>(number("pretrain_step_in_epoch"));
  } else {
    // Written before the pipeline had stages: "initial" (model built) or "train", both in training.
    UV_REQUIRE(meta("stage") == "initial" || meta("stage") == "train",
               "corrupt checkpoint " << path << ": stage '" << meta("stage") << "' without a stage_index");
    state_.stage = plan_.size() - 1;
    state_.stage_done = false;
  }
  auto restore = [&](const std::string& name, const std::vector<int64_t>& shape, float* dst) {
    const ckpt::TensorRecord& t = file.at(name, path);
    UV_REQUIRE(t.shape == shape, "checkpoint " << path << ": tensor '" << name << "' has shape "
                                               << shape_string(t.shape) << " but the model expects "
                                               << shape_string(shape));
    const std::vector<float> values = t.to_f32();
    backend_->copy_to_device(dst, values.data(), values.size() * sizeof(float));
  };
  // Every parameter, the fixed dictionaries U included: a finished dictionary stage is never rebuilt.
  for (const Parameter& p : model_->store().all()) {
    restore(p.spec.name, p.spec.shape, p.value);
    if (p.spec.kind == ParamKind::Learned)
      restore("optimizer.momentum." + p.spec.name, p.spec.shape, p.momentum);
  }
  const Stage& stage = plan_[state_.stage];
  last_good_ = position_text();
  std::fprintf(stderr, "resumed %s: stage %s (%zu/%zu, %s), ", path.c_str(), stage_label(stage).c_str(),
               state_.stage + 1, plan_.size(), state_.stage_done ? "done" : "running");
  if (stage.kind == StageKind::Pretrain && !state_.stage_done)
    std::fprintf(stderr, "epoch %lld, batch %lld; ", static_cast<long long>(state_.pretrain_epoch + 1),
                 static_cast<long long>(state_.pretrain_step_in_epoch));
  std::fprintf(stderr, "%lld pretraining steps, training step %lld (epoch %lld, batch %lld)\n",
               static_cast<long long>(state_.pretrain_steps), static_cast<long long>(state_.step),
               static_cast<long long>(state_.epoch + 1), static_cast<long long>(state_.step_in_epoch));
}

const ResidentSet& Run::resident(ResidentSet& slot, const data::Dataset& set) {
  if (!slot.host) {
    NvtxRange range("upload data set");
    slot = make_resident(*backend_, set);
  }
  return slot;
}

// T = X·U (count, J·r) for every example of `set`. A backend computing in host memory reads the
// images in place, in one product. A device's product reads them through the batch buffer x_, a
// batch of rows at a time, so the raw images (784 floats an example against J·r) are never all on
// the device at once: with them the projection would raise the run's peak instead of lowering it.
ResidentSet Run::project(const data::Dataset& set) {
  NvtxRange range("project inputs");
  const auto t0 = std::chrono::steady_clock::now();
  const int64_t k = set.features();
  ResidentSet p;
  p.host = &set;
  p.features = model_->projected_features();
  p.owned_images = backend_->allocate(static_cast<size_t>(set.count * p.features) * sizeof(float));
  p.images = p.owned_images.floats();
  if (backend_->shares_host_memory()) {
    p.labels = set.labels.data();
    model_->project_inputs(set.images.data(), set.count, p.owned_images.floats());
  } else {
    p.owned_labels = backend_->allocate(set.labels.size() * sizeof(int32_t));
    backend_->copy_to_device(p.owned_labels.data(), set.labels.data(), set.labels.size() * sizeof(int32_t));
    p.labels = static_cast<const int32_t*>(p.owned_labels.data());
    for (int64_t begin = 0; begin < set.count; begin += config_.batch_size) {
      const int64_t m = std::min(config_.batch_size, set.count - begin);  // x_ holds batch_size rows of K
      backend_->copy_to_device(x_.data(), set.images.data() + begin * k, static_cast<size_t>(m * k) * sizeof(float));
      model_->project_inputs(x_.floats(), m, p.owned_images.floats() + begin * p.features);
    }
  }
  backend_->synchronize();
  timings_["project_input"] = timings_.value("project_input", 0.0) + seconds_since(t0);
  return p;
}

const ResidentSet& Run::train_input() {
  if (!project_input_) return resident(train_set_, data_.train);
  if (!projected_train_.images) {
    train_set_ = ResidentSet{};  // the raw images, if pretraining uploaded them, are not read again
    projected_train_ = project(data_.train);  // from the host's copy
  }
  return projected_train_;
}

const ResidentSet& Run::test_input() {
  if (!project_input_) return resident(test_set_, data_.test);
  if (!projected_test_.images) projected_test_ = project(data_.test);
  return projected_test_;
}

void Run::shuffle(int64_t n, uint64_t seed, uint64_t epoch) {
  int32_t* order = static_cast<int32_t*>(order_buffer_.data());  // (n)
  if (config_.shuffle == "device") {
    backend_->shuffled_order(order, n, seed, rng_stream(RngStream::kShuffle, epoch));
    return;
  }
  set_order(data::epoch_permutation(n, seed, epoch));
}

void Run::set_order(const std::vector<int32_t>& order) {
  backend_->copy_to_device(order_buffer_.data(), order.data(), order.size() * sizeof(int32_t));
}

void Run::stage_batch(const ResidentSet& set, int64_t begin, int64_t m) {
  const int32_t* order = static_cast<const int32_t*>(order_buffer_.data()) + begin;
  backend_->gather_rows(set.images, order, m, set.features, x_.floats());
  backend_->gather_labels(set.labels, order, m, static_cast<int32_t*>(y_.data()));
}

std::string Run::kept_checkpoint_note() const {
  return !last_good_.empty() ? "the last good checkpoint (" + last_good_ + ") is kept in " +
                                   (out_ / kCheckpointFile).string()
                             : "no checkpoint was written";
}

void Run::log_metrics(const json& row) {
  std::ofstream out(out_ / kMetricsFile, std::ios::app);
  out << row.dump() << "\n";
}

json Run::stages_json() const {
  json stages = json::array();
  for (size_t k = 0; k < plan_.size(); ++k)
    stages.push_back({{"stage", plan_[k].name()}, {"layer", plan_[k].layer_name}, {"label", stage_label(plan_[k])},
                      {"status", outcome_name(outcomes_[k])}, {"seconds", stage_seconds_[k]}});
  return stages;
}

// train.gemm and train.small_gemm and what they did on cuda: the products cuBLASLt ran and fused,
// and the small fused products, counted as the host issued them (a captured step counts once).
json Run::gemm_summary() const {
  if (backend_->device() == Device::CPU)
    return {{"setting", config_.gemm}, {"small_gemm", config_.small_gemm}, {"fused_optimizer", config_.fused_optimizer},
            {"note", "the CPU runs its own GEMM"}};
  json out = {{"setting", config_.gemm}, {"small_gemm", config_.small_gemm}, {"fused_optimizer", config_.fused_optimizer}};
  const GemmCounts counts = backend_->gemm_counts();
  if (config_.gemm == "cublaslt" || config_.gemm == "cublaslt_one_kernel") {
    out["cublaslt_plain_products"] = counts.products;
    out["fused_epilogues"] = counts.fused_epilogues;
    out["declined_to_cublas"] = counts.declined;
  }
  if (config_.small_gemm == "on") out["small_gemm_products"] = counts.small_products;
  if (counts.tf32x3_products > 0 || config_.gemm == "tf32x3") out["tf32x3_products"] = counts.tf32x3_products;
  return out;
}

json Run::summary(double seconds) {
  json layers = json::array();
  // The paper counts the layers it predicts: every layer but the softmax output, which never is.
  int64_t learned_hidden = 0, dense_hidden = 0;
  const std::vector<LayerSummary> rows = model_->summary();
  for (size_t i = 0; i < rows.size(); ++i) {
    const LayerSummary& s = rows[i];
    layers.push_back({{"name", s.name}, {"type", s.type}, {"dictionary", s.dictionary}, {"strategy", s.strategy},
                      {"in", s.in}, {"out", s.out}, {"rank", s.rank}, {"columns", s.columns},
                      {"learned", s.learned}, {"predicted", s.predicted}, {"fixed", s.fixed},
                      {"dense_equivalent", s.dense_equivalent}});
    if (i + 1 < rows.size()) {
      learned_hidden += s.learned;
      dense_hidden += s.dense_equivalent;
    }
  }
  const ParameterStore& store = model_->store();
  const ActivationPlan& plan = graph_->plan();
  const int64_t f = sizeof(float);
  int64_t dense_total = 0;
  for (const LayerSummary& s : rows) dense_total += s.dense_equivalent;
  const int64_t activations = plan.arena_floats * f;
  json memory = {
      {"parameters_learned", store.learned_floats() * f},
      {"parameters_fixed", store.fixed_floats() * f},
      {"gradients", store.learned_floats() * f},
      {"optimizer_state", store.learned_floats() * f},
      {"activations", activations},
      {"activations_unplanned", plan.unplanned_floats * f},
      {"materialised_weights", plan.materialised_weight_floats * f},
      {"batch_staging", static_cast<int64_t>(x_.bytes() + y_.bytes())},
      {"data_resident", static_cast<int64_t>(train_set_.owned_images.bytes() + train_set_.owned_labels.bytes() +
                                             test_set_.owned_images.bytes() + test_set_.owned_labels.bytes() +
                                             projected_train_.owned_labels.bytes() +
                                             projected_test_.owned_labels.bytes() + order_buffer_.bytes())},
      {"data_projected", static_cast<int64_t>(projected_train_.owned_images.bytes() +
                                              projected_test_.owned_images.bytes())},
      {"total", (3 * store.learned_floats() + store.fixed_floats()) * f + activations},
      // A dense model of the same shape learns K·N + N per layer, with gradients and momentum.
      {"dense_equivalent_total", 3 * dense_total * f + activations},
      {"backend_peak_allocated", static_cast<int64_t>(backend_->peak_allocated_bytes())}};
  // The same model with every predicted layer materialised (W = U·V kept for backward, dW formed).
  const ActivationPlan materialised = model_->plan_if_materialised(*graph_);
  memory["if_materialise"] = {
      {"activations", materialised.arena_floats * f},
      {"materialised_weights", materialised.materialised_weight_floats * f},
      {"total", (3 * store.learned_floats() + store.fixed_floats()) * f + materialised.arena_floats * f}};
  // The libraries' workspaces: outside the account's total (a materialised or dense model needs
  // cuBLAS's too), said apart so that a memory comparison can see them.
  json workspaces = json::object();
  int64_t workspace_bytes = 0;
  for (const Backend::Workspace& w : backend_->workspaces()) {
    workspaces[w.library] = {{"bytes", w.bytes}, {"in_pool", w.in_allocator}};
    workspace_bytes += w.bytes;
  }
  memory["workspaces"] = workspace_bytes;
  memory["workspaces_by_library"] = workspaces;
  if (device_in_use_peak_ >= 0) memory["device_in_use_peak"] = device_in_use_peak_;
  if (project_input_) layers[0]["strategy"] = "projected";
  struct rusage usage {};
  getrusage(RUSAGE_SELF, &usage);
  memory["process_peak_rss"] = static_cast<int64_t>(usage.ru_maxrss) * 1024;
  return {{"name", config_.name},
          {"device", backend_->description()},
          {"dataset", config_.dataset},
          {"epochs", config_.epochs},
          {"steps", state_.step},
          {"pretrain_steps", state_.pretrain_steps},
          {"resumed", options_.resume},
          {"stages", stages_json()},
          {"test_error", test_error_},
          {"train_error", train_error_},
          {"test_loss", test_loss_},
          {"seconds", seconds},
          {"timings", timings_},
          {"layers", layers},
          {"learned_fraction_hidden", dense_hidden ? static_cast<double>(learned_hidden) / dense_hidden : 1.0},
          {"project_input", project_input_ ? json{{"layer", model_->layers().front().name},
                                                  {"features", model_->projected_features()},
                                                  {"of", data_.train.features()}}
                                           : json(nullptr)},
          {"memory_bytes", memory},
          {"gemm", gemm_summary()},
          // Whether this invocation's full training batches ran as one captured CUDA graph.
          {"cuda_graph", {{"setting", config_.cuda_graph},
                          {"captured", step_graph_ != nullptr},
                          {"replays", step_replays_},
                          {"note", !capture_note_.empty() ? capture_note_
                                   : step_graph_        ? "full batches replay the graph; the first and partial "
                                                          "batches ran directly"
                                                        : "no full batch after the first ran in this invocation"}}}};
}

void print_summary(const json& s) {
  std::printf("\n== %s: test error %.2f%% (train error %.2f%%) after %lld epochs on %s, %.1f s ==\n",
              s["name"].get<std::string>().c_str(), 100 * s["test_error"].get<double>(),
              100 * s["train_error"].get<double>(), static_cast<long long>(s["epochs"].get<int64_t>()),
              s["device"].get<std::string>().c_str(), s["seconds"].get<double>());
  std::printf("%-8s %-16s %-10s %-12s %9s %6s %4s %10s %10s %10s %8s\n", "layer", "type", "dictionary",
              "strategy", "shape", "rank", "J", "learned", "predicted", "fixed U", "learned%");
  for (const json& l : s["layers"]) {
    char shape[32];
    std::snprintf(shape, sizeof shape, "%lldx%lld", static_cast<long long>(l["in"].get<int64_t>()),
                  static_cast<long long>(l["out"].get<int64_t>()));
    std::printf("%-8s %-16s %-10s %-12s %9s %6lld %4lld %10lld %10lld %10lld %7.1f%%\n",
                l["name"].get<std::string>().c_str(), l["type"].get<std::string>().c_str(),
                l["dictionary"].get<std::string>().c_str(), l["strategy"].get<std::string>().c_str(), shape,
                static_cast<long long>(l["rank"].get<int64_t>()),
                static_cast<long long>(l["columns"].get<int64_t>()),
                static_cast<long long>(l["learned"].get<int64_t>()),
                static_cast<long long>(l["predicted"].get<int64_t>()),
                static_cast<long long>(l["fixed"].get<int64_t>()),
                100.0 * l["learned"].get<double>() / l["dense_equivalent"].get<double>());
  }
  std::string stages;
  for (const json& st : s["stages"])
    stages += (stages.empty() ? "" : ", ") + st["label"].get<std::string>() + " " + st["status"].get<std::string>();
  std::printf("stages in this invocation: %s\n", stages.c_str());
  std::printf("learned parameters of the hidden layers (all but the output layer): %.1f%% of the dense layers'\n",
              100 * s["learned_fraction_hidden"].get<double>());
  if (!s["project_input"].is_null())
    std::printf("%s reads T = X*U, computed once for the data set: %lld features per example instead of %lld "
                "(%.1f MiB, %.2f s); train.project_input = off batches X\n",
                s["project_input"]["layer"].get<std::string>().c_str(),
                static_cast<long long>(s["project_input"]["features"].get<int64_t>()),
                static_cast<long long>(s["project_input"]["of"].get<int64_t>()),
                s["memory_bytes"]["data_projected"].get<double>() / (1 << 20),
                s["timings"].value("project_input", 0.0));
  const json& m = s["memory_bytes"];
  auto mib = [&](const char* key) { return m[key].get<double>() / (1 << 20); };
  std::printf("memory (MiB): learned %.2f, fixed U %.2f, gradients %.2f, optimizer %.2f, "
              "activations %.2f (%.2f unplanned), materialised W %.2f; total %.2f vs dense "
              "equivalent %.2f; backend peak %.2f, process peak RSS %.1f\n",
              mib("parameters_learned"), mib("parameters_fixed"), mib("gradients"),
              mib("optimizer_state"), mib("activations"), mib("activations_unplanned"),
              mib("materialised_weights"), mib("total"), mib("dense_equivalent_total"),
              mib("backend_peak_allocated"), mib("process_peak_rss"));
  std::printf("with every predicted layer materialised: activation arena %.2f MiB (W and dW requests "
              "%.2f MiB before reuse), total %.2f MiB\n",
              m["if_materialise"]["activations"].get<double>() / (1 << 20),
              m["if_materialise"]["materialised_weights"].get<double>() / (1 << 20),
              m["if_materialise"]["total"].get<double>() / (1 << 20));
  if (m.value("workspaces", int64_t{0}) > 0) {
    std::string libraries;
    for (const auto& [library, w] : m["workspaces_by_library"].items()) {
      char size[32];
      std::snprintf(size, sizeof size, " %.2f", w["bytes"].get<double>() / (1 << 20));
      libraries += (libraries.empty() ? "" : ", ") + library + size + (w["in_pool"].get<bool>() ? " in the pool" : "");
    }
    std::printf("library workspaces (MiB): %.2f, outside the total above: %s\n", mib("workspaces"),
                libraries.c_str());
  }
  const json& g = s["cuda_graph"];
  if (g["captured"].get<bool>())
    std::printf("training step: captured as a CUDA graph, replayed %lld times (%s)\n",
                static_cast<long long>(g["replays"].get<int64_t>()), g["note"].get<std::string>().c_str());
  else
    std::printf("training step: not captured (%s)\n", g["note"].get<std::string>().c_str());
  if (m.contains("device_in_use_peak"))
    std::printf("device memory in use (cudaMemGetInfo, whole device): peak %.1f MiB\n", mib("device_in_use_peak"));
}

std::string Run::resolved_device() const {
  if (!options_.device.empty()) return options_.device;
  if (!options_.resume) return "auto";
  const std::string path = (out_ / kCheckpointFile).string();
  const ckpt::SafetensorsFile file = ckpt::read_safetensors_header(path);  // the tensors are read later
  const auto it = file.metadata.find("device");
  if (it == file.metadata.end()) return "auto";  // written before checkpoints named their device
  UV_REQUIRE(it->second == "cpu" || it->second == "cuda",
             "corrupt checkpoint " << path << ": metadata 'device' = '" << it->second << "' (expected cpu or cuda)");
  if (it->second == "cuda" && query_devices().cuda_devices == 0)
    UV_FAIL("--resume " << out_.string() << ": the run trained on cuda and this machine has no usable CUDA device ("
                        << query_devices().cuda_status
                        << "); pass --device cpu to continue it on the CPU (the results will then differ in the "
                           "last bits from an uninterrupted run)");
  std::fprintf(stderr, "uvtrain: resuming on %s, the device the run was on (--device overrides)\n", it->second.c_str());
  return it->second;
}

json Run::execute() {
  const auto t0 = std::chrono::steady_clock::now();
  out_ = options_.out_dir.empty() ? fs::path("runs") / (config_.name + "-" + timestamp()) : fs::path(options_.out_dir);
  if (options_.resume) {
    UV_REQUIRE(fs::exists(out_ / kCheckpointFile),
               "--resume " << out_.string() << ": no " << kCheckpointFile << " there");
  } else {
    // Never overwrite an earlier run's results.
    UV_REQUIRE(!fs::exists(out_ / kCheckpointFile) && !fs::exists(out_ / kMetricsFile),
               "--out " << out_.string() << " already holds a run; use --resume " << out_.string()
                        << " to continue it or choose another --out");
  }
  backend_ = make_backend(resolved_device());  // before creating anything: a bad --device leaves no trace
  backend_->set_gemm_library(parse_gemm_library(config_.gemm));
  backend_->set_small_gemm(config_.small_gemm == "on");
  std::error_code ec;
  fs::create_directories(out_, ec);
  UV_REQUIRE(!ec, "--out " << out_.string() << ": cannot create directory: " << ec.message());
  std::fprintf(stderr, "uvtrain %s: %s on %s, writing %s\n", UV_VERSION, config_.name.c_str(),
               backend_->description().c_str(), out_.string().c_str());
  load_data();
  if (!options_.resume) {
    std::ofstream(out_ / kConfigFile) << config_.resolved.dump(2) << "\n";
  }
  build_model();
  if (!run_stages()) {
    std::fprintf(stderr, "stopped after %lld optimiser steps (--max-steps) at %s; continue with --resume %s\n",
                 static_cast<long long>(state_.total_steps()), position_text().c_str(), out_.string().c_str());
    return {{"stopped_at_step", state_.total_steps()}, {"stage", plan_[state_.stage].name()},
            {"stages", stages_json()}};
  }
  if (std::isnan(test_error_)) {  // no epoch ran (e.g. resumed a finished run)
    test_error_ = evaluate(test_input(), &test_loss_);
  }
  json s = summary(seconds_since(t0));
  std::ofstream(out_ / kSummaryFile) << s.dump(2) << "\n";
  log_metrics({{"kind", "summary"}, {"test_error", test_error_}, {"steps", state_.step},
               {"pretrain_steps", state_.pretrain_steps}, {"stages", s["stages"]}});
  print_summary(s);
  return s;
}

}  // namespace

json train(const RunConfig& config, const TrainOptions& options) {
  Run run(config, options);
  return run.execute();
}

}  // namespace uv
