// `uvtrain sweep`: a grid of training runs (pair × columns J × fraction × seed) from a sweep config
// (sweeps/*.json), each cell its own `uvtrain train` process writing OUT/cells/<cell id>/, and the
// finished cells gathered into OUT/results.csv and OUT/results.jsonl. Resumable: a cell with a
// summary is skipped, a cell with a checkpoint but no summary continues with `--resume`.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace uv {

// One named way of predicting the swept layers ("SE-Emp": layer 1 SE, layer 2 Emp).
struct SweepPair {
  std::string name;                    // cell ids, the results' `pair` column, the figures' legend
  std::vector<nlohmann::json> layers;  // per swept layer: the layer fields it sets (type, dictionary, ...)
  bool fraction_free = false;          // ignores fraction and columns (dense): one cell per seed
  bool columns_free = false;           // ignores columns (LowRank): one cell per fraction and seed
};

struct SweepConfig {
  std::string name;    // "name", or the sweep file's stem
  std::string source;  // the sweep file, for messages
  std::string base;    // the run config, resolved against the sweep file's directory
  std::vector<std::string> set;  // overrides applied to every cell (`train --set` syntax)
  std::vector<SweepPair> pairs;
  std::vector<int64_t> layers;   // indices into the base config's model.layers
  std::vector<int64_t> columns;  // J
  std::vector<double> fractions;
  std::vector<uint64_t> seeds;
};

// One training run of the grid.
struct SweepCell {
  std::string id;      // its directory under OUT/cells/: SE-Emp_J5_f0.134_s2, LowRank_f0.134_s2, Dense_s2
  std::string pair;
  int64_t columns = 0;    // 0: the pair ignores J
  double fraction = 0.0;  // 0: the pair ignores the fraction
  uint64_t seed = 1;
  std::vector<std::string> overrides;  // `train --set` arguments: the sweep's `set`, then the cell's
};

// Parses and validates a sweep config: every field, the base config, and every cell's resolved run
// config (so a bad cell stops the sweep before anything runs). Errors are UserErrors naming
// `source` and the field.
SweepConfig parse_sweep_config(const std::string& text, const std::string& source);
SweepConfig load_sweep_config(const std::string& path);
// `uvtrain sweep --set`: appended to the sweep's `set` (so every cell started gets them after the
// sweep's own), checked once against the base config; UserError naming the flag and the field.
void add_sweep_overrides(SweepConfig& sweep, const std::vector<std::string>& overrides);

// The grid in run order: seeds outermost (a partial sweep has whole seeds first), then pairs in the
// file's order, columns, fractions. Pairs that ignore J or the fraction get one cell where the
// others get several.
std::vector<SweepCell> sweep_cells(const SweepConfig& sweep);

struct SweepOptions {
  std::string executable;  // the uvtrain binary each cell runs (main passes /proc/self/exe)
  std::string out_dir;     // empty → runs/sweep-<name>
  std::string device = "auto";
  int jobs = 0;            // cells at once; 0 → default_sweep_jobs()
  int64_t max_cells = -1;  // only the grid's first max_cells cells; −1 → all
};

// One cell per two cores (a cell's OpenBLAS GEMMs still use two threads), at least one.
int default_sweep_jobs();

struct SweepReport {
  std::string out_dir;
  int64_t cells = 0;     // in the grid (after max_cells)
  int64_t skipped = 0;   // already finished before this call
  int64_t finished = 0;  // finished by this call
  int64_t failed = 0;    // exited non-zero in this call
};

// Runs every unfinished cell, prints a line per finished or failed cell, and (re)writes
// OUT/results.csv and OUT/results.jsonl from every finished cell of the grid.
SweepReport run_sweep(const SweepConfig& sweep, const SweepOptions& options);

// Rewrites OUT/results.csv and OUT/results.jsonl from the cells of `cells` whose summary.json
// exists; returns the number of rows.
int64_t write_sweep_results(const SweepConfig& sweep, const std::vector<SweepCell>& cells,
                            const std::string& out_dir);

}  // namespace uv
