#!/usr/bin/env python3
"""Per-step kernel table from Nsight Compute's `--print-summary per-kernel` text.

    tools/ncu_summary.py raw/ncu-kernels.txt [--per-step-kernel gather_batch_kernel]

ncu prints one block per (kernel, launch configuration) with its invocation count and a Duration
row (min, max, average). The training step launches `gather_batch_kernel` exactly once, so its
invocation count is the number of steps profiled; every row is divided by it. Durations are ncu's:
each kernel run alone at locked clocks, so they show where the time goes, not the real step time.
Exit 2 on a file with no kernel blocks (ncu failed or was stopped before the first summary), or
with a duration unit it does not know.
"""
import argparse
import re
import sys

# Duration units as ncu versions print them (short and long forms).
UNIT_US = {"ns": 1e-3, "nsecond": 1e-3, "us": 1.0, "usecond": 1.0, "ms": 1e3, "msecond": 1e3,
           "s": 1e6, "second": 1e6}


class ParseError(Exception):
    pass


def kernel_name(head):
    """The kernel's name from a block's first line: the text before its argument list, which is the
    last balanced (...) before the grid; names may hold parentheses ("(anonymous namespace)")."""
    grid = re.search(r"\s\(\d+, \d+, \d+\)x\(\d+, \d+, \d+\)", head)
    sig = head[: grid.start()] if grid else head
    end = sig.rstrip()
    if end.endswith(")"):
        depth = 0
        for i in range(len(end) - 1, -1, -1):
            depth += {")": 1, "(": -1}.get(end[i], 0)
            if depth == 0:
                end = end[:i]
                break
    return re.sub(r"^void ", "", end.strip())


def parse(text):
    """[(name, grid, invocations, average µs)] for each kernel block of the summary."""
    rows = []
    for block in re.split(r"\n  (?=[^ \n])", text):
        inv = re.search(r"Invocations ([\d,]+)", block)
        dur = re.search(r"Duration\s+(\S+)\s+([\d.,]+)\s+([\d.,]+)\s+([\d.,]+)", block)
        if not inv or not dur:
            continue
        if dur.group(1) not in UNIT_US:
            raise ParseError(f"unknown duration unit '{dur.group(1)}'")
        head = block.strip().splitlines()[0]
        grid = re.search(r"(\(\d+, \d+, \d+\))x(\(\d+, \d+, \d+\))", head)
        avg = float(dur.group(4).replace(",", "")) * UNIT_US[dur.group(1)]
        rows.append((kernel_name(head), grid.group(1) + "x" + grid.group(2) if grid else "",
                     int(inv.group(1).replace(",", "")), avg))
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("summary", help="ncu --print-summary per-kernel output")
    parser.add_argument("--per-step-kernel", default="gather_batch_kernel",
                        help="a kernel launched once per step (its count is the number of steps)")
    args = parser.parse_args()
    try:
        text = open(args.summary, encoding="utf-8", errors="replace").read()
    except OSError as e:
        print(f"ncu_summary: error: cannot read '{args.summary}': {e.strerror}", file=sys.stderr)
        return 2
    try:
        rows = parse(text)
    except ParseError as e:
        print(f"ncu_summary: error: '{args.summary}': {e}", file=sys.stderr)
        return 2
    if not rows:
        print(f"ncu_summary: error: no kernel summary in '{args.summary}' (did ncu finish?)", file=sys.stderr)
        return 2
    steps = sum(inv for name, _, inv, _ in rows if args.per_step_kernel in name)
    if steps == 0:
        print(f"ncu_summary: error: '{args.per_step_kernel}' was not profiled: cannot count steps", file=sys.stderr)
        return 2
    rows.sort(key=lambda r: -r[2] * r[3])
    total = sum(inv * avg for _, _, inv, avg in rows) / steps
    launches = sum(inv for _, _, inv, _ in rows) / steps
    print(f"{steps} steps profiled; per step: {launches:.1f} launches, {total:.1f} µs of kernel time (ncu clocks)")
    print("(the profiled window need not start or end on a step: per-step figures are within about 1/steps)")
    print(f"{'µs/step':>8} {'share':>6} {'launches':>8} {'µs each':>8}  kernel (grid x block)")
    for name, grid, inv, avg in rows:
        print(f"{inv * avg / steps:8.1f} {100 * inv * avg / steps / total:5.1f}% {inv / steps:8.2f} {avg:8.2f}  {name} {grid}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
