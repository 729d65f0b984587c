"""Reading a `uvtrain sweep`'s results.csv, shared by tools/plot_results.py and tools/results_table.py.
Standard library only."""
import csv
import math

COLUMNS = {"pair", "columns", "fraction", "seed", "learned_fraction", "test_error", "seconds"}


def mean_std(values):
    """Mean and sample standard deviation over seeds; the deviation is 0.0 for a single value."""
    m = sum(values) / len(values)
    if len(values) < 2:
        return m, 0.0
    return m, math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1))


def read_rows(path):
    """The rows of a results.csv. Raises OSError for an unreadable file and ValueError naming the
    columns a file lacks."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if rows and not COLUMNS.issubset(rows[0].keys()):
        raise ValueError(f"{path}: missing columns {sorted(COLUMNS - set(rows[0].keys()))}")
    return rows
