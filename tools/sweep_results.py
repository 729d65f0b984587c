"""Reading a `uvtrain sweep`'s results.csv, shared by tools/plot_results.py and tools/results_table.py.
Standard library only."""
import csv
import math
import os

COLUMNS = {"pair", "columns", "fraction", "seed", "learned_fraction", "test_error", "seconds"}


def mean_std(values):
    """Mean and sample standard deviation over seeds; the deviation is 0.0 for a single value."""
    m = sum(values) / len(values)
    if len(values) < 2:
        return m, 0.0
    return m, math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1))


def busy_wall_seconds(rows):
    """Wall time the sweep spent running cells: the length of the union of the cells' run intervals,
    each [finish − seconds, finish] with finish the mtime of the cell's summary.json. Cells run two or
    more at a time, so this is less than their seconds added up; gaps while nothing ran (a machine
    stopped between sessions) do not count. A cell resumed after a kill counts its last run only.
    Returns (seconds, cells measured); cells without a readable summary are left out."""
    intervals = []
    for r in rows:
        try:
            finish = os.path.getmtime(os.path.join(r.get("cell_dir", ""), "summary.json"))
            intervals.append((finish - float(r["seconds"]), finish))
        except (OSError, ValueError, TypeError):
            continue
    total, end = 0.0, -math.inf
    for begin, finish in sorted(intervals):
        if finish <= end:
            continue
        total += finish - max(begin, end)
        end = finish
    return total, len(intervals)


def read_rows(path):
    """The rows of a results.csv. Raises OSError for an unreadable file and ValueError naming the
    columns a file lacks."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if rows and not COLUMNS.issubset(rows[0].keys()):
        raise ValueError(f"{path}: missing columns {sorted(COLUMNS - set(rows[0].keys()))}")
    return rows
