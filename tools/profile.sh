#!/usr/bin/env bash
# Profiles the MNIST MLP twice, with every predicted layer's strategy left to `auto` (on the GPU: the
# fused chain_fused kernels) and with every predicted layer materialised. It writes two Nsight
# Systems reports (NVTX ranges and CUDA memory tracking) and a short text comparison of the two
# runs' memory accounts. Issue 6's memory profile.
#
#   tools/profile.sh                      # GPU: nsys + uvtrain --device cuda, into runs/profile/
#   tools/profile.sh --device cpu         # no nsys: the runs and the memory comparison only
#   tools/profile.sh --uvtrain build-gpu/uvtrain --steps 600 --out runs/profile-h100
#   (also --config FILE, default models/mnist_mlp.json, and --data-dir DIR)
#
# In OUT: auto.nsys-rep and materialise.nsys-rep (when nsys is installed and manages to write them;
# it was seen failing on the lent GPU machines), their `nsys stats` summaries (*.stats.txt), the two
# run directories (run-auto/, run-materialise/), and comparison.txt: each run's memory account
# (learned, fixed U, gradients, optimiser, activation arena, materialised W), the backend pool's
# high-water mark, the cudaMemGetInfo peak, and the step rate. The account is checked against the
# pool: the pool's peak must be at least the account's total, since the pool also holds data and
# workspaces. Exit 2 on bad flags, a missing uvtrain or (with --device cuda) no usable GPU.
set -euo pipefail
cd "$(dirname "$0")/.."

uvtrain=build/uvtrain device=cuda steps=300 out=runs/profile config=models/mnist_mlp.json data_dir=""
usage() { sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; }
fail() { echo "tools/profile.sh: error: $*" >&2; exit 2; }
while [ $# -gt 0 ]; do
  case "$1" in
    --uvtrain) uvtrain=${2:?--uvtrain needs a path}; shift 2 ;;
    --device) device=${2:?--device needs cpu or cuda}; shift 2 ;;
    --steps) steps=${2:?--steps needs a number}; shift 2 ;;
    --out) out=${2:?--out needs a directory}; shift 2 ;;
    --config) config=${2:?--config needs a file}; shift 2 ;;
    --data-dir) data_dir=${2:?--data-dir needs a directory}; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) fail "unknown argument '$1' (see --help)" ;;
  esac
done
case "$device" in cpu|cuda) ;; *) fail "--device must be cpu or cuda, got '$device'" ;; esac
[[ "$steps" =~ ^[1-9][0-9]*$ ]] || fail "--steps must be a positive whole number, got '$steps'"
[ -x "$uvtrain" ] || fail "no uvtrain executable at $uvtrain (build it with \`make build\`)"
[ -f "$config" ] || fail "no config file $config"
if [ "$device" = cuda ] && ! "$uvtrain" info | grep -q 'cuda: .* [1-9][0-9]* device(s)'; then
  fail "no usable CUDA device ($("$uvtrain" info | grep '^cuda' || echo 'a CPU-only build')); use --device cpu"
fi
mkdir -p "$out"

nsys_bin=""
if [ "$device" = cuda ] && command -v nsys >/dev/null; then nsys_bin=$(command -v nsys); fi

# The config's batch size and predicted layers (for the materialise overrides). One epoch over
# steps × batch images, so each run ends with its summary and memory account.
read -r batch predicted < <(python3 - "$config" <<'EOF'
import json, re, sys
text = re.sub(r"^\s*//.*$", "", open(sys.argv[1]).read(), flags=re.M)
config = json.loads(text)
layers = config["model"]["layers"]
batch = config.get("train", {}).get("batch_size", 100)
print(batch, " ".join(str(i) for i, l in enumerate(layers) if l.get("type") in ("predicted_dense", "lowrank")))
EOF
)

profile_one() {  # name, extra uvtrain args...
  local name=$1; shift
  local run="$out/run-$name"
  rm -rf "$run"
  local cmd=("$uvtrain" train --config "$config" --device "$device" --epochs 1 --out "$run"
             --set "data.train_limit=$((steps * batch))" "$@")
  if [ -n "$data_dir" ]; then cmd+=(--set "data.dir=$data_dir"); fi
  echo "== $name: ${cmd[*]}"
  if [ -n "$nsys_bin" ]; then
    if "$nsys_bin" profile --trace=cuda,nvtx,cublas,cudnn --cuda-memory-usage=true --force-overwrite=true \
         -o "$out/$name" "${cmd[@]}" > "$out/$name.log" 2>&1; then
      "$nsys_bin" stats --report nvtx_sum,cuda_gpu_kern_sum,cuda_gpu_mem_size_sum "$out/$name.nsys-rep" \
        > "$out/$name.stats.txt" 2>&1 || echo "nsys stats failed: see $out/$name.stats.txt"
    else
      echo "nsys failed (see $out/$name.log); running without it"
      "${cmd[@]}" > "$out/$name.log" 2>&1
    fi
  else
    "${cmd[@]}" > "$out/$name.log" 2>&1
  fi
}

profile_one auto
materialise_args=()
for i in $predicted; do materialise_args+=(--set "model.layers[$i].strategy=materialise"); done
# A projected first layer has no W to materialise: batch X so the baseline is the plain one.
profile_one materialise "${materialise_args[@]}" --set train.project_input=off

python3 - "$out" "$device" "$steps" "$batch" <<'EOF' | tee "$out/comparison.txt"
import json, sys
out, device, steps, batch = sys.argv[1:]
mib = lambda b: b / 2**20
runs = {}
for name in ("auto", "materialise"):
    try:
        summary = json.load(open(f"{out}/run-{name}/summary.json"))
    except FileNotFoundError:
        summary = None
    rows = [json.loads(l) for l in open(f"{out}/run-{name}/metrics.jsonl")]
    memory = summary["memory_bytes"] if summary else None
    epoch = [r for r in rows if r.get("kind") == "epoch"]
    rate = int(steps) * int(batch) / epoch[-1]["seconds"] if epoch else float("nan")
    runs[name] = (memory, rate, summary)
print(f"tools/profile.sh on {device}, {steps} steps; MiB")
keys = ["parameters_learned", "parameters_fixed", "gradients", "optimizer_state", "activations",
        "materialised_weights", "total", "workspaces", "backend_peak_allocated", "device_in_use_peak"]
print(f"{'':28}" + "".join(f"{n:>14}" for n in runs))
for k in keys:
    vals = [runs[n][0].get(k) if runs[n][0] else None for n in runs]
    print(f"{k:28}" + "".join(f"{mib(v):14.2f}" if v is not None else f"{'-':>14}" for v in vals))
print(f"{'samples/s (the epoch)':28}" + "".join(f"{runs[n][1]:14.0f}" for n in runs))
ok = True
for n, (memory, _, _) in runs.items():
    if not memory:
        print(f"{n}: no memory account (the run did not finish?)"); ok = False; continue
    if memory["backend_peak_allocated"] < memory["total"]:
        print(f"{n}: CHECK FAILED: the pool's peak {mib(memory['backend_peak_allocated']):.2f} MiB is below "
              f"the account's total {mib(memory['total']):.2f} MiB"); ok = False
a, m = runs["auto"][0], runs["materialise"][0]
if a and m:
    # The pool's peak holds the resident data set too, and `auto` may hold the projected first layer
    # (X·U for every image) that materialise cannot use: compare the training state without either.
    state = lambda r: r["backend_peak_allocated"] - r.get("data_resident", 0) - r.get("data_projected", 0)
    less = lambda d: f"{abs(mib(d)):.2f} MiB {'less' if d >= 0 else 'more'}"
    print(f"auto holds {less(m['total'] - a['total'])} by the account, {less(state(m) - state(a))} at the "
          f"pool's peak less the data ({mib(state(a)):.2f} against {mib(state(m)):.2f} MiB), and "
          f"{less(m['backend_peak_allocated'] - a['backend_peak_allocated'])} at the whole pool's peak than "
          f"materialise (materialised W and dW: {mib(m['materialised_weights']):.2f} MiB)")
print("account vs pool: " + ("consistent" if ok else "see above"))
sys.exit(0 if ok else 1)
EOF
