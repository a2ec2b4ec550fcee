"""The service HTTP endpoint: /metrics parses with the real Prometheus text-format parser
(prometheus_client) and carries the right values; /healthz and /readyz answer as specified."""
import os
import subprocess
import sys
import urllib.error
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

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
        fams = {f.name: f for f in text_string_to_metric_families(body)}
        recs = fams.get("stint_sample_records")
        check(recs is not None and recs.type == "counter", "counter family parsed")
        if recs:
            by_topic = {s.labels["topic"]: s.value for s in recs.samples if s.name.endswith("_total")}
            check(by_topic == {"listens": 41.0, "sessions": 2.0}, f"counter values by label {by_topic}")
        gauge = fams.get("stint_sample_queue_depth")
        check(gauge is not None and gauge.type == "gauge" and gauge.samples[0].value == 7.5, "gauge")
        check(gauge is not None and gauge.documentation == "Queue depth.\nSecond line.", "help escaping")
        hist = fams.get("stint_sample_latency_ms")
        check(hist is not None and hist.type == "histogram", "histogram family parsed")
        if hist:
            buckets = {float(s.labels["le"]): s.value for s in hist.samples if s.name.endswith("_bucket")}
            want = {1.0: 1.0, 5.0: 3.0, 10.0: 3.0, float("inf"): 4.0}
            check(buckets == want, f"cumulative buckets {buckets}")
            total = [s.value for s in hist.samples if s.name.endswith("_sum")]
            count = [s.value for s in hist.samples if s.name.endswith("_count")]
            check(total == [106.5] and count == [4.0], "histogram sum and count")

        status, body, _ = get(port, "/healthz")
        check(status == 503 and "kafka=down" in body, "healthz is 503 before Kafka/Redis are reachable")
        p.stdin.write("health\n")
        p.stdin.flush()
        p.stdout.readline()
        status, body, _ = get(port, "/healthz")
        check(status == 200 and body.startswith("ok"), "healthz is 200 once both are reachable")
        status, _, _ = get(port, "/readyz")
        check(status == 200, "readyz")
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
