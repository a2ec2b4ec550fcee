"""deploy/compose/prometheus_check.py - a real Prometheus scraping the compose stack with the
shipped configuration (deploy/monitoring/prometheus.yml), run by deploy/compose/test:

1. every scrape job of the configuration has its target up (no scrape error: the exposition of
   each service is accepted by Prometheus's own parser);
2. every query of the Grafana dashboard (deploy/monitoring/grafana/dashboards/stint.json)
   evaluates without error and returns at least one series, so no panel of the dashboard is
   empty on a stack that has streamed data.

Exit 0 when both hold, each within --timeout seconds, 1 otherwise (each failure named). A poll
that fails for any reason (Prometheus starting, a reset connection, an answer that is not the
API's JSON) is retried until the timeout, and the last reason is printed.
  prometheus_check.py --url http://127.0.0.1:29090 --config deploy/monitoring/prometheus.yml \
      --dashboard deploy/monitoring/grafana/dashboards/stint.json"""
import argparse
import json
import re
import sys
import time
import urllib.parse
import urllib.request


def get(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return json.load(r)


def config_jobs(path):
    """The job names of a scrape configuration (the YAML's `- job_name: x` lines)."""
    with open(path, encoding="utf-8") as f:
        return re.findall(r"^\s*-\s*job_name:\s*([\w.-]+)\s*$", f.read(), re.M)


def targets_up(base, jobs):
    """The jobs whose targets are not all up, with the reason (empty when all are up)."""
    active = get(f"{base}/api/v1/targets?state=active")["data"]["activeTargets"]
    bad = {}
    for job in jobs:
        ts = [t for t in active if t["labels"].get("job") == job]
        if not ts:
            bad[job] = "no target"
        for t in ts:
            if t["health"] != "up":
                bad[job] = f"{t['scrapeUrl']}: {t['health']} {t.get('lastError', '')}".strip()
    return bad


def why(e):
    """One line for an exception of a poll."""
    if isinstance(e, urllib.error.HTTPError):
        return f"HTTP {e.code}: {e.read().decode(errors='replace')[:200]}"
    return f"{type(e).__name__}: {e}"


def query(base, expr):
    """(number of series, error or None)."""
    try:
        r = get(f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
        if r.get("status") != "success":
            return 0, r.get("error", "status " + str(r.get("status")))
        return len(r["data"]["result"]), None
    except Exception as e:  # noqa: BLE001 - any failure of one poll is retried
        return 0, why(e)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--url", required=True, help="Prometheus, e.g. http://127.0.0.1:29090")
    p.add_argument("--config", required=True, help="the scrape configuration Prometheus runs")
    p.add_argument("--dashboard", required=True, help="the Grafana dashboard JSON")
    p.add_argument("--timeout", type=float, default=90)
    a = p.parse_args()
    base = a.url.rstrip("/")
    jobs = config_jobs(a.config)
    if not jobs:
        sys.exit(f"prometheus_check: no job_name in {a.config}")
    with open(a.dashboard, encoding="utf-8") as f:
        dash = json.load(f)
    exprs = [(panel["title"], t["expr"]) for panel in dash["panels"]
             for t in panel.get("targets", [])]

    t0 = time.monotonic()
    deadline = t0 + a.timeout
    bad = {"*": "Prometheus not answering"}
    while time.monotonic() < deadline:
        try:
            bad = targets_up(base, jobs)
        except Exception as e:  # noqa: BLE001 - any failure of one poll is retried
            bad = {"*": f"Prometheus not answering: {why(e)}"}
        if not bad:
            break
        time.sleep(1)
    if bad:
        for job, reason in sorted(bad.items()):
            print(f"prometheus_check: target of {job} not up: {reason}")
        return 1
    print(f"prometheus: {len(jobs)} of {len(jobs)} scrape jobs up after "
          f"{time.monotonic() - t0:.1f} s ({', '.join(jobs)})")

    # rate() needs two scrapes in its window: wait until every panel's query has data, with a
    # timeout of its own (the targets may have taken most of the first).
    t1 = time.monotonic()
    deadline = t1 + a.timeout
    results = {}
    while True:
        results = {(title, expr): query(base, expr) for title, expr in exprs}
        empty = [k for k, (n, err) in results.items() if err or n == 0]
        if not empty or time.monotonic() >= deadline:
            break
        time.sleep(2)
    for (title, expr), (n, err) in results.items():
        print(f"  {'ok ' if n and not err else 'BAD'} {n:3d} series  {title}: {expr}"
              + (f"  ({err})" if err else ""))
    if empty:
        print(f"prometheus_check: {len(empty)} of {len(exprs)} dashboard queries returned no data "
              f"or an error within {a.timeout:.0f} s: "
              + "; ".join(f"{expr} ({results[(title, expr)][1] or 'no series'})"
                          for title, expr in empty))
        return 1
    print(f"prometheus: all {len(exprs)} dashboard queries return data "
          f"({time.monotonic() - t0:.1f} s after the check started)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
