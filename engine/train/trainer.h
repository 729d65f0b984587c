// `uvtrain train`: data, model, dictionaries, optional layer-wise pretraining, supervised training
// with checkpoints, and the final summary with the memory account.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "engine/train/config.h"

namespace uv {

struct TrainOptions {
  std::string device = "auto";  // auto | cpu | cuda
  std::string out_dir;          // empty → runs/<name>-<timestamp>
  bool resume = false;          // continue the run in out_dir from its checkpoint
  int64_t max_steps = -1;       // stop after this many optimiser steps in total (checkpoint kept)
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
