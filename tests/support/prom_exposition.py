"""prom_exposition.py - strict checks of a Prometheus text exposition (format 0.0.4), for the tests
that scrape /metrics. problems(text) returns a list of what is wrong, empty when the text is what
a Prometheus server accepts and what stint promises (docs/metrics.md):

- it parses with prometheus_client's parser, and no family comes out twice or untyped (that
  parser splits a family whose lines are not contiguous, or yields a stray line as an untyped
  family of its own);
- each family has exactly one # HELP and one # TYPE, before its samples, and its samples are
  contiguous (no other family's line in between);
- metric and label names are valid, no series (name + label set) appears twice, every value is
  a float;
- histograms: for each label set, _bucket lines with strictly increasing le ending in +Inf,
  counts cumulative (non-decreasing), _count equal to the +Inf bucket, one _sum; le printed in the
  shortest form that reads back as the same double ("0.1", not "0.10000000000000001");
- counters end in _total; no histogram is in milliseconds (stint's convention: seconds).

families(text) returns {name: prometheus_client Metric} (the parser's names: counters without
_total)."""
import math
import re

from prometheus_client.parser import text_string_to_metric_families

NAME_RE = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
LABEL_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
# name{labels} value [timestamp]; label values are "..." with \\, \" and \n escapes.
SAMPLE_RE = re.compile(
    r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{((?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*",?)*)\})?'
    r" (\S+)( -?\d+)?$")
LABEL_PAIR_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"')
SUFFIXES = {"counter": ("",), "gauge": ("",), "untyped": ("",),
            "histogram": ("_bucket", "_sum", "_count"), "summary": ("", "_sum", "_count")}


def shortest(v):
    """The shortest %g form of v that reads back as v (what st_metrics prints)."""
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    for p in range(1, 18):
        s = "%.*g" % (p, v)
        if float(s) == v:
            break
    # Digits written out below 1e17 ("10", not "1e+01"), as Python's repr does.
    exp10 = int(s.split("e")[1]) if "e" in s else -1
    if 0 <= exp10 < 17:
        s = "%.*g" % (exp10 + 1, v)
    return s


def parse_value(s):
    if s in ("+Inf", "Inf"):
        return math.inf
    if s == "-Inf":
        return -math.inf
    return float(s)  # raises on anything that is not a float (NaN parses)


def families(text):
    return {f.name: f for f in text_string_to_metric_families(text)}


def problems(text):
    out = []
    # 1. prometheus_client's parser: each family once, none untyped.
    try:
        fams = list(text_string_to_metric_families(text))
    except Exception as e:  # the parser's own error
        return [f"prometheus_client cannot parse it: {e}"]
    seen = {}
    for f in fams:
        seen[f.name] = seen.get(f.name, 0) + 1
        if f.type in ("untyped", "unknown"):
            out.append(f"family {f.name} parsed as untyped (a sample outside its family?)")
    out += [f"family {n} parsed {c} times (its lines are not contiguous)"
            for n, c in seen.items() if c > 1]

    # 2. Line by line: HELP/TYPE once each, samples contiguous and of the current family.
    helps, types = {}, {}
    finished = set()  # families whose block has ended
    current, current_type = None, None
    series = set()
    not_seconds = set()
    hist = {}  # (family, labels without le) -> {"buckets": [(le_text, count)], "sum": n, "count": n}
    for no, line in enumerate(text.split("\n"), 1):
        if line == "":
            continue
        if line.startswith("#"):
            parts = line.split(None, 3)
            if len(parts) >= 3 and parts[1] in ("HELP", "TYPE"):
                name = parts[2]
                if not NAME_RE.match(name):
                    out.append(f"line {no}: bad metric name {name!r}")
                if name != current:
                    if current is not None:
                        finished.add(current)
                    if name in finished:
                        out.append(f"line {no}: family {name} starts again after other families")
                    current, current_type = name, None
                if parts[1] == "HELP":
                    helps[name] = helps.get(name, 0) + 1
                    if helps[name] > 1:
                        out.append(f"line {no}: second # HELP for {name}")
                    if name in types:
                        out.append(f"line {no}: # HELP for {name} after its # TYPE")
                else:
                    types[name] = types.get(name, 0) + 1
                    if types[name] > 1:
                        out.append(f"line {no}: second # TYPE for {name}")
                    t = parts[3] if len(parts) > 3 else ""
                    if t not in SUFFIXES:
                        out.append(f"line {no}: unknown type {t!r} for {name}")
                    current_type = t
            continue
        m = SAMPLE_RE.match(line)
        if not m:
            out.append(f"line {no}: not a sample line: {line!r}")
            continue
        name, labels_text, value = m.group(1), m.group(3) or "", m.group(4)
        fam = current if current_type else None
        if fam is None or name not in [fam + s for s in SUFFIXES.get(current_type, ("",))]:
            out.append(f"line {no}: sample {name} outside a # TYPE block of its family "
                       f"(current: {current})")
            continue
        try:
            v = parse_value(value)
        except ValueError:
            out.append(f"line {no}: value {value!r} is not a float")
            continue
        pairs = LABEL_PAIR_RE.findall(labels_text)
        names = [k for k, _ in pairs]
        if len(set(names)) != len(names):
            out.append(f"line {no}: a label name repeats: {labels_text}")
        if any(k.startswith("__") for k in names):
            out.append(f"line {no}: reserved label name in {labels_text}")
        key = (name, tuple(sorted(pairs)))
        if key in series:
            out.append(f"line {no}: series {name}{{{labels_text}}} appears twice")
        series.add(key)
        if current_type == "counter" and not name.endswith("_total"):
            out.append(f"line {no}: counter {name} does not end in _total")
        if current_type == "histogram":
            if re.search(r"_(ms|milliseconds)$", fam) and fam not in not_seconds:
                not_seconds.add(fam)
                out.append(f"line {no}: histogram {fam} is not in seconds")
            rest = tuple(sorted((k, val) for k, val in pairs if k != "le"))
            h = hist.setdefault((fam, rest), {"buckets": [], "sum": None, "count": None})
            if name.endswith("_bucket"):
                le = dict(pairs).get("le")
                if le is None:
                    out.append(f"line {no}: bucket without le")
                    continue
                h["buckets"].append((le, v, no))
            elif name.endswith("_sum"):
                h["sum"] = v
            else:
                h["count"] = v
    if current is not None:
        finished.add(current)
    for name in set(helps) | set(types):
        if name not in types:
            out.append(f"family {name} has no # TYPE")
        if name not in helps:
            out.append(f"family {name} has no # HELP")

    # 3. Histograms.
    for (fam, rest), h in hist.items():
        what = f"histogram {fam}{dict(rest) if rest else ''}"
        b = h["buckets"]
        if not b or b[-1][0] != "+Inf":
            out.append(f"{what}: the last bucket is not le=\"+Inf\"")
        prev_le, prev_n = -math.inf, 0
        for le, n, no in b:
            try:
                lv = parse_value(le)
            except ValueError:
                out.append(f"line {no}: le={le!r} is not a float")
                continue
            if le != shortest(lv):
                out.append(f"line {no}: le=\"{le}\" is not the shortest form (\"{shortest(lv)}\")")
            if not lv > prev_le:
                out.append(f"line {no}: le={le} not above the previous bound")
            if n < prev_n:
                out.append(f"line {no}: bucket count {n} below the previous {prev_n} (not cumulative)")
            prev_le, prev_n = lv, n
        if h["count"] is None or h["sum"] is None:
            out.append(f"{what}: _count or _sum missing")
        elif b and h["count"] != b[-1][1]:
            out.append(f"{what}: _count {h['count']} differs from the +Inf bucket {b[-1][1]}")
    return out
