// Helpers for tests that drive the `uvtrain` binary (UV_CLI_PATH): run it and capture its output,
// check exit codes and messages, and write a small synthetic MNIST-layout data set.
#pragma once

#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include "engine/data/idx.h"

namespace uv::test {

namespace fs = std::filesystem;
using Bytes = std::vector<uint8_t>;

inline constexpr int kCliTrainCount = 300;  // 6 batches of 50
inline constexpr int kCliTestCount = 100;
inline constexpr int kCliSide = 28;

inline std::string cli_path() { return UV_CLI_PATH; }

inline Bytes read_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

inline std::string read_text(const fs::path& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

inline void write_bytes(const fs::path& path, const Bytes& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(out.good()) << path;
}

inline void write_text(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::trunc);
  out << text;
  ASSERT_TRUE(out.good()) << path;
}

// Single quotes for /bin/sh: ' becomes '\''.
inline std::string shell_quote(const std::string& word) {
  std::string quoted = "'";
  for (char c : word) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return quoted + "'";
}

struct CliResult {
  int exit_code = -1;  // -1: killed by a signal
  std::string output;  // stdout and stderr together
};

// Runs a /bin/sh command line, its stderr with its stdout.
inline CliResult run_shell(const std::string& command_line) {
  const std::string command = command_line + " 2>&1";
  CliResult result;
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) {
    ADD_FAILURE() << "popen failed for: " << command;
    return result;
  }
  char buffer[4096];
  for (size_t got; (got = std::fread(buffer, 1, sizeof buffer, pipe)) > 0;) result.output.append(buffer, got);
  const int status = ::pclose(pipe);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

inline CliResult run_cli(const std::vector<std::string>& args) {
  std::string command = shell_quote(cli_path());
  for (const std::string& arg : args) command += " " + shell_quote(arg);
  return run_shell(command);
}

// Exit code 2, the "uvtrain: error: " line, and every piece of `expected` somewhere in the message.
inline ::testing::AssertionResult is_user_error(const CliResult& result, const std::vector<std::string>& expected) {
  if (result.exit_code != 2)
    return ::testing::AssertionFailure() << "exit code " << result.exit_code << ", expected 2; output:\n"
                                         << result.output;
  if (result.output.find("uvtrain: error: ") == std::string::npos)
    return ::testing::AssertionFailure() << "no 'uvtrain: error: ' line in:\n" << result.output;
  for (const std::string& piece : expected)
    if (result.output.find(piece) == std::string::npos)
      return ::testing::AssertionFailure() << "the message does not contain \"" << piece << "\":\n"
                                           << result.output;
  return ::testing::AssertionSuccess();
}

inline ::testing::AssertionResult succeeded(const CliResult& result) {
  if (result.exit_code == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "exit code " << result.exit_code << ", expected 0; output:\n"
                                       << result.output;
}

// A learnable synthetic digit set: class c is a bright 5x5 block at one of ten places (two rows of
// five), on uniform noise. Fixed seed: these tests check messages and bits, not statistics.
inline void write_synthetic_mnist(const fs::path& dir, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> noise(0, 60), label_dist(0, 9);
  auto write_pair = [&](const std::string& images_name, const std::string& labels_name, uint32_t count) {
    uv::data::IdxArray images, labels;
    images.dims = {count, kCliSide, kCliSide};
    labels.dims = {count};
    images.values.resize(static_cast<size_t>(count) * kCliSide * kCliSide);
    labels.values.resize(count);
    for (uint32_t i = 0; i < count; ++i) {
      const int label = label_dist(rng);
      labels.values[i] = static_cast<uint8_t>(label);
      uint8_t* image = images.values.data() + static_cast<size_t>(i) * kCliSide * kCliSide;
      for (int p = 0; p < kCliSide * kCliSide; ++p) image[p] = static_cast<uint8_t>(noise(rng));
      const int row0 = (label / 5) * 14 + 4, col0 = (label % 5) * 5 + 1;
      for (int r = row0; r < row0 + 5; ++r)
        for (int c = col0; c < col0 + 5; ++c) image[r * kCliSide + c] = 255;
    }
    uv::data::write_idx((dir / images_name).string(), images, uv::data::IdxCompression::kRaw);
    uv::data::write_idx((dir / labels_name).string(), labels, uv::data::IdxCompression::kRaw);
  };
  write_pair("train-images-idx3-ubyte", "train-labels-idx1-ubyte", kCliTrainCount);
  write_pair("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", kCliTestCount);
}

}  // namespace uv::test
