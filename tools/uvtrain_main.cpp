// uvtrain command line: `uvtrain train ...`, `uvtrain sweep ...`, `uvtrain rica ...` and `uvtrain info`. Only main()
// decides exit codes: 0 success, 1 internal error, 2 bad input (config, flags, data, checkpoint,
// device), 3 a sweep ran but some of its cells failed.
#include <cblas.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include "engine/backend/backend.h"
#include "engine/core/error.h"
#include "engine/rica/rica.h"
#include "engine/train/config.h"
#include "engine/train/sweep.h"
#include "engine/train/trainer.h"

namespace {

int run_info() {
  const uv::DeviceReport report = uv::query_devices();
  std::printf("uvtrain %s (%s build)\n", UV_VERSION, UV_BUILD_TYPE);
  std::printf("cpu backend: %s, %d threads\n", openblas_get_config(), openblas_get_num_threads());
#ifdef UV_WITH_CUDA
  std::printf("cuda: built for sm_%s; %d device(s): %s\n", UV_CUDA_ARCHS, report.cuda_devices,
              report.cuda_status.c_str());
  std::printf("cudnn: %s\n", report.cudnn.c_str());
#else
  std::printf("cuda: %s\n", report.cuda_status.c_str());
#endif
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"uvtrain: train networks whose weights W = U·V are mostly predicted"};
  app.require_subcommand(1);

  std::string config_path, device = "auto", out_dir, resume_dir;
  std::vector<std::string> overrides;
  int64_t epochs = -1;
  CLI::App* train = app.add_subcommand("train", "train a model from a JSON config");
  train->add_option("--config", config_path, "model/run config (models/*.json)")->check(CLI::ExistingFile);
  train->add_option("--set", overrides, "override a config field: key=value (dotted path)")
      ->allow_extra_args(false);
  train->add_option("--device", device, "auto | cpu | cuda (--resume: the run's own device unless given)")
      ->check(CLI::IsMember({"auto", "cpu", "cuda"}));
  train->add_option("--epochs", epochs, "number of supervised epochs (overrides train.epochs)")
      ->check(CLI::NonNegativeNumber);
  train->add_option("--out", out_dir, "run directory (default runs/<name>-<time>)");
  int64_t max_steps = -1;
  train->add_option("--max-steps", max_steps,
                    "stop after this many optimiser steps in all, keeping a checkpoint to --resume from")
      ->check(CLI::NonNegativeNumber);
  train->add_option("--resume", resume_dir, "continue the run in this directory");
  CLI::App* sweep = app.add_subcommand("sweep", "run a grid of training runs from a sweep config (sweeps/*.json)");
  std::string sweep_path, sweep_device = "auto", sweep_out;
  int jobs = 0;
  int64_t max_cells = -1;
  sweep->add_option("--config", sweep_path, "sweep config (sweeps/*.json)")->required()->check(CLI::ExistingFile);
  sweep->add_option("--jobs", jobs, "cells run at once (default: one per two cores, here " +
                                        std::to_string(uv::default_sweep_jobs()) + ")")
      ->check(CLI::PositiveNumber);
  sweep->add_option("--device", sweep_device, "auto | cpu | cuda, for every cell")
      ->check(CLI::IsMember({"auto", "cpu", "cuda"}));
  sweep->add_option("--out", sweep_out, "sweep directory (default runs/sweep-<name>)");
  sweep->add_option("--max-cells", max_cells, "run only the grid's first K cells")->check(CLI::NonNegativeNumber);
  std::vector<std::string> sweep_overrides;
  sweep->add_option("--set", sweep_overrides,
                    "override a config field of every cell it starts: key=value, after the sweep's own 'set' "
                    "and before the cell's own pair, J, fraction and seed (e.g. train.small_gemm=on on a GPU; "
                    "resumed cells keep their config)");
  bool collect = false;
  sweep->add_flag("--collect", collect,
                  "run nothing: rewrite results.csv/jsonl from the cells finished so far (safe while the sweep runs)");
  CLI::App* rica = app.add_subcommand(
      "rica", "reconstruction ICA on image patches, filters learned or predicted from an SE dictionary (CPU, float64)");
  uv::rica::ExperimentOptions rica_options;
  std::string rica_fractions = "1,0.5,0.25";
  bool rica_no_equal = false;
  rica->add_option("--dataset", rica_options.dataset, "mnist | fashion_mnist | cifar10 | stl10")
      ->capture_default_str();
  rica->add_option("--data-dir", rica_options.data_dir, "data directory (default: the dataset's usual place)");
  rica->add_option("--patch", rica_options.patch, "patch side p (p x p x channels)")->capture_default_str();
  rica->add_option("--features", rica_options.features, "filters k")->capture_default_str();
  rica->add_option("--fractions", rica_fractions, "fractions learned, comma-separated, each in (0, 1]")
      ->capture_default_str();
  rica->add_flag("--no-equal-learned", rica_no_equal,
                 "skip the settings with features/f filters at each fraction f < 1 (as many learned numbers "
                 "as --features dense filters)");
  rica->add_option("--columns", rica_options.columns, "dictionary columns J (each its own alpha)")
      ->capture_default_str();
  rica->add_option("--train-patches", rica_options.train_patches, "patches drawn from the training images")
      ->capture_default_str();
  rica->add_option("--test-patches", rica_options.test_patches, "held-out patches drawn from the test images")
      ->capture_default_str();
  rica->add_option("--min-patch-std", rica_options.min_patch_std, "redraw patches flatter than this pixel std")
      ->capture_default_str();
  rica->add_option("--zca-epsilon", rica_options.zca_epsilon, "ZCA regulariser added to the eigenvalues")
      ->capture_default_str();
  rica->add_option("--lambda", rica_options.rica.lambda, "sparsity weight")->capture_default_str();
  rica->add_option("--l1-epsilon", rica_options.rica.l1_epsilon, "epsilon of g(u) = sqrt(u^2 + epsilon)")
      ->capture_default_str();
  rica->add_option("--length-scale", rica_options.length_scale, "SE length scale in pixels")->capture_default_str();
  rica->add_option("--ridge", rica_options.ridge, "kernel-ridge lambda of the SE dictionary")->capture_default_str();
  rica->add_option("--max-iterations", rica_options.max_iterations, "L-BFGS iterations per setting")
      ->capture_default_str();
  rica->add_option("--seed", rica_options.seed, "seed of patches, alpha and initial parameters")->capture_default_str();
  rica->add_option("--out", rica_options.out_dir, "output directory (default runs/rica-<time>)");
  CLI::App* info = app.add_subcommand("info", "devices and build options");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == static_cast<int>(CLI::ExitCodes::Success)) return app.exit(e);  // --help
    std::fprintf(stderr, "uvtrain: error: %s (see uvtrain --help)\n", e.what());
    return 2;
  }

  try {
    if (info->parsed()) return run_info();
    if (rica->parsed()) {
      rica_options.fractions.clear();
      std::stringstream list(rica_fractions);
      for (std::string item; std::getline(list, item, ',');) {
        size_t used = 0;
        double value = 0.0;
        try {
          value = std::stod(item, &used);
        } catch (const std::exception&) {
          used = 0;
        }
        UV_REQUIRE(used > 0 && used == item.size(), "--fractions: '" << item << "' is not a number");
        rica_options.fractions.push_back(value);
      }
      rica_options.equal_learned = !rica_no_equal;
      uv::rica::run_experiment(rica_options);
      return 0;
    }
    if (sweep->parsed()) {
      uv::SweepConfig config = uv::load_sweep_config(sweep_path);
      uv::add_sweep_overrides(config, sweep_overrides);
      uv::SweepOptions options;
      options.executable = std::filesystem::read_symlink("/proc/self/exe").string();
      options.out_dir = sweep_out;
      options.device = sweep_device;
      options.jobs = jobs;
      options.max_cells = max_cells;
      if (collect) {
        const std::string out = sweep_out.empty() ? "runs/sweep-" + config.name : sweep_out;
        UV_REQUIRE(std::filesystem::is_directory(out), "--collect: no sweep directory " << out);
        const int64_t rows = uv::write_sweep_results(config, uv::sweep_cells(config), out);
        std::printf("sweep %s: %lld of %zu cells finished; results: %s/results.csv\n", config.name.c_str(),
                    static_cast<long long>(rows), uv::sweep_cells(config).size(), out.c_str());
        return 0;
      }
      const uv::SweepReport report = uv::run_sweep(config, options);
      return report.failed > 0 ? 3 : 0;
    }
    uv::TrainOptions options;
    // A resumed run continues on its own device unless --device names one.
    options.device = !resume_dir.empty() && train->count("--device") == 0 ? "" : device;
    options.max_steps = max_steps;
    if (!resume_dir.empty()) {
      UV_REQUIRE(out_dir.empty() || out_dir == resume_dir, "--resume and --out name different directories");
      options.resume = true;
      options.out_dir = resume_dir;
      if (config_path.empty()) config_path = (std::filesystem::path(resume_dir) / uv::kConfigFile).string();
      UV_REQUIRE(std::filesystem::exists(config_path), "--resume " << resume_dir << ": no " << uv::kConfigFile << " there");
    } else {
      UV_REQUIRE(!config_path.empty(), "train: --config FILE is required (or --resume DIR)");
      options.out_dir = out_dir;
    }
    if (epochs >= 0) overrides.push_back("train.epochs=" + std::to_string(epochs));
    const uv::RunConfig config = uv::load_config(config_path, overrides);
    uv::train(config, options);
    return 0;
  } catch (const uv::UserError& e) {
    std::fprintf(stderr, "\nuvtrain: error: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "\nuvtrain: internal error: %s\n", e.what());
    return 1;
  }
}
