// The supervised training step's changing values, kept in backend memory: a step then reads no
// host value that changes from one step to the next (what CUDA graph capture needs: a captured
// step is replayed with the arguments it was recorded with) and returns nothing to the host (no
// synchronisation per step). The trainer writes it where an epoch (or a resumed run) starts and
// reads it back at log intervals, checkpoints and the epoch's end. Plain data, the same layout on
// the host and the device.
#pragma once

#include <cstdint>

namespace uv {

struct StepState {
  int64_t begin = 0;      // the batch's first position in the epoch's order of examples
  // The rate of the next step, divided by lr_decay after every step. Double, as the host's schedule
  // has always been (TrainState::lr, saved with %.17g): the float an update uses is
  // static_cast<float>(lr) on every backend, bit for bit what the host computed before.
  double lr = 0.0;
  // Σ over the steps since the last reset of each batch's summed loss, and the batch's argmax hits.
  // Double, added once per batch in step order: exactly the host's sum before the state moved to
  // the device, so printed and logged losses keep their bits (Kahan would change them, and over a
  // million batches a double's rounding stays below 1e-10 relative, far under the printed digits).
  double loss_sum = 0.0;
  int64_t correct = 0;
};
static_assert(sizeof(StepState) == 32, "StepState is copied between host and device as 32 bytes");

}  // namespace uv
