#!/usr/bin/env python3
"""The filters of a `uvtrain rica` run, one image grid per setting.

    tools/plot_filters.py runs/rica -o docs/rica_filters.png [--raw] [--max-filters 100] [--title TEXT]

Reads RUN/results.csv and RUN/rica.json, then each setting's RUN/<setting>/filters.csv (rows of W in
whitened space; --raw: filters_raw.csv, W·zca, the filters as applied to mean-removed raw patches).
Panels: the first row holds the settings with the run's base number of filters (100%, 50%, 25%
learned, ...); a second row, when there is one, the settings with more (predicted) filters at equal
learned numbers. Each panel shows the first --max-filters filters as p×p tiles, each scaled to its
own range (grey = 0); three-channel patches are drawn in colour. Each filter is drawn without its mean
(over all pixels and channels): the patches have their means removed, so W·x never sees a filter's
mean, and an overcomplete W parks spare filters in that direction, which would otherwise draw as
flat black or white tiles (filters_raw.csv has no mean to begin with: zca maps it to 0). Runs headless (matplotlib's Agg
backend); needs python3-matplotlib.
"""
import argparse
import csv
import json
import math
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)
import numpy as np  # noqa: E402


def read_filters(path, side, channels):
    rows = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line:
                rows.append([float(v) for v in line.split(",")])
    filters = np.array(rows)
    if filters.shape[1] != side * side * channels:
        sys.exit(f"plot_filters: {path}: {filters.shape[1]} values a filter, expected {side}x{side}x{channels}")
    return filters.reshape(-1, side, side, channels)  # HWC, as uvtrain writes them


def tile_grid(filters, max_filters):
    """One image of up to max_filters tiles, one pixel of border; each tile scaled to [0, 1] with 0 at 0.5."""
    count = min(len(filters), max_filters)
    side, channels = filters.shape[1], filters.shape[3]
    cols = math.ceil(math.sqrt(count))
    grid_rows = math.ceil(count / cols)
    step = side + 1
    image = np.ones((grid_rows * step + 1, cols * step + 1, channels))
    for i in range(count):
        f = filters[i] - filters[i].mean()
        scale = np.max(np.abs(f))
        tile = 0.5 + 0.5 * f / scale if scale > 0 else np.full_like(f, 0.5)
        r, c = divmod(i, cols)
        image[1 + r * step:1 + r * step + side, 1 + c * step:1 + c * step + side] = tile
    return image[:, :, 0] if channels == 1 else image


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", help="a `uvtrain rica` output directory")
    parser.add_argument("-o", "--output", required=True, help="PNG to write")
    parser.add_argument("--raw", action="store_true", help="draw filters_raw.csv (W·zca) instead of filters.csv")
    parser.add_argument("--max-filters", type=int, default=100, help="filters shown per panel")
    parser.add_argument("--title", default=None)
    args = parser.parse_args()

    with open(os.path.join(args.run, "rica.json")) as f:
        run = json.load(f)
    with open(os.path.join(args.run, "results.csv"), newline="") as f:
        settings = list(csv.DictReader(f))
    if not settings:
        sys.exit(f"plot_filters: {args.run}/results.csv has no settings")
    side, channels = int(run["patch"]), int(run["channels"])
    base = int(settings[0]["features"])
    rows = [[s for s in settings if int(s["features"]) == base], [s for s in settings if int(s["features"]) != base]]
    rows = [r for r in rows if r]
    ncols = max(len(r) for r in rows)
    fig, axes = plt.subplots(len(rows), ncols, figsize=(3.2 * ncols, 4.0 * len(rows)), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    name = "filters_raw.csv" if args.raw else "filters.csv"
    for r, row in enumerate(rows):
        for c, s in enumerate(row):
            filters = read_filters(os.path.join(args.run, s["setting"], name), side, channels)
            ax = axes[r][c]
            ax.imshow(tile_grid(filters, args.max_filters), cmap="gray", interpolation="nearest", vmin=0, vmax=1)
            shown = min(len(filters), args.max_filters)
            label = f"{int(s['features'])} filters, {100 * float(s['fraction']):g}% learned"
            detail = f"{int(s['learned_params']):,} learned; held-out rel. recon. {float(s['test_relative_reconstruction']):.3f}"
            if shown < len(filters):
                detail += f"\n(first {shown} of {len(filters)} filters)"
            ax.set_title(f"{label}\n{detail}", fontsize=8)
    space = "W·zca (raw-pixel space)" if args.raw else "W (whitened space)"
    title = args.title or f"RICA filters, {run['dataset']} {side}x{side} patches, {space}"
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(args.output, dpi=120)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
