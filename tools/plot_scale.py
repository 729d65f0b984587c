#!/usr/bin/env python3
"""Plot bench_scale's JSON: time per training step and peak memory against the width K (= N) of
one fully connected layer, one line per strategy, on log-log axes.

    build/bench_scale --device=cpu --benchmark_out=scale.json --benchmark_out_format=json
    /usr/bin/python3 tools/plot_scale.py scale.json -o scale.png [--title T] [--table]

Reference lines (dashed, grey) are honest slopes for a fixed fraction f = r/K and batch M:
  - time: dense 6·M·K² and the chain 2·M·r·(2K + 3N) = 10·f·M·K² FLOPs are both ∝ K², a factor
    0.6/f apart in FLOPs; materialise adds 4·K·r·N = 4·f·K³ (forming W, then dV = Uᵀ·dW), so it
    turns ∝ K³ once 4·f·K passes 6·M (dotted line).
  - memory: dense holds 3·K·N floats (W, dW, momentum), materialise 2·K·N (W, dW) plus the chain's
    4·f·K² (U, and V with its gradient and momentum): every line ends ∝ K², the chain's f-times
    smaller. Below f·K ≈ M the batch's activations (M·K) dominate the chain, which is then ∝ K.
Each K² (or K³) line goes through its strategy's widest point; the ratio of each strategy to the
chain at the widest width both ran is written on the panel.
--table prints the measured numbers as a markdown table (ms/step and peak MiB per K).
"""
import argparse
import json
import re
import statistics
import sys
from collections import defaultdict

ORDER = ["dense", "materialise", "chain", "chain_fused", "onthefly_w"]


def load(path):
    """strategy -> {K: (ms_per_step, peak_bytes)}, and the skipped cases as [(strategy, K, message)].
    With --benchmark_repetitions the time is the median of the repetitions' (aggregates ignored)."""
    with open(path) as f:
        report = json.load(f)
    times, peaks, skipped = defaultdict(lambda: defaultdict(list)), defaultdict(dict), {}
    for b in report.get("benchmarks", []):
        if b.get("run_type") == "aggregate":
            continue
        strategy = b["name"].split("/")[0]
        k = next((int(p[2:]) for p in b["name"].split("/") if p.startswith("K:")), None)
        if b.get("error_occurred"):
            skipped[(strategy, k)] = b.get("error_message", "")
            continue
        k = int(b["K"])
        times[strategy][k].append(float(b["ms_per_step"]))
        peaks[strategy][k] = max(peaks[strategy].get(k, 0.0), float(b["peak_bytes"]))
    rows = {s: {k: (statistics.median(t), peaks[s][k]) for k, t in by_k.items()} for s, by_k in times.items()}
    return report.get("context", {}), rows, [(s, k, m) for (s, k), m in skipped.items()]


def ordered(strategies):
    return sorted(strategies, key=lambda s: (ORDER.index(s) if s in ORDER else len(ORDER), s))


def table(context, rows, skipped):
    ks = sorted({k for r in rows.values() for k in r} | {k for _, k, _ in skipped if k})
    strategies = ordered(rows.keys() | {s for s, _, _ in skipped})
    skip = {(s, k) for s, k, _ in skipped}
    print(f"backend: {context.get('backend', '?')}, fraction {context.get('fraction', '?')}, "
          f"batch {context.get('batch', '?')}, {context.get('date', '')}\n")
    header = ["K"] + [f"{s} ms/step" for s in strategies] + [f"{s} peak MiB" for s in strategies]
    print("| " + " | ".join(header) + " |")
    print("|" + "---:|" * len(header))

    def cell(s, k, index):
        if k not in rows.get(s, {}):
            return "skipped" if (s, k) in skip else ""
        v = rows[s][k][index]
        if index == 1:
            return f"{v / 2**20:.1f}"
        return f"{v:.3g}" if v < 1000 else f"{v:.0f}"

    for k in ks:
        cells = [str(k)] + [cell(s, k, 0) for s in strategies] + [cell(s, k, 1) for s in strategies]
        print("| " + " | ".join(cells) + " |")
    for s, k, message in skipped:
        print(f"\n{s} K={k}: {message}", end="")
    if skipped:
        print()


def reference(ax, ks, anchor_k, anchor_y, power, style, label):
    """A grey line ∝ K**power through (anchor_k, anchor_y) over the widths ks."""
    xs = list(ks)
    ax.plot(xs, [anchor_y * (k / anchor_k) ** power for k in xs], style, color="0.55", linewidth=1,
            label=label, zorder=1)


def plot(context, rows, out, title):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    strategies = ordered(rows.keys())
    ks = sorted({k for r in rows.values() for k in r})
    if not ks:
        sys.exit("plot_scale.py: no measured case in the JSON (all skipped or empty)")
    fig, axes = plt.subplots(1, 2, figsize=(12, 5))
    panels = [(axes[0], 0, 1.0, "time per training step (ms)"),
              (axes[1], 1, 1.0 / 2**20, "peak memory (MiB, backend allocator)")]
    for ax, index, scale, ylabel in panels:
        for s in strategies:
            pts = sorted(rows[s].items())
            ax.plot([k for k, _ in pts], [v[index] * scale for _, v in pts], "o-", label=s, zorder=3)
        # Honest slopes: K² through dense's and the chain's widest points; materialise's time K³.
        drawn = set()
        for s in ("dense", "chain"):
            if s in rows:
                k_max = max(rows[s])
                label = "∝ K²" if "K2" not in drawn else None
                drawn.add("K2")
                reference(ax, ks, k_max, rows[s][k_max][index] * scale, 2, "--", label)
        if index == 1 and "chain" in rows:  # the chain's small-K memory: the batch's M·K activations
            k_min = min(rows["chain"])
            reference(ax, [k for k in ks if k <= 8 * k_min], k_min, rows["chain"][k_min][index] * scale, 1, "-.",
                      "∝ K (activations, M·K)")
        if index == 0 and "materialise" in rows:
            k_max = max(rows["materialise"])
            reference(ax, ks, k_max, rows["materialise"][k_max][index] * scale, 3, ":",
                      "∝ K³ (forming W: 4·f·K³)")
        # Ratios to the chain at the widest width both ran.
        notes = []
        if "chain" in rows:
            for s in strategies:
                if s == "chain":
                    continue
                common = set(rows[s]) & set(rows["chain"])
                if common:
                    k = max(common)
                    notes.append(f"{s} / chain at K={k}: {rows[s][k][index] / rows['chain'][k][index]:.3g}×")
        if notes:
            ax.text(0.02, 0.98, "\n".join(notes), transform=ax.transAxes, va="top", ha="left", fontsize=8,
                    bbox=dict(boxstyle="round", facecolor="white", alpha=0.8))
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("K = N (layer width)")
        ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(loc="lower right", fontsize=8)
    fraction, batch = context.get("fraction", "?"), context.get("batch", "?")
    try:
        fraction = f"{float(fraction):g}"
    except ValueError:
        pass
    heading = title or "one predicted fully connected layer"
    description = context.get("backend", "?")
    backend = description.split(" (")[0]  # "cpu", "cuda:0"
    threads = re.search(r"(\d+) threads?\b", description)
    if threads:
        backend += f", {threads.group(1)} thread" + ("" if threads.group(1) == "1" else "s")
    fig.suptitle(f"{heading} (K = N, r = int(f·K)): fraction f = {fraction}, batch M = {batch}, {backend}",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("json", help="bench_scale's --benchmark_out JSON")
    parser.add_argument("-o", "--out", help="PNG to write")
    parser.add_argument("--title", default="")
    parser.add_argument("--table", action="store_true", help="print a markdown table of the numbers")
    args = parser.parse_args()
    if not args.out and not args.table:
        parser.error("nothing to do: give -o OUT.png and/or --table")
    context, rows, skipped = load(args.json)
    if args.table:
        table(context, rows, skipped)
    if args.out:
        plot(context, rows, args.out, args.title)


if __name__ == "__main__":
    main()
