#!/usr/bin/env python3
"""Fit the 3xTF32 plans' time model (tf32x3_plan_us, kernels/cuda/tf32x3_gemm_tile.h) to a GPU
run's product times.

    build/bench_predicted_products --plans --plans_json > plans.json     # any machine, same UV_TF32X3_*
    tools/fit_plan_model.py plans.json products.json [more.json ...]     # products.json from the GPU

The products bench (bench_predicted_products --device=cuda) times each of the chain's products on
the tf32x3 GEMM; plans.json has each product's plan split into what the model prices: slice-waves
with B presplit, slice-waves without, waves of tiles, kernels and side bytes. The fit finds the
constants (µs a slice-wave with and without presplit, a wave of tiles in blocks of their own and in
persistent blocks, a kernel; those no row has keep their values) that bring the
model nearest the times, relative error weighted alike; mma's slice and the bytes' rate stay as
they are in the model. It prints the constants beside the model's present ones and each row's
time, old and new model, so that tf32x3_gemm_tile.h's Tf32x3CostModel can be set from a run.
Rows are matched by name; a products run whose UV_TF32X3_* context differs from the plans' is
refused (its plans would be other plans), and rows that failed their check or did not run on the
tf32x3 GEMM are left out, and with U rounded to TF32 (--dictionary_precision=tf32) X·U and dX,
whose B then has no small part to multiply.

    tools/fit_plan_model.py --synthesize plans.json A,B,C,D,E > products.json

writes the products run the model would give with those constants (a check of the fit: fitting it
gives them back).
"""
import json
import sys

CHECK_TOLERANCE = 1e-4  # bench_table.py's
PARTS = ("slice_waves_presplit", "slice_waves_wgmma", "tile_waves", "tile_waves_persistent", "kernels")
NAMES = ("presplit_slice_us", "wgmma_slice_us", "tile_us", "persistent_tile_us", "kernel_us")
# Tf32x3CostModel's present values: a part no row has keeps its own.
PRESENT = (1.85, 2.14, 5.5, 5.5, 5.2)
# Tf32x3CostModel's terms the fit leaves alone.
MMA_SLICE_US, BYTES_PER_US = 1.35 * 2.14, 2.5e6
CONTEXT_KEYS = ("tf32x3_kernel", "tf32x3_workspace_mib", "tf32x3_chunk_depth", "tf32x3_bands")


def die(message):
    """Bad input: the message, naming the file or value, and exit code 2."""
    print(f"fit_plan_model: {message}", file=sys.stderr)
    sys.exit(2)


def fixed_us(plan):
    return plan["slice_waves_mma"] * MMA_SLICE_US + plan["side_bytes"] / BYTES_PER_US


def row_us(b):
    return b["real_time"] * {"ns": 1e-3, "us": 1.0, "ms": 1e3, "s": 1e6}[b["time_unit"]]


def solve(a, y):
    """Least squares: the x minimising |a·x − y|² by the normal equations (a few unknowns)."""
    n = len(a[0])
    m = [[sum(r[i] * r[j] for r in a) for j in range(n)] + [sum(r[i] * t for r, t in zip(a, y))] for i in range(n)]
    for c in range(n):
        p = max(range(c, n), key=lambda i: abs(m[i][c]))
        if abs(m[p][c]) < 1e-12:
            return None  # a part no row has: it cannot be fitted
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


def fit(plans_path, products_paths):
    plans = load(plans_path)
    by_name = {p["name"]: p for p in plans["plans"]}
    rows = []
    for path in products_paths:
        run = load(path)
        context = run.get("context", {})
        for key in CONTEXT_KEYS:
            if str(context.get(key)) != str(plans["context"].get(key)):
                die(f"{path}: {key} {context.get(key)!r} is not the plans' {plans['context'].get(key)!r}; "
                    f"write the plans with the run's UV_TF32X3_* settings")
        # U rounded to TF32: X·U and dX = dT·Uᵀ drop B's small part, a third of their tensor work,
        # which the model does not price: left out.
        exact_u = context.get("dictionary_precision", "float32") != "float32"
        for b in run.get("benchmarks", []):
            name = b["name"].replace("/manual_time", "")
            if b.get("run_type") == "aggregate" or name not in by_name or b.get("tf32x3", 1) != 1:
                continue
            if exact_u and name.split("/")[1] in ("x_u", "dx"):
                continue
            if not b.get("check_rel_err", 0) <= CHECK_TOLERANCE:
                continue
            rows.append((name, row_us(b), by_name[name]))
    if not rows:
        die("no tf32x3 row of the products runs has a plan in " + plans_path)
    # Relative error alike: each row's equation divided by its time. Parts no row has (persistent
    # tiles from a kernel that is not persistent) keep the model's values.
    used = [i for i, k in enumerate(PARTS) if any(p.get(k, 0) for _, _, p in rows)]
    kept = [i for i in range(len(PARTS)) if i not in used]
    a = [[p.get(PARTS[i], 0) / t for i in used] for _, t, p in rows]
    y = [(t - fixed_us(p) - sum(p.get(PARTS[i], 0) * PRESENT[i] for i in kept)) / t for _, t, p in rows]
    fitted = solve(a, y)
    if fitted is None:
        die("the rows cannot tell the parts apart: time more products")
    x = list(PRESENT)
    for i, value in zip(used, fitted):
        x[i] = value
    print(f"{len(rows)} products fitted ({plans['context']})")
    for i, (name, value) in enumerate(zip(NAMES, x)):
        print(f"  {name} {value:.3f}" + ("" if i in used else " (no row has it: the model's)"))
    print("| product | measured ms | model ms (now) | model ms (fitted) | fitted / measured |")
    print("|---|---|---|---|---|")
    worst = 0.0
    for name, t, p in rows:
        new = fixed_us(p) + sum(p.get(k, 0) * v for k, v in zip(PARTS, x))
        worst = max(worst, abs(new / t - 1))
        print(f"| {name} | {t / 1e3:.3f} | {p['model_us'] / 1e3:.3f} | {new / 1e3:.3f} | {new / t:.2f} |")
    print(f"largest difference of the fitted model from a measured time: {100 * worst:.1f}%")


def synthesize(plans_path, constants):
    plans = load(plans_path)
    try:
        x = [float(v) for v in constants.split(",")]
    except ValueError:
        x = []
    if len(x) != len(PARTS):
        die(f"--synthesize takes {len(PARTS)} constants ({', '.join(NAMES)}), not {constants!r}")
    rows = [{"name": p["name"] + "/manual_time", "run_type": "iteration", "time_unit": "us", "tf32x3": 1,
             "check_rel_err": 0.0, "real_time": fixed_us(p) + sum(p.get(k, 0) * v for k, v in zip(PARTS, x))}
            for p in plans["plans"]]
    json.dump({"context": dict(plans["context"]), "benchmarks": rows}, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    args = sys.argv[1:]
    if len(args) == 3 and args[0] == "--synthesize":
        synthesize(args[1], args[2])
    elif len(args) >= 2 and not args[0].startswith("-"):
        fit(args[0], args[1:])
    else:
        die("usage: tools/fit_plan_model.py PLANS.json PRODUCTS.json... | --synthesize PLANS.json A,B,C,D,E")
