// Training progress on stderr: a redrawn bar on a terminal, plain lines otherwise (logs, CI).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <utility>

namespace uv {

class Progress {
 public:
  Progress(std::string stage, int64_t epochs, int64_t steps_per_epoch, int64_t batch_size,
           int64_t plain_every_steps);
  // Called after every step with running means over the epoch so far.
  void step(int64_t epoch, int64_t step_in_epoch, double loss, double accuracy);
  // The same with the means (loss, accuracy) fetched only when this step draws or prints a line:
  // training keeps them on the device and reads them back only when they are shown.
  void step(int64_t epoch, int64_t step_in_epoch, const std::function<std::pair<double, double>()>& means);
  void end_epoch(const std::string& line);  // finishes the bar and prints the epoch's line
  double samples_per_second() const;

 private:
  std::string stage_;
  int64_t epochs_, steps_per_epoch_, batch_size_, plain_every_;
  bool tty_;
  std::chrono::steady_clock::time_point start_, last_draw_;
  int64_t steps_done_ = 0;
};

std::string format_duration(double seconds);

}  // namespace uv
