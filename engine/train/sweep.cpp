#include "engine/train/sweep.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <sstream>

#include "engine/backend/backend.h"
#include "engine/core/error.h"
#include "engine/train/config.h"
#include "engine/train/trainer.h"

extern char** environ;

namespace uv {

namespace fs = std::filesystem;
using nlohmann::json;
using nlohmann::ordered_json;

namespace {

constexpr const char* kLogFile = "log.txt";
constexpr const char* kResultsCsv = "results.csv";
constexpr const char* kResultsJsonl = "results.jsonl";
constexpr const char* kSweepRecord = "sweep.json";

// Layer types a pair may give a swept layer (maxpool has no weights to sweep).
const std::vector<std::string> kSweepLayerTypes = {"dense", "predicted_dense", "lowrank",
                                                   "conv", "predicted_conv", "lowrank_conv"};

// Pair and sweep names become directory names: letters, digits, '.', '_' and '-'.
bool is_plain_name(const std::string& name) {
  if (name.empty() || name == "." || name == "..") return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
  });
}

// The fraction as it appears in cell ids: 0.0255 → "0.0255", 1.0 → "1".
std::string fraction_text(double fraction) {
  char text[32];
  std::snprintf(text, sizeof text, "%g", fraction);
  return text;
}

std::string join(const std::vector<std::string>& words, const char* separator) {
  std::string out;
  for (const std::string& w : words) out += (out.empty() ? "" : separator) + w;
  return out;
}

std::string read_file(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// Writes through a temporary file and a rename, so a reader never sees half a table.
void write_atomically(const fs::path& path, const std::string& text) {
  const fs::path tmp = path.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << text;
    out.flush();
    UV_CHECK(out.good(), "cannot write " << tmp.string());
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  UV_CHECK(!ec, "cannot rename " << tmp.string() << " to " << path.string() << ": " << ec.message());
}

// A finished cell's summary, or nothing when the file is missing or was cut short.
std::optional<json> read_summary(const fs::path& cell_dir) {
  const fs::path path = cell_dir / kSummaryFile;
  if (!fs::exists(path)) return std::nullopt;
  try {
    json s = json::parse(read_file(path));
    if (s.is_object() && s.contains("test_error") && s.contains("layers")) return s;
  } catch (const json::exception&) {
  }
  return std::nullopt;
}

// ---- parsing ---------------------------------------------------------------------------------

class SweepParser {
 public:
  explicit SweepParser(const std::string& source) : source_(source) {}

  [[noreturn]] void fail(const std::string& field, const std::string& what) const {
    UV_FAIL("sweep " << source_ << ": '" << field << "' " << what);
  }

  const ordered_json& array_field(const ordered_json& root, const char* key, bool required) const {
    static const ordered_json empty = ordered_json::array();
    if (!root.contains(key)) {
      if (required) UV_FAIL("sweep " << source_ << ": '" << key << "' is missing");
      return empty;
    }
    const ordered_json& v = root.at(key);
    if (!v.is_array()) fail(key, "must be an array, got " + v.dump());
    return v;
  }

 private:
  std::string source_;
};

}  // namespace

SweepConfig parse_sweep_config(const std::string& text, const std::string& source) {
  const SweepParser p(source);
  ordered_json root;
  try {
    root = ordered_json::parse(text, nullptr, true, /*ignore_comments=*/true);
  } catch (const ordered_json::parse_error& e) {
    UV_FAIL("sweep " << source << ": not valid JSON: " << e.what());
  }
  UV_REQUIRE(root.is_object(), "sweep " << source << ": must be a JSON object");
  static const std::set<std::string> kKeys = {"name", "base", "set", "pairs", "layers", "columns", "fractions", "seeds"};
  for (auto it = root.begin(); it != root.end(); ++it)
    UV_REQUIRE(kKeys.count(it.key()), "sweep " << source << ": unknown key '" << it.key() << "' (expected one of "
                                               << "name, base, set, pairs, layers, columns, fractions, seeds)");

  SweepConfig s;
  s.source = source;
  s.name = fs::path(source).stem().string();
  if (root.contains("name")) {
    if (!root["name"].is_string()) p.fail("name", "must be a string");
    s.name = root["name"].get<std::string>();
  }
  if (!is_plain_name(s.name))
    p.fail("name", "= \"" + s.name + "\" must be a non-empty word of letters, digits, '.', '_' and '-'");

  // base: a run config, relative to the sweep file's directory (so a sweep runs from any directory).
  UV_REQUIRE(root.contains("base"), "sweep " << source << ": 'base' is missing (the run config every cell starts from)");
  if (!root["base"].is_string()) p.fail("base", "must be a string (a run config's path)");
  const fs::path base_written = root["base"].get<std::string>();
  const fs::path base = base_written.is_absolute() ? base_written
                                                   : (fs::path(source).parent_path() / base_written).lexically_normal();
  s.base = base.string();
  if (!fs::is_regular_file(base))
    p.fail("base", "= \"" + base_written.string() + "\": no such file " + base.string() +
                       " (a relative base is read from the sweep file's directory)");

  for (size_t i = 0; i < p.array_field(root, "set", false).size(); ++i) {
    const ordered_json& o = root["set"][i];
    const std::string field = "set[" + std::to_string(i) + "]";
    if (!o.is_string() || o.get<std::string>().find('=') == std::string::npos)
      p.fail(field, "must be a \"key=value\" string, got " + o.dump());
    s.set.push_back(o.get<std::string>());
  }

  // Grid axes.
  const ordered_json& layers = p.array_field(root, "layers", true);
  if (layers.empty()) p.fail("layers", "is empty: name the model.layers indices the pairs set");
  for (size_t i = 0; i < layers.size(); ++i) {
    const std::string field = "layers[" + std::to_string(i) + "]";
    if (!layers[i].is_number_integer() || layers[i].get<int64_t>() < 0)
      p.fail(field, "= " + layers[i].dump() + " must be a model.layers index (an integer >= 0)");
    const int64_t index = layers[i].get<int64_t>();
    if (std::count(s.layers.begin(), s.layers.end(), index)) p.fail(field, "= " + std::to_string(index) + " is listed twice");
    s.layers.push_back(index);
  }
  for (size_t i = 0; i < p.array_field(root, "columns", false).size(); ++i) {
    const ordered_json& v = root["columns"][i];
    const std::string field = "columns[" + std::to_string(i) + "]";
    if (!v.is_number_integer() || v.get<int64_t>() < 1) p.fail(field, "= " + v.dump() + " must be an integer >= 1");
    if (std::count(s.columns.begin(), s.columns.end(), v.get<int64_t>())) p.fail(field, "= " + v.dump() + " is listed twice");
    s.columns.push_back(v.get<int64_t>());
  }
  std::set<std::string> fraction_ids;
  for (size_t i = 0; i < p.array_field(root, "fractions", false).size(); ++i) {
    const ordered_json& v = root["fractions"][i];
    const std::string field = "fractions[" + std::to_string(i) + "]";
    if (!v.is_number() || !(v.get<double>() > 0.0 && v.get<double>() <= 1.0))
      p.fail(field, "= " + v.dump() + " is outside (0, 1]");
    if (!fraction_ids.insert(fraction_text(v.get<double>())).second)
      p.fail(field, "= " + v.dump() + " is listed twice (cell ids keep 6 significant digits)");
    s.fractions.push_back(v.get<double>());
  }
  const ordered_json& seeds = p.array_field(root, "seeds", true);
  if (seeds.empty()) p.fail("seeds", "is empty: the grid has no cells");
  for (size_t i = 0; i < seeds.size(); ++i) {
    const std::string field = "seeds[" + std::to_string(i) + "]";
    if (!seeds[i].is_number_integer() || seeds[i].get<int64_t>() < 0)
      p.fail(field, "= " + seeds[i].dump() + " must be an integer >= 0");
    const uint64_t seed = seeds[i].get<uint64_t>();
    if (std::count(s.seeds.begin(), s.seeds.end(), seed)) p.fail(field, "= " + seeds[i].dump() + " is listed twice");
    s.seeds.push_back(seed);
  }

  // Pairs.
  UV_REQUIRE(root.contains("pairs"), "sweep " << source << ": 'pairs' is missing");
  const ordered_json& pairs = root["pairs"];
  if (!pairs.is_object()) p.fail("pairs", "must be an object (pair name -> {\"layers\": [...]})");
  if (pairs.empty()) p.fail("pairs", "is empty: the grid has no cells");
  for (auto it = pairs.begin(); it != pairs.end(); ++it) {
    const std::string at = "pairs." + it.key();
    if (!is_plain_name(it.key()))
      p.fail(at, "is not a usable pair name: letters, digits, '.', '_' and '-' only (it names directories)");
    const ordered_json& pj = it.value();
    if (!pj.is_object()) p.fail(at, "must be an object with 'layers'");
    for (auto k = pj.begin(); k != pj.end(); ++k)
      if (k.key() != "layers" && k.key() != "fraction_free" && k.key() != "columns_free")
        UV_FAIL("sweep " << source << ": unknown key '" << at << "." << k.key()
                         << "' (expected layers, fraction_free, columns_free)");
    SweepPair pair;
    pair.name = it.key();
    for (const char* flag : {"fraction_free", "columns_free"}) {
      if (!pj.contains(flag)) continue;
      if (!pj[flag].is_boolean()) p.fail(at + "." + flag, "must be true or false");
      (std::strcmp(flag, "fraction_free") == 0 ? pair.fraction_free : pair.columns_free) = pj[flag].get<bool>();
    }
    if (!pj.contains("layers") || !pj["layers"].is_array())
      p.fail(at + ".layers", "must be an array of layer settings, one per entry of 'layers'");
    const ordered_json& pl = pj["layers"];
    if (pl.size() != s.layers.size())
      p.fail(at + ".layers", "has " + std::to_string(pl.size()) + " entries but 'layers' names " +
                                 std::to_string(s.layers.size()));
    for (size_t i = 0; i < pl.size(); ++i) {
      const std::string lat = at + ".layers[" + std::to_string(i) + "]";
      if (!pl[i].is_object()) p.fail(lat, "must be an object of layer fields");
      if (!pl[i].contains("type") || !pl[i]["type"].is_string())
        p.fail(lat + ".type", "is missing (a pair names each layer's type)");
      const std::string type = pl[i]["type"].get<std::string>();
      if (std::find(kSweepLayerTypes.begin(), kSweepLayerTypes.end(), type) == kSweepLayerTypes.end())
        p.fail(lat + ".type", "= \"" + type + "\" is not one of " + join(kSweepLayerTypes, ", "));
      if (!pair.fraction_free && pl[i].contains("fraction"))
        p.fail(lat + ".fraction", "is the grid's ('fractions'); set fraction_free to fix it per pair");
      if (!pair.fraction_free && !pair.columns_free && pl[i].contains("columns"))
        p.fail(lat + ".columns", "is the grid's ('columns'); set columns_free to fix it per pair");
      pair.layers.push_back(json::parse(pl[i].dump()));  // distinct fields: their order does not matter
    }
    s.pairs.push_back(pair);
  }
  const bool uses_fractions = std::any_of(s.pairs.begin(), s.pairs.end(), [](const SweepPair& q) { return !q.fraction_free; });
  const bool uses_columns = std::any_of(s.pairs.begin(), s.pairs.end(),
                                        [](const SweepPair& q) { return !q.fraction_free && !q.columns_free; });
  if (uses_fractions && s.fractions.empty()) p.fail("fractions", "is missing or empty: the grid has no cells");
  if (uses_columns && s.columns.empty()) p.fail("columns", "is missing or empty: the grid has no cells");

  // The base config with the sweep's overrides, then every cell's run config.
  const std::string base_text = read_file(base);
  RunConfig base_config;
  try {
    base_config = parse_config(base_text, s.base, s.set);
  } catch (const UserError& e) {
    UV_FAIL("sweep " << source << ": 'base' with 'set': " << e.what());
  }
  for (size_t i = 0; i < s.layers.size(); ++i)
    if (s.layers[i] >= static_cast<int64_t>(base_config.layers.size()))
      p.fail("layers[" + std::to_string(i) + "]", "= " + std::to_string(s.layers[i]) + " is past the base config's " +
                                                     std::to_string(base_config.layers.size()) + " layers");
  for (const SweepCell& cell : sweep_cells(s)) {
    try {
      parse_config(base_text, s.base, cell.overrides);
    } catch (const UserError& e) {
      UV_FAIL("sweep " << source << ": cell " << cell.id << " ('pairs." << cell.pair << "'): " << e.what());
    }
  }
  return s;
}

SweepConfig load_sweep_config(const std::string& path) {
  std::ifstream in(path);
  UV_REQUIRE(in.good(), "sweep " << path << ": cannot open file");
  std::stringstream text;
  text << in.rdbuf();
  return parse_sweep_config(text.str(), path);
}

std::vector<SweepCell> sweep_cells(const SweepConfig& sweep) {
  std::vector<SweepCell> cells;
  for (const uint64_t seed : sweep.seeds) {
    for (const SweepPair& pair : sweep.pairs) {
      const std::vector<int64_t> columns = pair.fraction_free || pair.columns_free ? std::vector<int64_t>{0} : sweep.columns;
      const std::vector<double> fractions = pair.fraction_free ? std::vector<double>{0.0} : sweep.fractions;
      for (const int64_t j : columns) {
        for (const double fraction : fractions) {
          SweepCell cell;
          cell.pair = pair.name;
          cell.columns = j;
          cell.fraction = fraction;
          cell.seed = seed;
          cell.id = pair.name + (j > 0 ? "_J" + std::to_string(j) : "") +
                    (fraction > 0 ? "_f" + fraction_text(fraction) : "") + "_s" + std::to_string(seed);
          cell.overrides = sweep.set;
          for (size_t k = 0; k < sweep.layers.size(); ++k) {
            const std::string at = "model.layers[" + std::to_string(sweep.layers[k]) + "].";
            for (const auto& field : pair.layers[k].items()) cell.overrides.push_back(at + field.key() + "=" + field.value().dump());
            if (fraction > 0) cell.overrides.push_back(at + "fraction=" + json(fraction).dump());
            if (j > 0) cell.overrides.push_back(at + "columns=" + std::to_string(j));
          }
          cell.overrides.push_back("seed=" + std::to_string(seed));
          cell.overrides.push_back("name=" + json(sweep.name + "_" + cell.id).dump());
          cells.push_back(cell);
        }
      }
    }
  }
  return cells;
}

// ---- running -----------------------------------------------------------------------------------

int default_sweep_jobs() {
  const long cores = sysconf(_SC_NPROCESSORS_ONLN);
  return static_cast<int>(std::max(1L, cores / 2));
}

namespace {

std::string now_text() {
  const std::time_t t = std::time(nullptr);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%d %H:%M:%S", std::localtime(&t));
  return text;
}

// The last line of a failed cell's log that says what went wrong ("uvtrain: error: ...").
std::string last_error_line(const fs::path& log) {
  std::istringstream lines(read_file(log));
  std::string line, found;
  while (std::getline(lines, line))
    if (line.find("error") != std::string::npos) found = line;
  return found;
}

struct RunningCell {
  size_t index = 0;  // into the grid
  bool resumed = false;
  std::chrono::steady_clock::time_point started;
};

// `argv[0]` with stdout and stderr appended to `log`, stdin from /dev/null, and `environment`.
pid_t spawn(const std::vector<std::string>& argv, const fs::path& log, const std::vector<std::string>& environment) {
  std::vector<char*> args, env;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  for (const std::string& e : environment) env.push_back(const_cast<char*>(e.c_str()));
  env.push_back(nullptr);
  const std::string log_path = log.string();
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, args[0], &actions, nullptr, args.data(), env.data());
  posix_spawn_file_actions_destroy(&actions);
  UV_CHECK(rc == 0, "cannot start " << argv[0] << ": " << std::strerror(rc));
  return pid;
}

// A summary's number; NaN where the file has null (a resumed run that had already finished has no
// train error of its own: the checkpoint does not keep it).
double number_or_nan(const json& summary, const char* key) {
  const auto it = summary.find(key);
  return it != summary.end() && it->is_number() ? it->get<double>() : std::nan("");
}

std::string csv_field(const std::string& text) {
  if (text.find_first_of(",\"\n") == std::string::npos) return text;
  std::string quoted = "\"";
  for (char c : text) quoted += c == '"' ? std::string("\"\"") : std::string(1, c);
  return quoted + "\"";
}

std::string number_text(double value) {
  if (std::isnan(value)) return "";  // an empty CSV field, null in the JSON lines
  char text[40];
  std::snprintf(text, sizeof text, "%.10g", value);
  return text;
}

}  // namespace

int64_t write_sweep_results(const SweepConfig& sweep, const std::vector<SweepCell>& cells, const std::string& out_dir) {
  static const char* kHeader =
      "sweep,pair,columns,fraction,seed,learned_fraction,learned_params,predicted_params,"
      "train_error,test_error,seconds,device,cell_dir\n";
  std::string csv = kHeader, jsonl;
  int64_t rows = 0;
  for (const SweepCell& cell : cells) {
    const fs::path dir = fs::path(out_dir) / "cells" / cell.id;
    const std::optional<json> summary = read_summary(dir);
    if (!summary) continue;
    int64_t learned = 0, predicted = 0;  // over every layer, the output layer included
    for (const json& l : summary->at("layers")) {
      learned += l.at("learned").get<int64_t>();
      predicted += l.at("predicted").get<int64_t>();
    }
    ordered_json row;
    row["sweep"] = sweep.name;
    row["pair"] = cell.pair;
    row["columns"] = cell.columns > 0 ? ordered_json(cell.columns) : ordered_json(nullptr);
    row["fraction"] = cell.fraction > 0 ? ordered_json(cell.fraction) : ordered_json(nullptr);
    row["seed"] = cell.seed;
    row["learned_fraction"] = number_or_nan(*summary, "learned_fraction_hidden");
    row["learned_params"] = learned;
    row["predicted_params"] = predicted;
    row["train_error"] = number_or_nan(*summary, "train_error");
    row["test_error"] = number_or_nan(*summary, "test_error");
    row["seconds"] = number_or_nan(*summary, "seconds");
    row["device"] = summary->value("device", "");
    row["cell_dir"] = dir.string();
    jsonl += row.dump() + "\n";
    const std::vector<std::string> fields = {
        sweep.name, cell.pair, cell.columns > 0 ? std::to_string(cell.columns) : "",
        cell.fraction > 0 ? number_text(cell.fraction) : "", std::to_string(cell.seed),
        number_text(number_or_nan(*summary, "learned_fraction_hidden")), std::to_string(learned),
        std::to_string(predicted), number_text(number_or_nan(*summary, "train_error")),
        number_text(number_or_nan(*summary, "test_error")), number_text(number_or_nan(*summary, "seconds")),
        row["device"].get<std::string>(), dir.string()};
    std::string line;
    for (const std::string& f : fields) line += (line.empty() ? "" : ",") + csv_field(f);
    csv += line + "\n";
    ++rows;
  }
  write_atomically(fs::path(out_dir) / kResultsCsv, csv);
  write_atomically(fs::path(out_dir) / kResultsJsonl, jsonl);
  return rows;
}

void add_sweep_overrides(SweepConfig& sweep, const std::vector<std::string>& overrides) {
  if (overrides.empty()) return;
  sweep.set.insert(sweep.set.end(), overrides.begin(), overrides.end());
  const std::string base_text = read_file(sweep.base);
  try {
    for (const SweepCell& cell : sweep_cells(sweep)) parse_config(base_text, sweep.base, cell.overrides);
  } catch (const UserError& e) {
    UV_FAIL("uvtrain sweep --set: " << e.what());
  }
}

SweepReport run_sweep(const SweepConfig& sweep, const SweepOptions& options) {
  UV_CHECK(!options.executable.empty(), "run_sweep needs the uvtrain executable");
  UV_REQUIRE(options.jobs >= 0, "--jobs " << options.jobs << " must be >= 1");
  if (options.device == "cuda") {  // refused once, before any cell, not in every cell's log
    const DeviceReport devices = query_devices();
    UV_REQUIRE(devices.cuda_devices > 0, "--device cuda: no usable CUDA device (" << devices.cuda_status
                                                                                  << "); use --device cpu or auto");
  }
  SweepReport report;
  report.out_dir = options.out_dir.empty() ? (fs::path("runs") / ("sweep-" + sweep.name)).string() : options.out_dir;
  const fs::path out = report.out_dir;
  std::vector<SweepCell> cells = sweep_cells(sweep);
  const size_t grid = cells.size();
  if (options.max_cells >= 0 && static_cast<size_t>(options.max_cells) < cells.size()) cells.resize(options.max_cells);
  report.cells = static_cast<int64_t>(cells.size());
  const std::string of_grid = cells.size() < grid ? " (the first of the grid's " + std::to_string(grid) + ", --max-cells)" : "";

  std::error_code ec;
  fs::create_directories(out / "cells", ec);
  UV_REQUIRE(!ec, "--out " << out.string() << ": cannot create directory: " << ec.message());
  // What this directory holds a sweep of (rewritten on every call).
  ordered_json record = {{"name", sweep.name}, {"source", sweep.source}, {"base", sweep.base}, {"set", sweep.set},
                         {"layers", sweep.layers}, {"columns", sweep.columns}, {"fractions", sweep.fractions},
                         {"seeds", sweep.seeds}, {"pairs", ordered_json::object()}};
  for (const SweepPair& pair : sweep.pairs)
    record["pairs"][pair.name] = {{"layers", pair.layers}, {"fraction_free", pair.fraction_free},
                                  {"columns_free", pair.columns_free}};
  write_atomically(out / kSweepRecord, record.dump(2) + "\n");

  // Sort the grid into finished, to resume (a checkpoint but no summary) and to run.
  std::vector<RunningCell> todo;
  int64_t to_resume = 0;
  for (size_t i = 0; i < cells.size(); ++i) {
    const fs::path dir = out / "cells" / cells[i].id;
    if (read_summary(dir)) {
      ++report.skipped;
      continue;
    }
    RunningCell r;
    r.index = i;
    r.resumed = fs::exists(dir / kCheckpointFile);
    to_resume += r.resumed;
    todo.push_back(r);
  }
  const long cores = std::max(1L, sysconf(_SC_NPROCESSORS_ONLN));
  const int jobs = std::max(1, std::min<int>(options.jobs > 0 ? options.jobs : default_sweep_jobs(),
                                             static_cast<int>(std::max<size_t>(1, todo.size()))));
  const long blas_threads = std::max(1L, cores / jobs);
  if (todo.empty()) {
    std::printf("sweep %s: all %lld cells%s already finished (skipped); rewriting the results\n", sweep.name.c_str(),
                static_cast<long long>(report.cells), of_grid.c_str());
  } else {
    std::printf("sweep %s: %lld cells%s: %lld already finished (skipped), %lld to resume, %lld to run; "
                "%d at a time, OPENBLAS_NUM_THREADS=%ld; writing %s\n",
                sweep.name.c_str(), static_cast<long long>(report.cells), of_grid.c_str(), static_cast<long long>(report.skipped),
                static_cast<long long>(to_resume), static_cast<long long>(todo.size() - to_resume), jobs, blas_threads,
                out.string().c_str());
  }
  std::fflush(stdout);

  // Every child gets this process's environment with its share of the cores for OpenBLAS.
  std::vector<std::string> environment;
  for (char** e = environ; *e != nullptr; ++e)
    if (std::strncmp(*e, "OPENBLAS_NUM_THREADS=", 21) != 0) environment.emplace_back(*e);
  environment.push_back("OPENBLAS_NUM_THREADS=" + std::to_string(blas_threads));
  const std::string base = fs::absolute(sweep.base).string();

  std::map<pid_t, RunningCell> running;
  std::vector<std::string> failures;
  size_t next = 0, done = 0;
  const int width = static_cast<int>(std::to_string(todo.size()).size());
  while (next < todo.size() || !running.empty()) {
    while (static_cast<int>(running.size()) < jobs && next < todo.size()) {
      RunningCell r = todo[next++];
      const SweepCell& cell = cells[r.index];
      const fs::path dir = out / "cells" / cell.id;
      fs::create_directories(dir, ec);
      UV_REQUIRE(!ec, "--out " << out.string() << ": cannot create " << dir.string() << ": " << ec.message());
      std::vector<std::string> argv = {options.executable, "train"};
      if (r.resumed) {
        argv.insert(argv.end(), {"--resume", dir.string()});
      } else {
        // A failed earlier attempt that left no checkpoint left nothing to keep but its log.
        fs::remove(dir / kConfigFile, ec);
        fs::remove(dir / kMetricsFile, ec);
        argv.insert(argv.end(), {"--config", base});
        for (const std::string& o : cell.overrides) argv.insert(argv.end(), {"--set", o});
        argv.insert(argv.end(), {"--out", dir.string()});
      }
      argv.insert(argv.end(), {"--device", options.device});
      {
        std::ofstream log(dir / kLogFile, std::ios::app);
        std::string command;
        for (const std::string& a : argv) command += (command.empty() ? "" : " ") + a;
        log << "== uvtrain sweep " << sweep.name << ", cell " << cell.id << ", " << now_text()
            << ", OPENBLAS_NUM_THREADS=" << blas_threads << ": " << command << "\n";
      }
      r.started = std::chrono::steady_clock::now();
      running[spawn(argv, dir / kLogFile, environment)] = r;
    }
    int status = 0;
    const pid_t pid = waitpid(-1, &status, 0);
    if (pid < 0) {
      UV_CHECK(errno == EINTR, "waitpid: " << std::strerror(errno));
      continue;
    }
    const auto it = running.find(pid);
    if (it == running.end()) continue;  // not a cell
    const RunningCell r = it->second;
    running.erase(it);
    const SweepCell& cell = cells[r.index];
    const fs::path dir = out / "cells" / cell.id;
    const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - r.started).count();
    ++done;
    const std::optional<json> summary = read_summary(dir);
    const bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0 && summary;
    if (ok) {
      ++report.finished;
      std::printf("[%*zu/%zu] %s%s: test error %.2f%%, train error %.2f%%, learned %.1f%%, %.1f s\n", width, done,
                  todo.size(), cell.id.c_str(), r.resumed ? " (resumed)" : "", 100 * number_or_nan(*summary, "test_error"),
                  100 * number_or_nan(*summary, "train_error"),
                  100 * number_or_nan(*summary, "learned_fraction_hidden"), wall);
    } else {
      ++report.failed;
      const std::string how = !WIFEXITED(status) ? "killed by signal " + std::to_string(WTERMSIG(status))
                              : WEXITSTATUS(status) != 0 ? "exit code " + std::to_string(WEXITSTATUS(status))
                                                         : "exit code 0 but no summary.json";
      const std::string log = (dir / kLogFile).string();
      const std::string error = last_error_line(dir / kLogFile);
      std::printf("[%*zu/%zu] %s: FAILED (%s)%s%s; log: %s\n", width, done, todo.size(), cell.id.c_str(), how.c_str(),
                  error.empty() ? "" : ": ", error.c_str(), log.c_str());
      failures.push_back(cell.id + ": " + log);
    }
    std::fflush(stdout);
  }

  const int64_t rows = write_sweep_results(sweep, cells, out.string());
  std::printf("sweep %s: %lld of %lld cells finished (%lld this time, %lld skipped), %lld failed; results: %s (%lld rows), %s\n",
              sweep.name.c_str(), static_cast<long long>(rows), static_cast<long long>(report.cells),
              static_cast<long long>(report.finished), static_cast<long long>(report.skipped),
              static_cast<long long>(report.failed), (out / kResultsCsv).string().c_str(), static_cast<long long>(rows),
              (out / kResultsJsonl).string().c_str());
  for (const std::string& f : failures) std::printf("  failed %s\n", f.c_str());
  std::fflush(stdout);
  return report;
}

}  // namespace uv
