"""The service HTTP endpoint: /metrics parses with the real Prometheus text-format parser
(prometheus_client) and passes the strict checks of tests/support/prom_exposition.py (families
registered interleaved come out grouped, one # HELP and # TYPE each, histogram buckets cumulative
and printed short), carries the right values and the process_* families; /healthz and /readyz
answer as specified."""
import os
import subprocess
import sys
import urllib.error
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from prom_exposition import problems  # noqa: E402

failures = 0
passes = 0


def check(cond, what):
    global failures, passes
    if cond:
        passes += 1
        print("ok  ", what)
    else:
        failures += 1
        print("FAIL", what)


def get(port, path):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, r.read().decode(), r.headers.get("Content-Type")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(), e.headers.get("Content-Type")


def main():
    binary = os.path.join(os.environ["STINT_BIN_DIR"], "stint-http-sample")
    p = subprocess.Popen([binary], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        port = int(p.stdout.readline())
        status, body, ctype = get(port, "/metrics")
        check(status == 200 and ctype.startswith("text/plain; version=0.0.4"), "metrics content type")
        bad = problems(body)
        for p_ in bad:
            print("     ", p_)
        check(not bad, f"strict exposition checks ({len(bad)} problems)")
        fams = {f.name: f for f in text_string_to_metric_families(body)}
        recs = fams.get("stint_sample_records")
        check(recs is not None and recs.type == "counter", "counter family parsed")
        if recs:
            by_topic = {s.labels["topic"]: s.value for s in recs.samples if s.name.endswith("_total")}
            check(by_topic == {"listens": 41.0, "sessions": 2.0}, f"counter values by label {by_topic}")
        gauge = fams.get("stint_sample_queue_depth")
        check(gauge is not None and gauge.type == "gauge" and gauge.samples[0].value == 7.5, "gauge")
        check(gauge is not None and gauge.documentation == "Queue depth.\nSecond line.", "help escaping")
        hist = fams.get("stint_sample_latency_seconds")
        check(hist is not None and hist.type == "histogram", "histogram family parsed")
        if hist:
            buckets = {s.labels["le"]: s.value for s in hist.samples if s.name.endswith("_bucket")}
            want = {"0.1": 1.0, "1": 3.0, "2.5": 3.0, "+Inf": 4.0}
            check(buckets == want, f"cumulative buckets, bounds printed short {buckets}")
            total = [s.value for s in hist.samples if s.name.endswith("_sum")]
            count = [s.value for s in hist.samples if s.name.endswith("_count")]
            check(total == [5.0625] and count == [4.0], "histogram sum and count")
        for name in ("process_cpu_seconds", "process_resident_memory_bytes",
                     "process_virtual_memory_bytes", "process_open_fds", "process_max_fds",
                     "process_start_time_seconds"):
            f = fams.get(name)
            v = f.samples[0].value if f and len(f.samples) == 1 else None
            # A process this young may not have used a whole clock tick of CPU yet.
            check(v is not None and (v >= 0 if name == "process_cpu_seconds" else v > 0),
                  f"{name} = {v}")

        status, body, _ = get(port, "/healthz")
        check(status == 503 and "kafka=down" in body, "healthz is 503 before Kafka/Redis are reachable")
        status, body, _ = get(port, "/readyz")
        check(status == 503 and body.startswith("not ready: kafka=down"),
              f"readyz is 503 while Kafka/Redis are not reachable ({body.strip()!r})")
        p.stdin.write("health\n")
        p.stdin.flush()
        p.stdout.readline()
        status, body, _ = get(port, "/healthz")
        check(status == 200 and body.startswith("ok"), "healthz is 200 once both are reachable")
        status, body, _ = get(port, "/readyz")
        check(status == 200 and body == "ready sample\n", f"readyz 200 with its detail ({body!r})")
        status, _, _ = get(port, "/nope")
        check(status == 404, "unknown path is 404")
    finally:
        p.stdin.close()
        p.wait(timeout=10)
    check(p.returncode == 0, "server exits cleanly")
    print(f"{passes} passed, {failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
