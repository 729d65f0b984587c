// `uvtrain train`: data, model, then the pipeline's stages (init; per layer its dictionary and its
// optional autoencoder pretraining; supervised training), each ending with a checkpoint a resumed
// run continues from, and the final summary with the memory account.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "engine/train/config.h"

namespace uv {

struct TrainOptions {
  // auto | cpu | cuda; empty: auto for a new run, and for --resume the device the run was on (its
  // checkpoint's "device"), so that a resumed run continues bit for bit as it would have.
  std::string device = "auto";
  std::string out_dir;          // empty → runs/<name>-<timestamp>
  bool resume = false;          // continue the run in out_dir from its checkpoint, in whatever stage
  // Stop once this many optimiser steps, pretraining's and training's together, have been taken
  // (checkpoint kept; a step that ends a pretraining stage stops after the stage's checkpoint).
  int64_t max_steps = -1;
};

// Runs (or resumes) a training run; returns the summary also written to out_dir/summary.json, or,
// when options.max_steps stopped it first, {"stopped_at_step": N} (resume it with resume = true).
nlohmann::json train(const RunConfig& config, const TrainOptions& options);

// File names inside a run directory.
inline constexpr const char* kCheckpointFile = "checkpoint.safetensors";
inline constexpr const char* kConfigFile = "config.json";
inline constexpr const char* kMetricsFile = "metrics.jsonl";
inline constexpr const char* kSummaryFile = "summary.json";

}  // namespace uv
