"""tools/stint_report.py - what tools/report-ensembles and tools/oracle-ceiling share: reading a
`stint evaluate` report's predictions.csv / val_predictions.csv, MAE, and the percentile
bootstrap over test users that the report's own intervals use (each resample draws users with
replacement, each keeping all its rows; fixed seed, so every comparison sees the same draws).

Python 3 standard library only; nothing in stint depends on it."""
import csv
import math
import random

BASE_PREFIX = "baseline: "


def read(path, die):
    """(header, users, {column: floats}) of a predictions CSV, session_start and
    actual_length_s included; die(message) on a missing or malformed file."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
    except OSError as e:
        die("%s: %s (run stint evaluate --out DIR first)" % (path, e.strerror))
    if len(rows) < 2:
        die("%s: no rows" % path)
    head = rows[0]
    if head[:3] != ["user", "session_start", "actual_length_s"]:
        die("%s: not a stint evaluate predictions file (header %s)" % (path, head[:3]))
    try:
        cols = {name: [float(r[i]) for r in rows[1:]] for i, name in enumerate(head[1:], 1)}
    except (ValueError, IndexError):
        die("%s: a row is not numeric or is short" % path)
    return head, [r[0] for r in rows[1:]], cols


def mae(pred, actual):
    return sum(abs(p - a) for p, a in zip(pred, actual)) / len(actual)


def bootstrap(err_a, err_b, users, resamples):
    """MAE ratio a / b and its 95 % percentile interval over users."""
    by = {}
    for i, u in enumerate(users):
        by.setdefault(u, []).append(i)
    groups = [(sum(err_a[i] for i in ix), sum(err_b[i] for i in ix)) for ix in by.values()]
    rnd = random.Random(20261207)
    ratios = []
    for _ in range(resamples):
        sa = sb = 0.0
        for _ in groups:
            a, b = groups[rnd.randrange(len(groups))]
            sa += a
            sb += b
        ratios.append(sa / sb if sb > 0 else float("inf"))
    ratios.sort()
    lo = ratios[int(0.025 * (resamples - 1))]
    hi = ratios[int(math.ceil(0.975 * (resamples - 1)))]
    return sum(err_a) / sum(err_b), lo, hi


def verdict(lo, hi):
    return "better" if hi < 1 else "worse" if lo > 1 else "not significant"
