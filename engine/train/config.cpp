#include "engine/train/config.h"

#include <algorithm>
#include <fstream>
#include <sstream>

#include "engine/backend/backend.h"
#include "engine/core/error.h"
#include "engine/data/dataset.h"

namespace uv {

using nlohmann::json;

json default_config() {
  return json::parse(R"({
    "name": "run",
    "seed": 1,
    "data": {"dataset": "mnist", "dir": "", "train_limit": 0, "test_limit": 0, "emp_samples": 10000,
             "shuffle": "host"},
    "model": {"layers": []},
    "train": {"epochs": 20, "batch_size": 100, "lr": 0.1, "momentum": 0.9, "weight_decay": 0.0,
              "lr_decay": 1.0, "max_col_norm": 0.0, "project_input": "auto",
              "cuda_graph": "auto", "gemm": "cublaslt", "small_gemm": "off",
              "fused_optimizer": "off"},
    "pretrain": {"epochs": 0, "lr": 0.1, "momentum": 0.7},
    "checkpoint": {"every_steps": 0},
    "log": {"every_steps": 100}
  })");
}

static json default_layer() {
  return json::parse(R"({
    "type": "dense", "units": 0, "activation": "", "dictionary": "se", "fraction": 0.1,
    "rank": 0, "columns": 1, "length_scale": 2.0, "ridge": "auto", "dictionary_precision": "float32",
    "strategy": "auto",
    "pretrain": false, "init_scale": 0.1, "kernel": 0, "stride": 1, "padding": 0,
    "ae_atoms": 1000, "ae_epochs": 50, "ae_lr": 0.1, "ae_momentum": 0.7
  })");
}

namespace {

const char* type_name(const json& v) {
  if (v.is_boolean()) return "a boolean";
  if (v.is_number()) return "a number";
  if (v.is_string()) return "a string";
  if (v.is_array()) return "an array";
  if (v.is_object()) return "an object";
  return "null";
}

// Checks `user` against `defaults` (unknown keys, types) and returns defaults overlaid by user.
json merge_checked(const json& defaults, const json& user, const std::string& path,
                   const std::string& source) {
  if (defaults.is_object()) {
    UV_REQUIRE(user.is_object(), "config " << source << ": '" << path << "' must be an object, got "
                                           << type_name(user));
    json out = defaults;
    for (auto it = user.begin(); it != user.end(); ++it) {
      const std::string key = path.empty() ? it.key() : path + "." + it.key();
      UV_REQUIRE(defaults.contains(it.key()), "config " << source << ": unknown key '" << key << "'");
      out[it.key()] = merge_checked(defaults[it.key()], it.value(), key, source);
    }
    return out;
  }
  if (path == "model.layers") {
    UV_REQUIRE(user.is_array(), "config " << source << ": 'model.layers' must be an array");
    json out = json::array();
    for (size_t i = 0; i < user.size(); ++i)
      out.push_back(merge_checked(default_layer(), user[i], path + "[" + std::to_string(i) + "]", source));
    return out;
  }
  // Convolution padding is a number of pixels, or "same".
  const std::string padding_suffix = ".padding";
  if (path.size() > padding_suffix.size() &&
      path.compare(path.size() - padding_suffix.size(), padding_suffix.size(), padding_suffix) == 0) {
    UV_REQUIRE((user.is_number_integer() && user.get<int64_t>() >= 0) || user == "same",
               "config " << source << ": '" << path << "' must be a whole number of pixels >= 0 or \"same\"");
    return user;
  }
  // λ is a number, or "auto" for the dictionary's own default.
  const std::string ridge_suffix = ".ridge";
  if (path.size() > ridge_suffix.size() &&
      path.compare(path.size() - ridge_suffix.size(), ridge_suffix.size(), ridge_suffix) == 0) {
    UV_REQUIRE(user.is_number() || user == "auto",
               "config " << source << ": '" << path << "' must be a number or \"auto\"");
    return user;
  }
  const bool same = (defaults.is_number() && user.is_number()) ||
                    (defaults.is_string() && user.is_string()) ||
                    (defaults.is_boolean() && user.is_boolean());
  UV_REQUIRE(same, "config " << source << ": '" << path << "' must be " << type_name(defaults)
                             << ", got " << user.dump());
  return user;
}

// "train.lr=0.05", "model.layers.0.fraction=0.2" or "model.layers[0].fraction=0.2".
void apply_override(json& config, const std::string& assignment) {
  const size_t eq = assignment.find('=');
  UV_REQUIRE(eq != std::string::npos && eq > 0,
             "--set: expected key=value, got '" << assignment << "'");
  std::string key = assignment.substr(0, eq);
  const std::string text = assignment.substr(eq + 1);
  for (char& c : key)
    if (c == '[' || c == ']') c = '.';
  json value;
  try {
    value = json::parse(text);
  } catch (const json::parse_error&) {
    value = text;  // a bare word is a string
  }
  json* node = &config;
  std::stringstream parts(key);
  std::string part, walked;
  std::vector<std::string> names;
  while (std::getline(parts, part, '.'))
    if (!part.empty()) names.push_back(part);
  UV_REQUIRE(!names.empty(), "--set: empty key in '" << assignment << "'");
  for (size_t i = 0; i < names.size(); ++i) {
    const std::string& name = names[i];
    walked += (walked.empty() ? "" : ".") + name;
    const bool last = i + 1 == names.size();
    if (node->is_array()) {
      size_t index = 0;
      try {
        index = std::stoul(name);
      } catch (const std::exception&) {
        UV_FAIL("--set " << key << ": '" << name << "' is not an index into " << walked);
      }
      UV_REQUIRE(index < node->size(), "--set " << key << ": index " << index
                                               << " is past the end (" << node->size() << " entries)");
      node = &(*node)[index];
    } else {
      UV_REQUIRE(node->is_object(), "--set " << key << ": '" << walked << "' is not an object");
      if (!node->contains(name)) {
        UV_REQUIRE(last, "--set " << key << ": unknown key '" << walked << "'");
      }
      node = &(*node)[name];
    }
    if (last) *node = value;
  }
}

template <typename T>
T get(const json& j, const char* key) {
  return j.at(key).get<T>();
}

}  // namespace

RunConfig parse_config(const std::string& text, const std::string& source,
                       const std::vector<std::string>& overrides) {
  json user;
  try {
    user = json::parse(text, nullptr, true, /*ignore_comments=*/true);
  } catch (const json::parse_error& e) {
    UV_FAIL("config " << source << ": not valid JSON: " << e.what());
  }
  // A section the file leaves to its defaults still takes overrides (--set log.every_steps=1).
  const json defaults = default_config();
  if (user.is_object())
    for (const auto& section : defaults.items())
      if (section.value().is_object() && !user.contains(section.key())) user[section.key()] = json::object();
  for (const std::string& o : overrides) apply_override(user, o);
  const json c = merge_checked(defaults, user, "", source);

  RunConfig r;
  r.source = source;
  r.resolved = c;
  auto fail_range = [&](const std::string& field, const json& value, const char* range) {
    UV_FAIL("config " << source << ": '" << field << "' = " << value.dump() << " is outside " << range);
  };
  auto positive_int = [&](const json& obj, const char* key, const std::string& path) {
    const json& v = obj.at(key);
    if (!v.is_number_integer() || v.get<int64_t>() < 1) fail_range(path, v, "the integers ≥ 1");
    return v.get<int64_t>();
  };
  auto nonneg_int = [&](const json& obj, const char* key, const std::string& path) {
    const json& v = obj.at(key);
    if (!v.is_number_integer() || v.get<int64_t>() < 0) fail_range(path, v, "the integers ≥ 0");
    return v.get<int64_t>();
  };
  auto number_in = [&](const json& obj, const char* key, const std::string& path, double lo,
                       double hi, bool lo_open, const char* range) {
    const double v = obj.at(key).get<double>();
    if (!(lo_open ? v > lo : v >= lo) || !(v <= hi)) fail_range(path, obj.at(key), range);
    return v;
  };
  constexpr double kInf = 1e300;

  r.name = get<std::string>(c, "name");
  UV_REQUIRE(!r.name.empty() && r.name.find('/') == std::string::npos,
             "config " << source << ": 'name' must be a non-empty word without '/'");
  r.seed = static_cast<uint64_t>(nonneg_int(c, "seed", "seed"));
  const json& d = c["data"];
  r.dataset = get<std::string>(d, "dataset");
  UV_REQUIRE(data::is_dataset_name(r.dataset),
             "config " << source << ": 'data.dataset' = \"" << r.dataset << "\" is not one of "
                       << data::kDatasetNames);
  r.data_dir = get<std::string>(d, "dir");
  r.train_limit = nonneg_int(d, "train_limit", "data.train_limit");
  r.test_limit = nonneg_int(d, "test_limit", "data.test_limit");
  r.emp_samples = positive_int(d, "emp_samples", "data.emp_samples");
  r.shuffle = get<std::string>(d, "shuffle");
  UV_REQUIRE(r.shuffle == "host" || r.shuffle == "device",
             "config " << source << ": 'data.shuffle' = \"" << r.shuffle << "\" is not one of host, device");

  const json& t = c["train"];
  r.epochs = nonneg_int(t, "epochs", "train.epochs");
  r.batch_size = positive_int(t, "batch_size", "train.batch_size");
  r.lr = number_in(t, "lr", "train.lr", 0, kInf, true, "(0, inf)");
  r.momentum = number_in(t, "momentum", "train.momentum", 0, 1, false, "[0, 1]");
  r.weight_decay = number_in(t, "weight_decay", "train.weight_decay", 0, kInf, false, "[0, inf)");
  r.lr_decay = number_in(t, "lr_decay", "train.lr_decay", 0, kInf, true, "(0, inf)");
  r.max_col_norm = number_in(t, "max_col_norm", "train.max_col_norm", 0, kInf, false, "[0, inf)");
  r.project_input = get<std::string>(t, "project_input");
  UV_REQUIRE(r.project_input == "auto" || r.project_input == "on" || r.project_input == "off",
             "config " << source << ": 'train.project_input' = \"" << r.project_input
                       << "\" is not one of auto, on, off");
  r.gemm = get<std::string>(t, "gemm");
  UV_REQUIRE(is_gemm_library(r.gemm),
             "config " << source << ": 'train.gemm' = \"" << r.gemm << "\" is not one of " << gemm_library_names());
  r.small_gemm = get<std::string>(t, "small_gemm");
  UV_REQUIRE(r.small_gemm == "on" || r.small_gemm == "off",
             "config " << source << ": 'train.small_gemm' = \"" << r.small_gemm << "\" is not one of on, off");
  r.fused_optimizer = get<std::string>(t, "fused_optimizer");
  UV_REQUIRE(r.fused_optimizer == "on" || r.fused_optimizer == "off",
             "config " << source << ": 'train.fused_optimizer' = \"" << r.fused_optimizer << "\" is not one of on, off");
  r.cuda_graph = get<std::string>(t, "cuda_graph");
  UV_REQUIRE(r.cuda_graph == "auto" || r.cuda_graph == "off",
             "config " << source << ": 'train.cuda_graph' = \"" << r.cuda_graph << "\" is not one of auto, off");
  const json& p = c["pretrain"];
  r.pretrain_epochs = nonneg_int(p, "epochs", "pretrain.epochs");
  r.pretrain_lr = number_in(p, "lr", "pretrain.lr", 0, kInf, true, "(0, inf)");
  r.pretrain_momentum = number_in(p, "momentum", "pretrain.momentum", 0, 1, false, "[0, 1]");
  r.checkpoint_every_steps = nonneg_int(c["checkpoint"], "every_steps", "checkpoint.every_steps");
  r.log_every_steps = positive_int(c["log"], "every_steps", "log.every_steps");

  const json& layers = c["model"]["layers"];
  UV_REQUIRE(!layers.empty(), "config " << source << ": 'model.layers' is empty");
  for (size_t i = 0; i < layers.size(); ++i) {
    const json& l = layers[i];
    const std::string at = "model.layers[" + std::to_string(i) + "].";
    LayerConfig lc;
    lc.type = get<std::string>(l, "type");
    UV_REQUIRE(lc.type == "dense" || lc.type == "predicted_dense" || lc.type == "lowrank" || lc.type == "conv" ||
                   lc.type == "predicted_conv" || lc.type == "lowrank_conv" || lc.type == "maxpool",
               "config " << source << ": '" << at << "type' = \"" << lc.type
                         << "\" is not one of dense, predicted_dense, lowrank, conv, predicted_conv, lowrank_conv, maxpool");
    const bool pool = lc.type == "maxpool", conv = lc.is_conv();
    // Pooling has no units: its output channels are its input's.
    lc.units = pool ? nonneg_int(l, "units", at + "units") : positive_int(l, "units", at + "units");
    UV_REQUIRE(!pool || lc.units == 0, "config " << source << ": '" << at << "units' is not used by maxpool; remove it");
    lc.activation = get<std::string>(l, "activation");
    // Unset: sigmoid for the paper's fully connected layers, ReLU for its conv layers (spec section 5).
    if (lc.activation.empty()) lc.activation = pool ? "identity" : (conv ? "relu" : "sigmoid");
    UV_REQUIRE(!pool || lc.activation == "identity",
               "config " << source << ": '" << at << "activation' = \"" << lc.activation << "\": maxpool takes none");
    lc.kernel = nonneg_int(l, "kernel", at + "kernel");
    UV_REQUIRE(!(pool || conv) || lc.kernel >= 1,
               "config " << source << ": '" << at << "kernel' must be >= 1 for " << lc.type << " (the window is kernel x kernel)");
    lc.stride = positive_int(l, "stride", at + "stride");
    const json& padding = l.at("padding");
    lc.padding = padding.is_string() ? -1 : padding.get<int64_t>();
    UV_REQUIRE(lc.padding >= -1, "config " << source << ": '" << at << "padding' must be >= 0 or \"same\"");
    lc.dictionary = get<std::string>(l, "dictionary");
    lc.fraction = number_in(l, "fraction", at + "fraction", 0, 1, true, "(0, 1]");
    lc.rank = nonneg_int(l, "rank", at + "rank");
    lc.columns = positive_int(l, "columns", at + "columns");
    lc.length_scale = number_in(l, "length_scale", at + "length_scale", 0, kInf, true, "(0, inf)");
    if (l.at("ridge").is_number()) {
      lc.ridge = number_in(l, "ridge", at + "ridge", 0, kInf, false, "[0, inf)");
    } else {  // the code's defaults: λ = 0.1 for SE, 1e-3 for the empirical kernels
      lc.ridge = (lc.dictionary == "emp" || lc.dictionary == "emp2") ? 1e-3 : 0.1;
    }
    lc.strategy = get<std::string>(l, "strategy");
    auto one_of = [&](const std::string& field, const std::string& value,
                      std::initializer_list<const char*> names) {
      std::string list;
      for (const char* name : names) {
        if (value == name) return;
        list += (list.empty() ? "" : ", ") + std::string(name);
      }
      UV_FAIL("config " << source << ": '" << at << field << "' = \"" << value
                        << "\" is not one of " << list);
    };
    one_of("activation", lc.activation, {"sigmoid", "tanh", "relu", "identity"});
    one_of("dictionary", lc.dictionary, {"se", "emp", "emp2", "randkernel", "randfixu", "randcon", "dct", "ae"});
    lc.dictionary_precision = get<std::string>(l, "dictionary_precision");
    one_of("dictionary_precision", lc.dictionary_precision, {"float32", "tf32"});
    lc.ae_atoms = positive_int(l, "ae_atoms", at + "ae_atoms");
    lc.ae_epochs = positive_int(l, "ae_epochs", at + "ae_epochs");
    lc.ae_lr = number_in(l, "ae_lr", at + "ae_lr", 0, kInf, true, "(0, inf)");
    lc.ae_momentum = number_in(l, "ae_momentum", at + "ae_momentum", 0, 1, false, "[0, 1]");
    one_of("strategy", lc.strategy, {"auto", "materialise", "chain", "chain_fused", "onthefly_w"});
    lc.pretrain = get<bool>(l, "pretrain");
    lc.init_scale = number_in(l, "init_scale", at + "init_scale", 0, kInf, true, "(0, inf)");
    UV_REQUIRE(pool || lc.units % lc.columns == 0, "config " << source << ": '" << at << "units' = "
                                                     << lc.units << " is not divisible by columns = "
                                                     << lc.columns);
    r.layers.push_back(lc);
  }
  // Pretraining epochs with no layer to pretrain would silently do nothing.
  const bool any_pretrained = std::any_of(r.layers.begin(), r.layers.end(), [](const LayerConfig& l) { return l.pretrain; });
  UV_REQUIRE(r.pretrain_epochs == 0 || any_pretrained,
             "config " << source << ": 'pretrain.epochs' = " << r.pretrain_epochs
                       << " but no layer has \"pretrain\": true (set model.layers[i].pretrain, or pretrain.epochs = 0)");
  return r;
}

RunConfig load_config(const std::string& path, const std::vector<std::string>& overrides) {
  std::ifstream in(path);
  UV_REQUIRE(in.good(), "config " << path << ": cannot open file");
  std::stringstream text;
  text << in.rdbuf();
  return parse_config(text.str(), path, overrides);
}

}  // namespace uv
