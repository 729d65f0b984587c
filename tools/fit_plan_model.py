#!/usr/bin/env python3
"""Fit the 3xTF32 plans' time model (tf32x3_plan_us, kernels/cuda/tf32x3_gemm_tile.h) to a GPU
run's product times.

    tools/fit_plan_model.py products.json [more.json ...]     # bench_predicted_products --device=cuda

The products bench times each of the chain's products on the tf32x3 GEMM, and each tf32x3 row
carries its plan as the device planned it: the model's parts as plan_* counters (slice-waves with
B presplit, on the specialised kernel, without B presplit and on mma, waves of tiles in blocks of their own and in persistent
blocks, kernels, side bytes) and its modelled time, plan_model_us. The fit finds the constants (µs
a slice-wave with presplit, without it and on the specialised kernel, a wave of tiles in blocks of
their own and persistent, a kernel) that bring the model nearest the times, relative errors weighted alike; a part no row has
keeps the model's value, as do mma's slice and the bytes' rate. It prints the constants and each
row's time, old and new model, so that Tf32x3CostModel can be set from a run. Rows that failed
their check or did not run on the tf32x3 GEMM are left out, and with U rounded to TF32
(--dictionary_precision=tf32) X·U and dX too, whose B then has no small part to multiply.

    build/bench_predicted_products --plans --plans_json > plans.json
    tools/fit_plan_model.py --synthesize plans.json A,B,C,D,E,F > products.json

writes the products run the model would give with those constants from plans made without a GPU
(a check of the fit: fitting it gives them back).

    tools/fit_plan_model.py --check-model plans.json

exits 1 unless this file's copy of the model's constants gives every plan's plan_model_us (the
C++ model's own time): a check that the two have not drifted apart.
"""
import json
import sys

CHECK_TOLERANCE = 1e-4  # bench_table.py's
PARTS = ("slice_waves_presplit", "slice_waves_wgmma", "tile_waves", "tile_waves_persistent", "kernels",
         "slice_waves_specialised")
NAMES = ("presplit_slice_us", "wgmma_slice_us", "tile_us", "persistent_tile_us", "kernel_us", "specialised_slice_us")
# Tf32x3CostModel's present values (a part no row has keeps its own), and the terms the fit leaves.
PRESENT = (1.85, 2.02, 2.38, 5.74, 1.53, 1.41)
MMA_SLICE_US, BYTES_PER_US = 1.35 * 2.14, 2.5e6


def die(message):
    """Bad input: the message, naming the file or value, and exit code 2."""
    print(f"fit_plan_model: {message}", file=sys.stderr)
    sys.exit(2)


def part(row, name):
    return row.get("plan_" + name, 0.0)


def fixed_us(row):
    return part(row, "slice_waves_mma") * MMA_SLICE_US + part(row, "side_bytes") / BYTES_PER_US


def model_us(row, constants):
    return fixed_us(row) + sum(part(row, k) * v for k, v in zip(PARTS, constants))


def row_us(b):
    return b["real_time"] * {"ns": 1e-3, "us": 1.0, "ms": 1e3, "s": 1e6}[b["time_unit"]]


def solve(a, y):
    """Least squares: the x minimising |a·x − y|² by the normal equations (a few unknowns)."""
    n = len(a[0])
    m = [[sum(r[i] * r[j] for r in a) for j in range(n)] + [sum(r[i] * t for r, t in zip(a, y))] for i in range(n)]
    for c in range(n):
        p = max(range(c, n), key=lambda i: abs(m[i][c]))
        if abs(m[p][c]) < 1e-12:
            return None  # the rows cannot tell this part from the others
        m[c], m[p] = m[p], m[c]
        for i in range(n):
            if i != c:
                f = m[i][c] / m[c][c]
                m[i] = [u - f * v for u, v in zip(m[i], m[c])]
    return [m[i][n] / m[i][i] for i in range(n)]


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        die(f"{path}: {e}")


def fit(paths):
    rows = []
    for path in paths:
        run = load(path)
        if not isinstance(run, dict) or not isinstance(run.get("benchmarks"), list):
            die(f"{path}: not a Google Benchmark JSON (no benchmarks list)")
        # U rounded to TF32: X·U and dX = dT·Uᵀ drop B's small part, a third of their tensor work,
        # which the model does not price: left out.
        exact_u = run.get("context", {}).get("dictionary_precision", "float32") != "float32"
        for b in run["benchmarks"]:
            name = b.get("name", "").replace("/manual_time", "")
            if b.get("run_type") == "aggregate" or "plan_model_us" not in b or "real_time" not in b or \
                    b.get("tf32x3", 1) != 1:
                continue
            if not b.get("check_rel_err", 0) <= CHECK_TOLERANCE:
                continue
            if exact_u and name.split("/")[1:2] in (["x_u"], ["dx"]):
                continue
            rows.append((name, row_us(b), b))
    if not rows:
        die("no tf32x3 row with a plan (plan_* counters) in " + ", ".join(paths))
    # Relative errors alike: each row's equation divided by its time.
    used = [i for i, k in enumerate(PARTS) if any(part(r, k) for _, _, r in rows)]
    kept = [i for i in range(len(PARTS)) if i not in used]
    a = [[part(r, PARTS[i]) / t for i in used] for _, t, r in rows]
    y = [(t - fixed_us(r) - sum(part(r, PARTS[i]) * PRESENT[i] for i in kept)) / t for _, t, r in rows]
    fitted = solve(a, y)
    if fitted is None:
        die("the rows cannot tell the model's parts apart: time more products")
    x = list(PRESENT)
    for i, value in zip(used, fitted):
        x[i] = value
    print(f"{len(rows)} products fitted")
    for i, (name, value) in enumerate(zip(NAMES, x)):
        print(f"  {name} {value:.3f}" + ("" if i in used else " (no row has it: the model's)"))
    print("| product | measured ms | model ms (now) | model ms (fitted) | fitted / measured |")
    print("|---|---|---|---|---|")
    worst = 0.0
    for name, t, r in rows:
        new = model_us(r, x)
        worst = max(worst, abs(new / t - 1))
        print(f"| {name} | {t / 1e3:.3f} | {r['plan_model_us'] / 1e3:.3f} | {new / 1e3:.3f} | {new / t:.2f} |")
    print(f"largest difference of the fitted model from a measured time: {100 * worst:.1f}%")


def synthesize(path, constants):
    plans = load(path)
    try:
        x = [float(v) for v in constants.split(",")]
    except ValueError:
        x = []
    if len(x) != len(PARTS):
        die(f"--synthesize takes {len(PARTS)} constants ({', '.join(NAMES)}), not {constants!r}")
    rows = [dict(b, run_type="iteration", time_unit="us", tf32x3=1, check_rel_err=0.0, real_time=model_us(b, x))
            for b in plans.get("benchmarks", [])]
    json.dump({"context": plans.get("context", {}), "benchmarks": rows}, sys.stdout, indent=1)
    print()


def check_model(path):
    rows = [b for b in load(path).get("benchmarks", []) if "plan_model_us" in b]
    if not rows:
        die(f"{path}: no plan_model_us to check against")
    off = [b["name"] for b in rows if abs(model_us(b, PRESENT) - b["plan_model_us"]) > 1e-3 * max(1.0, b["plan_model_us"])]
    for name in off:
        print(f"this file's constants do not give {name}'s plan_model_us: copy Tf32x3CostModel's here")
    print(f"{len(rows) - len(off)} of {len(rows)} plans' times given by this file's constants")
    sys.exit(1 if off else 0)


if __name__ == "__main__":
    args = sys.argv[1:]
    if len(args) == 3 and args[0] == "--synthesize":
        synthesize(args[1], args[2])
    elif len(args) == 2 and args[0] == "--check-model":
        check_model(args[1])
    elif args and not args[0].startswith("-"):
        fit(args)
    else:
        die("usage: tools/fit_plan_model.py PRODUCTS.json... | --synthesize PLANS.json A,B,C,D,E,F | "
            "--check-model PLANS.json")
