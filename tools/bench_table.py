#!/usr/bin/env python3
"""Markdown table from a benchmark's JSON (bench_predicted_linear, bench_predicted_conv2d): per pass
and shape, each strategy's time and TFLOP/s (and, where the bench reports floor_ms, the time as a
multiple of the strategy's roofline floor), and each other strategy's speed-up over the best
baseline measured in the same run.

    build/bench_predicted_linear --benchmark_out=b.json --benchmark_out_format=json
    tools/bench_table.py b.json                                   # baselines: chain, materialise (cuBLAS)
    tools/bench_table.py c.json --baselines dense,materialise     # conv: cuDNN on W
    tools/bench_table.py --goal a.json b.json ...                 # issue 3's goal across runs
    tools/bench_table.py --check a.json ...                       # exit 1 if a row's outputs were wrong
    tools/bench_table.py --best-kernel a.json b.json ...          # the fastest 3xTF32 kernel among the runs

--goal reads several bench_predicted_linear runs of the same card (e.g. one per --gemm library and
3xTF32 kernel) and, per pass and large shape (M ≥ 4096), sets the best fused strategy (chain_fused,
onthefly_w: W never materialised) against the best cuBLAS path (chain, materialise; rows on our own
GEMM, tf32x3 = 1, do not count as cuBLAS), each from whichever run had it, and counts the shapes
at fraction learned ≤ 0.25 where the fused one is at least 1.3× faster. Rows whose outputs missed
the chain's through cuBLAS (the bench's check_rel_err over 1e-4) count for nothing and are listed,
and a shape whose fused rows are all wrong counts as not met: a fast but wrong kernel does not
meet the goal.
"""
import json
import re
import sys
from collections import defaultdict

# The bench's check_rel_err: the largest difference from the chain through cuBLAS on sampled rows,
# relative to the largest output there. float32 sums over k ≤ 16384 stay near 1e-6.
CHECK_TOLERANCE = 1e-4


def row_ms(b):
    """A benchmark row's time in milliseconds."""
    return b["real_time"] * {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}[b["time_unit"]]


def failed_check(b, missing=0.0):
    """Whether a row's outputs missed the chain's: check_rel_err over the tolerance or NaN; `missing`
    stands in for a row without the counter."""
    return not b.get("check_rel_err", missing) <= CHECK_TOLERANCE

def main(path, baselines=("chain", "materialise")):
    BASELINES = tuple(baselines)
    with open(path) as f:
        report = json.load(f)
    rows = defaultdict(dict)  # (pass, shape) -> strategy -> (ms, tflops)
    plans = defaultdict(dict)  # (pass, shape) -> strategy -> the row's label (bench_predicted_products: tf32x3's plan)
    flagged = {}  # (pass, shape, strategy) -> check_rel_err of rows whose outputs missed the chain's
    for b in report["benchmarks"]:
        if b.get("run_type") == "aggregate":
            continue
        # name: strategy/pass/set/M:../K:../N:../r:../J:../manual_time
        parts = b["name"].split("/")
        strategy, pass_name = parts[0], parts[1]
        shape = " ".join(p.replace(":", "=") for p in parts[3:] if ":" in p)
        rows[(pass_name, shape)][strategy] = (row_ms(b), b.get("TFLOP/s", float("nan")), b.get("floor_ms"))
        if b.get("label"):
            plans[(pass_name, shape)][strategy] = b["label"]
        if failed_check(b):
            flagged[(pass_name, shape, strategy)] = b.get("check_rel_err")
    strategies = sorted({s for r in rows.values() for s in r}, key=lambda s: (s not in BASELINES, s))
    context = report.get("context", {})
    on_gpu = ran_on_gpu(context)  # the GEMM settings are the GPU's
    gemm = f", gemm {context['gemm']}" if on_gpu and "gemm" in context else ""
    kernel = f", tf32x3 kernel {context['tf32x3_kernel']}" if on_gpu and "tf32x3_kernel" in context else ""
    if on_gpu and "tf32x3_chunk_depth" in context:
        kernel += f", chunks of {context['tf32x3_chunk_depth']}"
        if "tf32x3_chunks" in context:  # runs before 2026-11-26's eighth session: how the chunks ran
            kernel += f" as {context['tf32x3_chunks']}"
    kernel += "".join(", " + setting for setting in run_settings(context, on_gpu))
    print(f"backend: {context.get('backend', '?')}{gemm}{kernel}, {context.get('date', '')}\n")
    with_floor = any(v[2] for r in rows.values() for v in r.values())
    unit_note = " (TFLOP/s; × floor)" if with_floor else " (TFLOP/s)"
    planned = [s for s in strategies if any(s in p for p in plans.values())]
    header = ["pass", "shape"] + [f"{s} ms{unit_note}" for s in strategies] + \
             [f"{s} vs best baseline" for s in strategies if s not in BASELINES] + \
             [f"{s} plan" for s in planned] + [f"{s} measured / model" for s in planned]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for (pass_name, shape), r in sorted(rows.items()):
        cells = [pass_name, shape]
        for s in strategies:
            if s not in r:
                cells.append("")
            elif with_floor and r[s][2]:
                cells.append(f"{r[s][0]:.3f} ({r[s][1]:.2f}; {r[s][0] / r[s][2]:.1f}×)")
            else:
                cells.append(f"{r[s][0]:.3f} ({r[s][1]:.2f})")
        best = min((r[s][0] for s in BASELINES if s in r), default=None)
        for s in strategies:
            if s in BASELINES:
                continue
            mark = " (wrong)" if (pass_name, shape, s) in flagged else ""
            cells.append(f"{best / r[s][0]:.2f}x{mark}" if best and s in r else "")
        cells += [plans[(pass_name, shape)].get(s, "") for s in planned]
        for s in planned:  # the plan's modelled time (tf32x3_plan_us) against the row's
            model = re.search(r"model ([0-9.]+) ms", plans[(pass_name, shape)].get(s, ""))
            cells.append(f"{r[s][0] / float(model.group(1)):.2f}" if model and s in r and float(model.group(1)) > 0
                         else "")
        print("| " + " | ".join(cells) + " |")
    if flagged:
        print(f"\nWRONG OUTPUTS (off the chain's through cuBLAS by more than {CHECK_TOLERANCE}):")
        for (pass_name, shape, strategy), err in flagged.items():
            print(f"  {strategy} {pass_name} {shape}: check_rel_err {err}")


def ran_on_gpu(context):
    """Whether a run's backend was a GPU (its 3xTF32 settings then mean something)."""
    return not context.get("backend", "").startswith("cpu")


def run_settings(context, on_gpu):
    """The settings a run was told apart by, in the words of both tables: the 3xTF32 workspace
    (UV_TF32X3_WORKSPACE_MIB), column bands (UV_TF32X3_BANDS=0) and the specialised ring's
    synchronisation (UV_TF32X3_SPECIALISED_SYNC, on the specialised kernels, off its default `both`;
    runs before 2026-11-27 said it only off plain, their default) on the GPU, U's precision
    (--dictionary_precision) anywhere."""
    settings = []
    if on_gpu and context.get("tf32x3_workspace_set"):
        settings.append(f"a {context.get('tf32x3_workspace_mib', '?')} MiB workspace")
    if on_gpu and context.get("tf32x3_bands") == "0":
        settings.append("no column bands")
    sync = context.get("tf32x3_specialised_sync", "plain")
    if on_gpu and context.get("tf32x3_kernel", "").startswith("wgmma_specialised") and sync != "both":
        settings.append(f"ring sync {sync}")
    if context.get("dictionary_precision", "float32") != "float32":
        settings.append(f"U rounded to {context['dictionary_precision']}")
    return settings


def row_fields(b):
    """A row's strategy, pass and shape (M, K, N, r, J as ints) from its name,
    strategy/pass/set/M:../K:../N:../r:../J:../manual_time."""
    parts = b["name"].split("/")
    return parts[0], parts[1], {k: int(v) for k, v in (p.split(":") for p in parts[3:] if ":" in p)}


def fraction_learned(dims):
    """The fraction of the weights learned, r·J / K."""
    return dims["r"] * dims.get("J", 1) / dims["K"]


FUSED = ("chain_fused", "onthefly_w")
CUBLAS = ("chain", "materialise")
GOAL_RATIO, GOAL_FRACTION, LARGE_M = 1.3, 0.25, 4096


def goal(paths):
    """Issue 3's goal over the runs, a table for each dictionary precision among them
    (--dictionary_precision): fused and cuBLAS rows are only set against runs with the same U. Exit
    status 0 where one table meets the goal on every pass-shape it counts."""
    groups = {}  # precision -> [(path, report)]
    for path in paths:
        with open(path) as f:
            report = json.load(f)
        precision = report.get("context", {}).get("dictionary_precision", "float32")
        groups.setdefault(precision, []).append((path, report))
    status = 1
    for precision, reports in sorted(groups.items()):
        if len(groups) > 1:
            print(f"\n### runs with U in {precision}\n")
        status = min(status, goal_table(reports))
    return status


def goal_table(reports):
    best = {}  # (pass, shape) -> kind -> (ms, strategy, run label)
    cards = set()
    wrong = []  # rows whose outputs failed the bench's check
    for path, report in reports:
        context = report.get("context", {})
        cards.add(context.get("backend", "?"))
        label = f"{context.get('gemm', '?')}:{context.get('tf32x3_kernel', '?')}"
        if context.get("tf32x3_chunk_depth_set"):  # UV_TF32X3_CHUNK_DEPTH given: runs told apart
            label += f":{context.get('tf32x3_chunk_depth', '?')}"
        elif context.get("tf32x3_chunks_set"):  # earlier runs, which also chose how the chunks ran
            label += f":{context.get('tf32x3_chunks', '?')}:{context.get('tf32x3_chunk_depth', '?')}"
        label += "".join(", " + setting for setting in run_settings(context, ran_on_gpu(context)))
        for b in report["benchmarks"]:
            if b.get("run_type") == "aggregate":
                continue
            strategy, pass_name, dims = row_fields(b)
            if strategy not in FUSED + CUBLAS or dims.get("M", 0) < LARGE_M:
                continue
            if strategy in CUBLAS and b.get("tf32x3", 0) == 1:
                continue  # our GEMM under the cuBLAS strategy's name: not a cuBLAS path
            kind = "fused" if strategy in FUSED else "cublas"
            ms = row_ms(b)
            shape = (dims["M"], dims["K"], dims["N"], dims["r"], dims.get("J", 1))
            slot = best.setdefault((pass_name, shape), {})
            if failed_check(b):
                wrong.append(f"{b['name'].replace('/manual_time', '')} ({label}): {b.get('check_rel_err')}")
                slot.setdefault("wrong " + kind, True)
                continue
            if kind not in slot or ms < slot[kind][0]:
                slot[kind] = (ms, strategy, label)
    if len(cards) > 1:
        print(f"warning: runs from different backends: {sorted(cards)}")
    print("| pass | shape | fraction | best cuBLAS ms (strategy, run) | best fused ms (strategy, run) | speed-up |")
    print("|---|---|---|---|---|---|")
    met = counted = 0
    for (pass_name, (m, k, n, r, j)), slot in sorted(best.items()):
        fraction = fraction_learned({"r": r, "J": j, "K": k})
        if "cublas" in slot and "fused" not in slot and "wrong fused" in slot:
            # Fused rows measured, none of them right: counted, and not met.
            if fraction <= GOAL_FRACTION + 1e-9:
                counted += 1
            c = slot["cublas"]
            print(f"| {pass_name} | M={m} K={k} N={n} r={r} J={j} | {fraction:.2f} | {c[0]:.3f} ({c[1]}, {c[2]}) "
                  f"| wrong outputs | — |")
            continue
        if "fused" not in slot or "cublas" not in slot:
            continue
        c, f = slot["cublas"], slot["fused"]
        ratio = c[0] / f[0]
        if fraction <= GOAL_FRACTION + 1e-9:
            counted += 1
            met += ratio >= GOAL_RATIO
        print(f"| {pass_name} | M={m} K={k} N={n} r={r} J={j} | {fraction:.2f} | {c[0]:.3f} ({c[1]}, {c[2]}) "
              f"| {f[0]:.3f} ({f[1]}, {f[2]}) | {ratio:.2f}x |")
    if wrong:
        print(f"\nleft out, outputs off the chain's by more than {CHECK_TOLERANCE} (check_rel_err):")
        for w in wrong:
            print(f"  {w}")
    print(f"\ngoal (fused ≥ {GOAL_RATIO}× the best cuBLAS path at fraction ≤ {GOAL_FRACTION}, M ≥ {LARGE_M}): "
          f"met on {met} of {counted} pass-shapes")
    return 0 if counted and met == counted else 1


def check(paths):
    """Exit status 1 where any row's outputs missed the chain's (check_rel_err over the tolerance, or
    NaN, or absent from a bench that reports it: none of a run's rows may go unchecked)."""
    bad = rows = 0
    for path in paths:
        with open(path) as f:
            report = json.load(f)
        for b in report["benchmarks"]:
            if b.get("run_type") == "aggregate" or b["name"].startswith("dense/"):
                continue
            rows += 1
            if failed_check(b, missing=float("nan")):
                bad += 1
                print(f"{path}: {b['name'].replace('/manual_time', '')}: check_rel_err {b.get('check_rel_err')}")
    print(f"{rows - bad} of {rows} rows within {CHECK_TOLERANCE} of the chain's outputs")
    return 1 if bad or not rows else 0


def best_kernel(paths):
    """The 3xTF32 kernel (tf32x3_kernel in the runs' context) whose chain_fused rows at fraction
    learned ≤ 0.25 on the large shapes take the least time, summed over the rows every run compared
    timed. Runs are compared only with runs of the same dictionary precision, workspace, bands and
    ring sync (run_settings): the setting with the most kernels among the runs (the first given, on
    a tie). A run with any such row off the check counts for nothing. Prints the kernel's name (what
    UV_TF32X3_KERNEL takes), and each run's sum on stderr. Exit status 1, printing nothing, where
    fewer than two runs qualify."""
    runs = []  # (setting, kernel, {row: ms}, any wrong)
    for path in paths:
        with open(path) as f:
            report = json.load(f)
        context = report.get("context", {})
        if "tf32x3_kernel" not in context:
            continue
        rows, wrong = {}, False
        for b in report["benchmarks"]:
            if b.get("run_type") == "aggregate":
                continue
            strategy, _, dims = row_fields(b)
            if strategy != "chain_fused" or dims.get("M", 0) < LARGE_M or fraction_learned(dims) > GOAL_FRACTION + 1e-9:
                continue
            rows[b["name"]] = row_ms(b)
            wrong = wrong or failed_check(b)
        if rows:
            runs.append((tuple(run_settings(context, ran_on_gpu(context))), context["tf32x3_kernel"], rows, wrong))
    kernels = {}  # setting -> kernels, in the order first given
    for setting, kernel, _, _ in runs:
        kernels.setdefault(setting, set()).add(kernel)
    if not kernels:
        return 1
    setting = max(kernels, key=lambda k: len(kernels[k]))  # the first of the largest on a tie
    chosen = [r for r in runs if r[0] == setting]
    good = [r for r in chosen if not r[3]]
    common = set.intersection(*(set(r[2]) for r in good)) if good else set()
    sums = []
    for _, kernel, rows, wrong in chosen:
        total = sum(ms for name, ms in rows.items() if name in common)
        why = " (wrong outputs: not counted)" if wrong else ""
        print(f"{kernel}{''.join(', ' + s for s in setting)}: {total:.3f} ms over the {len(common)} rows every run "
              f"timed{why}", file=sys.stderr)
        if not wrong:
            sums.append((total, kernel))
    if not common or len(sums) < 2:  # nothing to choose between
        return 1
    print(min(sums)[1])
    return 0


if __name__ == "__main__":
    args = sys.argv[1:]
    if len(args) >= 2 and args[0] == "--goal":
        sys.exit(goal(args[1:]))
    elif len(args) >= 2 and args[0] == "--check":
        sys.exit(check(args[1:]))
    elif len(args) >= 2 and args[0] == "--best-kernel":
        sys.exit(best_kernel(args[1:]))
    elif len(args) == 3 and args[1] == "--baselines":
        main(args[0], args[2].split(","))
    elif len(args) == 1 and not args[0].startswith("--"):
        main(args[0])
    else:
        sys.exit("usage: tools/bench_table.py BENCH.json [--baselines a,b] | --goal BENCH.json... | --check BENCH.json... | "
                 "--best-kernel BENCH.json...")
