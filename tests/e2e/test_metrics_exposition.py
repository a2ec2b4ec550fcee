"""e2e: every service's /metrics is a Prometheus text exposition a real scraper accepts (issue 20).
The five services run as `make up` starts them (tests/e2e/live_env.py: private STINT_HOME,
ports, groups, Redis prefix and topics). One listen goes through the pipeline so that the batch
loop, the counters and the histogram of each stage have moved; then each /metrics is checked by
tests/support/prom_exposition.py (prometheus_client's parser, each family contiguous with one
# HELP and one # TYPE, histograms cumulative up to le="+Inf" with bounds in shortest form), and
for what docs/metrics.md promises every service:

- process_cpu_seconds_total, process_resident_memory_bytes, process_virtual_memory_bytes,
  process_open_fds, process_max_fds, process_start_time_seconds, with plausible values;
- stint_build_info{service="<name>",version="<project version>"} 1;
- stint_batch_duration_seconds (a histogram in seconds; no stint_batch_duration_ms any more);
- every stint_* family is either one of the shared pipeline families or stint_<service>_*, so a
  family name tells the service apart, and the shared ones are told apart by the scrape target
  (job/instance) and stint_build_info;
- stint_consumer_lag_records{topic,partition}: one series per partition of the service's input
  topic(s), 0 once the listen has been processed;
- every metric the Grafana dashboard (deploy/monitoring/grafana/dashboards/stint.json) queries is
  a family some service exposes."""
import json
import os
import re
import sys
import time
import urllib.request

from live_env import BROKERS, FAILS, SERVICES, SRC, LiveServices, check

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from prom_exposition import families, problems  # noqa: E402

DEADLINE_S = 30
SHARED = {"stint_records_in", "stint_records_out", "stint_dead_letters", "stint_batches",
          "stint_batch_retries", "stint_batch_duration_seconds", "stint_build_info",
          "stint_consumer_lag_records", "stint_loop_seconds"}
PROCESS = ("process_cpu_seconds", "process_resident_memory_bytes", "process_virtual_memory_bytes",
           "process_open_fds", "process_max_fds", "process_start_time_seconds")


def project_version():
    with open(os.path.join(SRC, "CMakeLists.txt"), encoding="utf-8") as f:
        return re.search(r"project\(stint VERSION (\S+)", f.read()).group(1)


def scrape(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        return r.headers.get("Content-Type"), r.read().decode()


def value(fams, name, **labels):
    f = fams.get(name)
    for s in f.samples if f else ():
        if all(s.labels.get(k) == v for k, v in labels.items()):
            return s.value
    return None


def main():
    started_s = time.time()
    live = LiveServices("metrics")
    try:
        if not live.start():
            return
        ports = {name: live.http_base + i for i, name in enumerate(SERVICES)}

        from confluent_kafka import Producer
        user = f"user_{live.tag}"
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        prod = Producer({"bootstrap.servers": BROKERS})
        prod.produce(live.topic("listens.raw"), key=user,
                     value=f'{{"user_id":"{user}","timestamp":"{now}","artist_name":"Deep Dish",'
                           f'"track_name":"Flashdance"}}')
        check(prod.flush(30) == 0, "one listen published")
        # The listen reaches the predictor as an OPENED: every stage but the clusterer (which
        # reads CLOSED sessions and profiles) has consumed a record.
        deadline = time.time() + DEADLINE_S
        moving = ("ingest", "enricher", "sessionizer", "predictor")
        while True:
            got = {n: value(families(scrape(ports[n])[1]), "stint_records_in") for n in moving}
            if all(v and v >= 1 for v in got.values()) or time.time() > deadline:
                break
            time.sleep(0.2)
        check(all(v and v >= 1 for v in got.values()),
              f"the listen went through ingest, enricher, sessionizer, predictor: {got}")

        # The lag gauges are NaN until a service knows the partition's end (its first fetch
        # response) and where it reads from; they are updated every second.
        deadline = time.time() + DEADLINE_S
        while time.time() < deadline:
            lags = [s.value for n in SERVICES for f in [families(scrape(ports[n])[1])]
                    for s in (f["stint_consumer_lag_records"].samples
                              if "stint_consumer_lag_records" in f else [])]
            if lags and all(v == v for v in lags):
                break
            time.sleep(0.2)

        version = project_version()
        exposed = set()
        for name in SERVICES:
            ctype, text = scrape(ports[name])
            check(ctype.startswith("text/plain; version=0.0.4"), f"{name}: content type {ctype}")
            bad = problems(text)
            for p in bad[:20]:
                print(f"      {name}: {p}")
            check(not bad, f"{name}: /metrics is a valid exposition ({len(bad)} problems)")
            fams = families(text)
            exposed |= {s.name for f in fams.values() for s in f.samples} | set(fams)
            lag = fams.get("stint_consumer_lag_records")
            parts = sorted((s.labels.get("topic", ""), s.labels.get("partition", ""))
                           for s in lag.samples) if lag else []
            check(lag is not None and lag.type == "gauge" and len(parts) >= 3 and
                  all(t.startswith(live.tag + ".") for t, _ in parts),
                  f"{name}: stint_consumer_lag_records per input partition {parts[:4]}")
            if name in moving:
                check(all(s.value == 0 for s in lag.samples),
                      f"{name}: lag 0 once the listen was processed "
                      f"{[s.value for s in lag.samples]}")

            for p in PROCESS:
                check(p in fams and len(fams[p].samples) == 1, f"{name}: {p} present")
            rss = value(fams, "process_resident_memory_bytes") or 0
            check(1 << 20 < rss < 4 << 30, f"{name}: process_resident_memory_bytes {rss:.0f}")
            fds, max_fds = value(fams, "process_open_fds") or 0, value(fams, "process_max_fds") or 0
            check(3 <= fds <= max_fds, f"{name}: process_open_fds {fds:.0f} <= max_fds {max_fds:.0f}")
            t0 = value(fams, "process_start_time_seconds") or 0
            check(started_s - 2 <= t0 <= time.time(),
                  f"{name}: process_start_time_seconds {t0:.2f} is after the test started "
                  f"({started_s:.2f})")
            cpu = value(fams, "process_cpu_seconds")
            check(cpu is not None and 0 <= cpu <= 2 * (time.time() - started_s) + 1,
                  f"{name}: process_cpu_seconds_total {cpu}")

            info = fams.get("stint_build_info")
            samples = [(s.labels, s.value) for s in info.samples] if info else []
            check(samples == [({"service": name, "version": version}, 1.0)],
                  f"{name}: stint_build_info {samples}")

            hist = fams.get("stint_batch_duration_seconds")
            check(hist is not None and hist.type == "histogram",
                  f"{name}: stint_batch_duration_seconds is a histogram")
            check(not any("_ms" in n for n in fams), f"{name}: no *_ms family")
            if name in moving:
                n = value(fams, "stint_batch_duration_seconds", le="+Inf") or 0
                total = [s.value for s in hist.samples if s.name.endswith("_sum")] if hist else []
                check(n >= 1 and total and 0 < total[0] < 60 * n,
                      f"{name}: batches observed in seconds (count {n}, sum {total})")

            foreign = sorted(f for f in fams if f.startswith("stint_") and f not in SHARED
                             and not f.startswith(f"stint_{name}_"))
            check(not foreign, f"{name}: every other stint_ family is stint_{name}_* ({foreign})")
        with open(os.path.join(SRC, "deploy", "monitoring", "grafana", "dashboards", "stint.json"),
                  encoding="utf-8") as f:
            dash = json.load(f)
        exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
        names = {n for e in exprs for n in re.findall(r"\b((?:stint|process)_[a-z_]+)\b", e)}
        unknown = sorted(names - exposed)
        check(names and not unknown, f"the dashboard's {len(exprs)} queries use only exposed "
                                     f"metrics ({len(names)} names; unknown: {unknown})")
    finally:
        live.stop()
        live.cleanup()


if __name__ == "__main__":
    main()
    print(f"{len(FAILS)} failed")
    sys.exit(1 if FAILS else 0)
