"""deploy/compose/prometheus_check.py - a real Prometheus scraping the compose stack with the
shipped configuration (deploy/monitoring/prometheus.yml), run by deploy/compose/test:

1. every scrape job of the configuration has its target up (no scrape error: the exposition of
   each service is accepted by Prometheus's own parser);
2. every query of the Grafana dashboard (deploy/monitoring/grafana/dashboards/stint.json)
   evaluates without error and returns at least one series, so no panel of the dashboard is
   empty on a stack that has streamed data.

Exit 0 when both hold within --timeout seconds, 1 otherwise (each failure named).
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


def query(base, expr):
    """(number of series, error or None)."""
    try:
        r = get(f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
    except urllib.error.HTTPError as e:
        return 0, f"HTTP {e.code}: {e.read().decode(errors='replace')[:200]}"
    if r.get("status") != "success":
        return 0, r.get("error", "status " + str(r.get("status")))
    return len(r["data"]["result"]), None


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
        except OSError as e:
            bad = {"*": f"Prometheus not answering: {e}"}
        if not bad:
            break
        time.sleep(1)
    if bad:
        for job, why in sorted(bad.items()):
            print(f"prometheus_check: target of {job} not up: {why}")
        return 1
    print(f"prometheus: {len(jobs)} of {len(jobs)} scrape jobs up after "
          f"{time.monotonic() - t0:.1f} s ({', '.join(jobs)})")

    # rate() needs two scrapes in its window: wait until every panel's query has data.
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
              f"or an error within {a.timeout:.0f} s")
        return 1
    print(f"prometheus: all {len(exprs)} dashboard queries return data "
          f"({time.monotonic() - t0:.1f} s after the check started)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
