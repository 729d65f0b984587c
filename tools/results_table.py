#!/usr/bin/env python3
"""Markdown tables of a `uvtrain sweep`'s results.csv: test error (%) as mean ± sample standard
deviation over seeds, one row per pair and column count J, one column per requested fraction.

    tools/results_table.py runs/sweep-mnist_mlp/results.csv
    tools/results_table.py runs/sweep-mnist_mlp_10pct/results.csv --against Dense --within 0.5

--against PAIR adds, per pair and J, the gap to that pair's mean (a pair that ignores the fraction,
such as Dense), and --within X marks the gaps of at most X points and names the best pair.
--reference-csv FILE takes that pair from another sweep's table (the unbounded dense baseline). Cells
list how many seeds they average ("n=3"); a missing cell is "–". Also prints the sweep's cell time
(the sum of its cells' own seconds) and the cell count. Standard library only.
"""
import argparse
import sys
from collections import defaultdict

from sweep_results import busy_wall_seconds, mean_std, read_rows


def cell_text(values):
    if not values:
        return "–"
    m, s = mean_std([100 * v for v in values])
    spread = f" ± {s:.2f}" if len(values) > 1 else ""
    return f"{m:.2f}{spread} (n={len(values)})"


def read_table(path):
    """The rows of a results.csv, or None after saying why not (a missing file or column)."""
    try:
        return read_rows(path)
    except OSError as e:
        print(f"results_table: {path}: {e.strerror}", file=sys.stderr)
    except ValueError as e:
        print(f"results_table: {e}", file=sys.stderr)
    return None


def errors_by_cell(rows):
    """(pair, J, fraction or None) -> the test errors over seeds."""
    errors = defaultdict(list)
    for r in rows:
        errors[(r["pair"], r["columns"], float(r["fraction"]) if r["fraction"] else None)].append(float(r["test_error"]))
    return errors


def machine_of(device):
    """The machine a cell ran on, from results.csv's device column: "cpu", or the GPU's name
    ("cuda:0 (NVIDIA H200, sm_90)" → "NVIDIA H200")."""
    if device.startswith("cuda") and "(" in device:
        return device[device.index("(") + 1:].split(",")[0].rstrip(")")
    return device.split(" ")[0] or "an unknown device"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("csv", help="a sweep's results.csv")
    parser.add_argument("--against", help="a fraction-free pair to compare every pair with (e.g. Dense)")
    parser.add_argument("--within", type=float, default=None, help="mark gaps of at most this many points")
    parser.add_argument("--reference-csv", help="take the --against pair from this results.csv instead "
                                                 "(e.g. runs/sweep-mnist_mlp_dense/results.csv)")
    args = parser.parse_args()
    rows = read_table(args.csv)
    if rows is None:
        return 2
    if not rows:
        print(f"results_table: {args.csv}: no finished cells yet")
        return 0

    pairs = list(dict.fromkeys(r["pair"] for r in rows))  # the sweep's order
    fractions = sorted({float(r["fraction"]) for r in rows if r["fraction"]})
    errors = errors_by_cell(rows)

    reference = None
    if args.against:
        ref_errors = errors
        if args.reference_csv:
            ref_rows = read_table(args.reference_csv)
            if ref_rows is None:
                return 2
            ref_errors = errors_by_cell(ref_rows)
        ref = [v for (p, _, f), vs in ref_errors.items() if p == args.against for v in vs]
        if ref:
            reference = mean_std(ref)[0]
        else:
            print(f"(no finished '{args.against}' cells yet: no gaps)")

    header = ["pair", "J"] + ([f"f = {f:g}" for f in fractions] if fractions else ["test error"])
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    best = None
    for pair in pairs:
        js = sorted({j for (p, j, _) in errors if p == pair}, key=lambda j: (j == "", int(j) if j else 0))
        for j in js:
            if any(f is None for (p, jj, f) in errors if p == pair and jj == j):
                vs = errors[(pair, j, None)]
                print(f"| {pair} | {j or '–'} | " + " | ".join([cell_text(vs)] * max(1, len(fractions))) + " |")
                continue
            cells = []
            for f in fractions:
                vs = errors.get((pair, j, f), [])
                text = cell_text(vs)
                if reference is not None and vs:
                    gap = 100 * (mean_std(vs)[0] - reference)
                    mark = " ✓" if args.within is not None and gap <= args.within else ""
                    text += f" [{gap:+.2f}{mark}]"
                    if best is None or gap < best[0]:
                        best = (gap, pair, j, f, len(vs))
                cells.append(text)
            print(f"| {pair} | {j or '–'} | " + " | ".join(cells) + " |")

    seconds = sum(float(r["seconds"]) for r in rows if r["seconds"] not in ("", "nan"))
    print(f"\n{len(rows)} finished cells; their own times add up to {seconds / 3600:.2f} h "
          f"({seconds:.0f} s)")
    # Per machine: the union of one machine's cells' intervals is its wall time; across machines that
    # ran at the same time it would be neither machine's.
    machines = {}
    for r in rows:
        machines.setdefault(machine_of(r.get("device", "")), []).append(r)
    for machine, machine_rows in sorted(machines.items()):
        busy, measured = busy_wall_seconds(machine_rows)
        if measured:
            print(f"wall time on {machine} while its cells ran (union of {measured} cells' run intervals): "
                  f"{busy / 3600:.2f} h")
    if reference is not None:
        n_ref = len([v for (p, _, f), vs in ref_errors.items() if p == args.against for v in vs])
        where = f" ({args.reference_csv})" if args.reference_csv else ""
        print(f"{args.against}{where}: {100 * reference:.2f}% mean test error over {n_ref} seed"
              f"{'s' if n_ref != 1 else ''}; [gap] = pair mean − that, in points")
        if best:
            gap, pair, j, f, n = best
            verdict = "" if args.within is None else (
                f" — within {args.within} points" if gap <= args.within else f" — NOT within {args.within} points")
            print(f"best: {pair} J={j or '–'} f={f:g} ({n} seed{'s' if n != 1 else ''}), {gap:+.2f} points{verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
