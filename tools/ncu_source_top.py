#!/usr/bin/env python3
"""Where a kernel's warps stall, instruction by instruction, from Nsight Compute's source page.

    ncu ... --section SourceCounters --import-source yes -o REPORT <program>
    ncu -i REPORT.ncu-rep --page source --csv --print-source sass > SOURCE.csv
    tools/ncu_source_top.py SOURCE.csv [--top 20]

The source page has a row per SASS instruction with its PC-sampling counts ("Warp Stall Sampling
(All Samples)": how often a warp was found at that instruction, stalled or issuing). This prints
each opcode's share of the samples (the barrier, the wgmma waits, the shared-memory loads, ...)
and the instructions with the most samples, with their addresses, so that a stall reason ncu
reports for the whole kernel can be put on the instruction it comes from. Exit 2 on a file with no
such table (ncu failed, or its version has no source page).
"""
import argparse
import csv
import re
import sys


def find_table(rows):
    """The header's index and its source and samples columns (names vary a little by version)."""
    for i, row in enumerate(rows):
        source = next((j for j, c in enumerate(row) if c.strip() in ("Source", "# Source")), None)
        samples = next((j for j, c in enumerate(row) if c.strip().startswith("Warp Stall Sampling (All")), None)
        if source is not None and samples is not None:
            address = next((j for j, c in enumerate(row) if c.strip() in ("Address", "# Address")), None)
            return i, source, samples, address
    return None


def number(text):
    text = text.strip().replace(",", "")
    try:
        return float(text)
    except ValueError:
        return 0.0


def opcode(sass):
    """The instruction's opcode with its modifiers: the first word after any predicate."""
    words = sass.strip().split()
    if words and re.fullmatch(r"@!?U?P[T0-9]+", words[0]):
        words = words[1:]
    return words[0].rstrip(";") if words else "?"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("csv")
    parser.add_argument("--top", type=int, default=20)
    args = parser.parse_args()
    with open(args.csv, newline="") as f:
        rows = list(csv.reader(f))
    found = find_table(rows)
    if not found:
        print(f"{args.csv}: no source table with a 'Warp Stall Sampling (All Samples)' column", file=sys.stderr)
        return 2
    header, source, samples, address = found
    body = []
    for row in rows[header + 1:]:
        if len(row) <= max(source, samples):
            break  # the table's end (another kernel's header or a blank line)
        if row[source].strip() in ("Source", "# Source"):
            break
        body.append((number(row[samples]), row[address].strip() if address is not None else "", row[source].strip()))
    total = sum(s for s, _, _ in body)
    if not body or total <= 0:
        print(f"{args.csv}: the source table has no samples", file=sys.stderr)
        return 2
    print(f"{len(body)} instructions, {total:.0f} samples")
    by_opcode = {}
    for s, _, sass in body:
        key = opcode(sass)
        by_opcode[key] = by_opcode.get(key, 0.0) + s
    print("by opcode (share of the samples, 1% or more):")
    for key, s in sorted(by_opcode.items(), key=lambda kv: -kv[1]):
        if s / total >= 0.01:
            print(f"  {100 * s / total:5.1f}%  {key}")
    print(f"the {min(args.top, len(body))} instructions with the most samples:")
    for s, where, sass in sorted(body, key=lambda r: -r[0])[: args.top]:
        print(f"  {100 * s / total:5.1f}%  {where:>8}  {sass}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
