#!/usr/bin/env bash
# `make run`: the paper's MNIST MLP with 10% of layer-1 and layer-2 weights learned (SE-Emp), then
# the dense baseline trained the same way, and both test errors side by side.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
device=${2:-auto}
stamp=$(date +%Y%m%d-%H%M%S)
out=runs/make-run-$stamp
"$build/uvtrain" train --config models/mnist_mlp.json --device "$device" --out "$out/predicted"
"$build/uvtrain" train --config models/mnist_mlp_dense.json --device "$device" --out "$out/dense"
python3 - "$out" <<'PY'
import json, sys
out = sys.argv[1]
p = json.load(open(f"{out}/predicted/summary.json"))
d = json.load(open(f"{out}/dense/summary.json"))
print()
print(f"{'model':<34} {'test error':>10} {'learned L1-2':>13} {'time':>8}")
for s in (p, d):
    print(f"{s['name']:<34} {100*s['test_error']:>9.2f}% {100*s['learned_fraction_hidden']:>12.1f}% {s['seconds']:>7.1f}s")
print(f"\nruns written to {out}/ (summary.json, metrics.jsonl, checkpoint.safetensors)")
PY
