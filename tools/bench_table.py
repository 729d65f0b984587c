#!/usr/bin/env python3
"""Markdown table from a benchmark's JSON (bench_predicted_linear, bench_predicted_conv2d): per pass
and shape, each strategy's time and TFLOP/s (and, where the bench reports floor_ms, the time as a
multiple of the strategy's roofline floor), and each other strategy's speed-up over the best
baseline measured in the same run.

    build/bench_predicted_linear --benchmark_out=b.json --benchmark_out_format=json
    tools/bench_table.py b.json                                   # baselines: chain, materialise (cuBLAS)
    tools/bench_table.py c.json --baselines dense,materialise     # conv: cuDNN on W
"""
import json
import sys
from collections import defaultdict

def main(path, baselines=("chain", "materialise")):
    BASELINES = tuple(baselines)
    with open(path) as f:
        report = json.load(f)
    rows = defaultdict(dict)  # (pass, shape) -> strategy -> (ms, tflops)
    for b in report["benchmarks"]:
        if b.get("run_type") == "aggregate":
            continue
        # name: strategy/pass/set/M:../K:../N:../r:../J:../manual_time
        parts = b["name"].split("/")
        strategy, pass_name = parts[0], parts[1]
        shape = " ".join(p.replace(":", "=") for p in parts[3:] if ":" in p)
        unit = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}[b["time_unit"]]
        rows[(pass_name, shape)][strategy] = (b["real_time"] * unit, b.get("TFLOP/s", float("nan")),
                                              b.get("floor_ms"))
    strategies = sorted({s for r in rows.values() for s in r}, key=lambda s: (s not in BASELINES, s))
    context = report.get("context", {})
    on_gpu = not context.get("backend", "").startswith("cpu")  # the GEMM settings are the GPU's
    gemm = f", gemm {context['gemm']}" if on_gpu and "gemm" in context else ""
    kernel = f", tf32x3 kernel {context['tf32x3_kernel']}" if on_gpu and "tf32x3_kernel" in context else ""
    print(f"backend: {context.get('backend', '?')}{gemm}{kernel}, {context.get('date', '')}\n")
    with_floor = any(v[2] for r in rows.values() for v in r.values())
    unit_note = " (TFLOP/s; × floor)" if with_floor else " (TFLOP/s)"
    header = ["pass", "shape"] + [f"{s} ms{unit_note}" for s in strategies] + \
             [f"{s} vs best baseline" for s in strategies if s not in BASELINES]
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
            cells.append(f"{best / r[s][0]:.2f}x" if best and s in r else "")
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    args = sys.argv[1:]
    if len(args) == 3 and args[1] == "--baselines":
        main(args[0], args[2].split(","))
    elif len(args) == 1:
        main(args[0])
    else:
        sys.exit("usage: tools/bench_table.py BENCH.json [--baselines a,b]")
