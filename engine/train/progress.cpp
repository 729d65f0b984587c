#include "engine/train/progress.h"

#include <unistd.h>

#include <cstdio>

namespace uv {

std::string format_duration(double seconds) {
  const int64_t s = static_cast<int64_t>(seconds + 0.5);
  char text[32];
  if (s >= 3600)
    std::snprintf(text, sizeof text, "%lld:%02lld:%02lld", static_cast<long long>(s / 3600),
                  static_cast<long long>(s / 60 % 60), static_cast<long long>(s % 60));
  else
    std::snprintf(text, sizeof text, "%lld:%02lld", static_cast<long long>(s / 60),
                  static_cast<long long>(s % 60));
  return text;
}

Progress::Progress(std::string stage, int64_t epochs, int64_t steps_per_epoch, int64_t batch_size,
                   int64_t plain_every_steps)
    : stage_(std::move(stage)),
      epochs_(epochs),
      steps_per_epoch_(steps_per_epoch),
      batch_size_(batch_size),
      plain_every_(plain_every_steps),
      tty_(isatty(STDERR_FILENO) == 1),
      start_(std::chrono::steady_clock::now()),
      last_draw_(start_) {}

double Progress::samples_per_second() const {
  const double elapsed =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  return elapsed > 0 ? steps_done_ * batch_size_ / elapsed : 0.0;
}

void Progress::step(int64_t epoch, int64_t step_in_epoch, double loss, double accuracy) {
  step(epoch, step_in_epoch, [&] { return std::make_pair(loss, accuracy); });
}

void Progress::step(int64_t epoch, int64_t step_in_epoch, const std::function<std::pair<double, double>()>& means) {
  ++steps_done_;
  const auto now = std::chrono::steady_clock::now();
  const double elapsed = std::chrono::duration<double>(now - start_).count();
  const int64_t total = epochs_ * steps_per_epoch_;
  const int64_t done = epoch * steps_per_epoch_ + step_in_epoch;
  const int64_t remaining_steps = total - done;
  const double eta = steps_done_ ? elapsed / steps_done_ * remaining_steps : 0.0;
  const bool draw = tty_ ? std::chrono::duration<double>(now - last_draw_).count() >= 0.1 ||
                              step_in_epoch == steps_per_epoch_  // redraw at most ten times a second
                        : step_in_epoch % plain_every_ == 0;
  if (!draw) return;
  const auto [loss, accuracy] = means();
  char acc[32] = "";
  if (accuracy >= 0) std::snprintf(acc, sizeof acc, " acc %5.1f%%", 100.0 * accuracy);
  if (tty_) {
    last_draw_ = now;
    constexpr int kWidth = 24;
    const int filled = static_cast<int>(kWidth * step_in_epoch / std::max<int64_t>(1, steps_per_epoch_));
    std::string bar(static_cast<size_t>(filled), '=');
    if (filled < kWidth) bar += '>';
    bar.resize(kWidth, ' ');
    std::fprintf(stderr, "\r%s epoch %lld/%lld [%s] %lld/%lld loss %.4f%s %.0f samples/s ETA %s \x1b[K",
                 stage_.c_str(), static_cast<long long>(epoch + 1), static_cast<long long>(epochs_),
                 bar.c_str(), static_cast<long long>(step_in_epoch),
                 static_cast<long long>(steps_per_epoch_), loss, acc, samples_per_second(),
                 format_duration(eta).c_str());
  } else {
    std::fprintf(stderr, "%s epoch %lld/%lld step %lld/%lld loss %.4f%s %.0f samples/s ETA %s\n",
                 stage_.c_str(), static_cast<long long>(epoch + 1), static_cast<long long>(epochs_),
                 static_cast<long long>(step_in_epoch), static_cast<long long>(steps_per_epoch_), loss,
                 acc, samples_per_second(), format_duration(eta).c_str());
  }
}

void Progress::end_epoch(const std::string& line) {
  if (tty_) std::fprintf(stderr, "\r\x1b[K");
  std::fprintf(stderr, "%s\n", line.c_str());
}

}  // namespace uv
