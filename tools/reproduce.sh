#!/usr/bin/env bash
# Regenerates docs/reproduction.md's figures and tables from the sweeps: it runs (or resumes) the
# three sweeps, then draws the figures into docs/ and prints the tables. Every sweep is resumable,
# so an interrupted run continues where it stopped; cells already finished are not rerun.
#
#   tools/reproduce.sh                 # all three sweeps, then the figures and tables
#   tools/reproduce.sh --plots-only    # no training: figures and tables from what has finished
#   tools/reproduce.sh --jobs 2 --device cpu
#
# Sweeps: sweeps/mnist_mlp_10pct.json (every pair at 10% learned, 60 cells), mnist_mlp_dense.json
# (the unbounded dense baseline, 3), mnist_mlp_pipeline.json (the pretraining pipeline, 12),
# mnist_mlp.json (the paper's MNIST grid, 573), convnet_fashion.json (the SE convnet at 4
# fractions and dense, 15). Figures: docs/mnist_sweep.png, docs/convnet_sweep.png.
set -euo pipefail
cd "$(dirname "$0")/.."

jobs=2 device=auto plots_only=0
fail() { echo "tools/reproduce.sh: error: $*" >&2; exit 2; }
while [ $# -gt 0 ]; do
  case "$1" in
    --jobs) jobs=${2:?--jobs needs a number}; shift 2 ;;
    --device) device=${2:?--device needs cpu, cuda or auto}; shift 2 ;;
    --plots-only) plots_only=1; shift ;;
    -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) fail "unknown argument '$1' (see --help)" ;;
  esac
done
[[ "$jobs" =~ ^[1-9][0-9]*$ ]] || fail "--jobs must be a positive whole number, got '$jobs'"

python=python3
python3 -c 'import matplotlib' 2>/dev/null || python=/usr/bin/python3

if [ "$plots_only" -eq 0 ]; then
  make build >/dev/null
  # mnist_mlp_j1 is the full grid's J = 1 panel, run first into the full grid's directory: its cells
  # are the cheap ones, and the full grid then skips them.
  for sweep in mnist_mlp_10pct mnist_mlp_dense mnist_mlp_pipeline mnist_mlp_j1 mnist_mlp convnet_fashion; do
    echo "== sweep $sweep"
    out=()
    [ "$sweep" = mnist_mlp_j1 ] && out=(--out runs/sweep-mnist_mlp)
    # Exit 3 means some cells failed: report and go on to the plots of what finished.
    build/uvtrain sweep --config "sweeps/$sweep.json" "${out[@]}" --jobs "$jobs" --device "$device" || [ $? -eq 3 ]
  done
fi

# A sweep's results: its own directory's, or the copy a GPU run left in docs/ (docs/<sweep>_gpu.csv:
# the GPU machine's cell directories do not come back) where that holds more finished cells.
csv_for() {
  local csv="runs/sweep-$1/results.csv" gpu="docs/$1_gpu.csv"
  if [ -s "$gpu" ] && [ "$(wc -l <"$gpu")" -gt "$( [ -s "$csv" ] && wc -l <"$csv" || echo 0)" ]; then csv=$gpu; fi
  echo "$csv"
}
table() {  # sweep name, extra results_table.py arguments
  local csv
  csv=$(csv_for "$1")
  if [ -s "$csv" ]; then
    echo "== $1 ($csv)"
    "$python" tools/results_table.py "$csv" "${@:2}" || true
  else
    echo "== $1: no results yet ($csv)"
  fi
}
plot() {  # sweep name, PNG, title, extra plot_results.py arguments
  local csv
  csv=$(csv_for "$1")
  if [ -s "$csv" ]; then "$python" tools/plot_results.py "$csv" -o "$2" --title "$3" "${@:4}" || true; fi
}
# The tables from every cell finished so far, also while a sweep is still running.
for sweep in mnist_mlp_10pct mnist_mlp_dense mnist_mlp_pipeline mnist_mlp convnet_fashion; do
  if [ -d "runs/sweep-$sweep" ]; then build/uvtrain sweep --config "sweeps/$sweep.json" --collect; fi
done
# Error axis clipped at 5%: the random dictionaries at 2.5% learned (23-50%) flatten the rest.
plot mnist_mlp docs/mnist_sweep.png "MNIST 784-500-500-10, plain supervised, 60 epochs" --ymax 5 --xmax 1.05
plot convnet_fashion docs/convnet_sweep.png "Fashion-MNIST convnet, 12 epochs, 3 seeds"
table mnist_mlp_10pct --against Dense --within 0.5
table mnist_mlp_10pct --against Dense-unbounded --reference-csv runs/sweep-mnist_mlp_dense/results.csv --within 0.5
table mnist_mlp_pipeline --against Dense-unbounded --reference-csv runs/sweep-mnist_mlp_dense/results.csv
table mnist_mlp --against Dense
table convnet_fashion --against Dense
