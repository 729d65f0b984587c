#!/usr/bin/env python3
"""Paper-style figure of a `uvtrain sweep`: test error (%) against the fraction of parameters learned.

    tools/plot_results.py runs/sweep-mnist_mlp/results.csv -o docs/mnist_sweep.png [--title TEXT]

One panel per column count J. In each, one line per pair through the mean over seeds of every
requested fraction, error bars one standard deviation over seeds (none for a single seed). The x
position is the fraction the run actually learned (results.csv's learned_fraction: the learned
weights and biases of every layer but the output, over the dense model's), averaged over seeds.
Pairs that ignore J (an empty `columns`, e.g. LowRank) are drawn in every panel; pairs that ignore
the fraction too (an empty `fraction`: Dense) are a dashed horizontal line at their mean test error.
Runs headless (matplotlib's Agg backend); needs python3-matplotlib.
"""
import argparse
import sys
from collections import defaultdict

import matplotlib

from sweep_results import mean_std, read_rows

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)

MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*", "<", ">"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("csv", help="a sweep's results.csv")
    parser.add_argument("-o", "--output", required=True, help="PNG to write")
    parser.add_argument("--title", default=None, help="figure title (default: the sweep's name)")
    parser.add_argument("--ymax", type=float, default=None,
                        help="clip the error axis at this many percent (the random dictionaries' errors "
                             "at small fractions otherwise flatten the rest); points above it are off-axis")
    parser.add_argument("--xmax", type=float, default=None,
                        help="clip the fraction axis (LowRank learns U too, so its fractions exceed 1)")
    args = parser.parse_args()
    for name in ("ymax", "xmax"):
        value = getattr(args, name)
        if value is not None and not value > 0:
            print(f"plot_results: --{name} must be positive, got {value}", file=sys.stderr)
            sys.exit(2)

    try:
        rows = read_rows(args.csv)
    except OSError as e:
        sys.exit(f"plot_results: {args.csv}: {e.strerror}")
    except ValueError as e:
        sys.exit(f"plot_results: {e}")
    if not rows:
        sys.exit(f"plot_results: {args.csv}: no finished cells to plot")

    # pair -> J ("" when the pair ignores J) -> requested fraction -> [(learned fraction, test error %)]
    points = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    flat = defaultdict(list)  # pairs that ignore the fraction: test errors (%) over seeds
    pairs = []  # in the table's order, for stable colours and markers
    for r in rows:
        pair = r["pair"]
        if pair not in pairs:
            pairs.append(pair)
        error = 100.0 * float(r["test_error"])
        if r["fraction"] == "":
            flat[pair].append(error)
        else:
            points[pair][r["columns"]][float(r["fraction"])].append((float(r["learned_fraction"]), error))

    panels = sorted({int(j) for p in points.values() for j in p if j != ""}) or [None]
    style = {p: (f"C{i % 10}", MARKERS[i % len(MARKERS)]) for i, p in enumerate(pairs)}
    fig, axes = plt.subplots(1, len(panels), figsize=(4.8 * len(panels), 4.2), sharey=True, squeeze=False)
    for ax, j in zip(axes[0], panels):
        for pair in pairs:
            colour, marker = style[pair]
            if pair in flat:
                m, _ = mean_std(flat[pair])
                ax.axhline(m, color=colour, linestyle="--", linewidth=1.2, label=f"{pair} ({m:.2f}%)")
                continue
            by_j = points[pair]
            series = by_j.get(str(j)) if j is not None else None
            if series is None:
                series = by_j.get("")  # a pair that ignores J: the same line in every panel
            if not series:
                continue
            xs, ys, es = [], [], []
            for fraction in sorted(series):
                learned = [x for x, _ in series[fraction]]
                m, s = mean_std([e for _, e in series[fraction]])
                xs.append(sum(learned) / len(learned))
                ys.append(m)
                es.append(s)
            ax.errorbar(xs, ys, yerr=es, color=colour, marker=marker, markersize=5, linewidth=1.2,
                        capsize=3, label=pair)
        ax.set_title(f"J = {j}" if j is not None else "")
        ax.set_xlabel("fraction of parameters learned")
        ax.grid(True, alpha=0.3)
        if args.ymax is not None:
            ax.set_ylim(0, args.ymax)
        if args.xmax is not None:
            ax.set_xlim(0, args.xmax)
    axes[0][0].set_ylabel("test error (%)")
    # Outside the panels, to the right: inside, it covered the J = 10 panel's random dictionaries.
    axes[0][-1].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1), borderaxespad=0)
    sweep = rows[0].get("sweep", "")
    fig.suptitle(args.title if args.title is not None else f"sweep {sweep}")
    fig.tight_layout()
    fig.savefig(args.output, dpi=120, bbox_inches="tight")
    print(f"plot_results: wrote {args.output} ({len(rows)} cells, {len(panels)} panel(s))")


if __name__ == "__main__":
    main()
