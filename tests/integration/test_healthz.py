"""integration: /healthz and /readyz tell the truth within seconds. stint-ingest (a batch loop
without timer ticks) and stint-enricher (with a 1 s tick, the path that used to skip the probes)
run on their own topics. /readyz is 200 once the group has assigned the partitions and nothing is
left to read. A backlog of 5,000 listens, read by an ingest limited to one record per batch with
http.ready_lag_max=100, must turn its /readyz 503 naming the lag, and 200 again only once at
most 100 are left (its output topic says how many it processed). Then Redis is stopped and
started again, then Kafka: each service's /healthz and /readyz must turn 503 naming the server
that is down within 10 s of the stop, and 200 again within 30 s (60 s for Kafka) of the restart.
Then Kafka is down for 50 s, past ST_PIPELINE_CONSUMER_RESTART_MS: each service must replace its
consumer, be healthy within 60 s of the restart, and ingest must process a listen published
after it. Both then stop with SIGTERM and exit 0. Stops and restarts the shared local stack's servers
(ctest runs tests one at a time)."""
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from itest import BIN, BROKERS, SRC, get  # noqa: E402

REDIS_PORT = os.environ.get("STINT_REDIS_PORT", "16379")
STACK = os.path.join(SRC, "deploy", "local", "stack")

FAILS = []


def check(ok, what):
    print(("ok    " if ok else "FAIL  ") + what, flush=True)
    if not ok:
        FAILS.append(what)


def wait_health(ports, wants, timeout_s):
    """Seconds until every port answers each (path, status, text in the body) of wants, or None."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s:
        answers = {(name, path): get(p, path) for name, p in ports.items() for path, _, _ in wants}
        if all(answers[name, path][0] == want_status and want_text in answers[name, path][1]
               for name in ports for path, want_status, want_text in wants):
            return time.monotonic() - t0
        time.sleep(0.2)
    print(f"after {timeout_s} s: {answers}")
    return None


HEALTHY = [("/healthz", 200, "kafka=ok redis=ok"), ("/readyz", 200, "ready partitions=1 lag=0")]


def down(server):
    return [("/healthz", 503, f"{server}=down"), ("/readyz", 503, f"{server}=down")]


def end_offset(consumer, topic):
    from confluent_kafka import TopicPartition
    return consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)[1]


def backlog(ports, topics):
    """Publishes 5,000 listens at once and follows ingest's /readyz until it is 200 again."""
    from confluent_kafka import Consumer, Producer

    n, lag_max = 5000, 100
    prod = Producer({"bootstrap.servers": BROKERS, "linger.ms": 20})
    t0 = 1230768000
    for i in range(n):
        user = f"user_{i % 50:06d}"
        ts = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t0 + i * 60))
        prod.produce(topics["raw"], key=user,
                     value=f'{{"user_id":"{user}","timestamp":"{ts}","artist_name":"A",'
                           f'"track_name":"T{i}"}}')
        prod.poll(0)
    check(prod.flush(30) == 0, f"{n} listens published")
    del prod
    cons = Consumer({"bootstrap.servers": BROKERS, "group.id": f"{topics['raw']}-probe"})
    # The lag is computed every second from the last fetch's end offset: the backlog shows within
    # a few seconds; from then on, 200 must mean caught up.
    seen_lag, ready_at = None, None
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        status, body = get(ports["ingest"], "/readyz")
        if status == 503 and f"> http.ready_lag_max={lag_max}" in body:
            seen_lag = seen_lag or body
        if status == 200 and seen_lag:
            ready_at = end_offset(cons, topics["listens"])
            break
        time.sleep(0.1)
    check(seen_lag is not None, f"ingest /readyz 503 naming the lag while behind ({seen_lag!r})")
    check(ready_at is not None and ready_at >= n - lag_max,
          f"ingest /readyz 200 again only once at most {lag_max} are left to read "
          f"({ready_at} of {n} processed)")
    t = wait_health({"ingest": ports["ingest"]}, [HEALTHY[1]], 60)
    check(t is not None, "ingest /readyz reports lag=0 once all are processed")
    cons.close()


def restarts(path):
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.read().count(" kafka_consumer_restart reason=")


def long_outage(ports, topics, logs):
    """Kafka down for longer than ST_PIPELINE_CONSUMER_RESTART_MS (30 s): each service replaces
    its consumer (the way out of a librdkafka client lost after a broker restart), is healthy
    and ready within 60 s of the restart, and ingest then turns a new listen into a record."""
    from confluent_kafka import Consumer, Producer

    before = {name: restarts(path) for name, path in logs.items()}
    check(stack("stop", "kafka") == 0, "kafka stopped for 50 s")
    time.sleep(50)
    after = {name: restarts(path) - before[name] for name, path in logs.items()}
    check(all(n >= 1 for n in after.values()),
          f"each service restarted its consumer during the outage ({after})")
    check(stack("up") == 0, "stack up again")
    t = wait_health(ports, HEALTHY, 60)
    check(t is not None, f"healthy and ready again within 60 s of a 50 s outage "
                         f"({t if t is None else round(t, 1)} s)")
    cons = Consumer({"bootstrap.servers": BROKERS, "group.id": f"{topics['raw']}-probe2"})
    n0 = end_offset(cons, topics["listens"])
    prod = Producer({"bootstrap.servers": BROKERS})
    prod.produce(topics["raw"], key="user_000001",
                 value='{"user_id":"user_000001","timestamp":"2009-01-05T00:00:00Z",'
                       '"artist_name":"A","track_name":"after the outage"}')
    check(prod.flush(30) == 0, "one more listen published")
    deadline, n1 = time.monotonic() + 30, n0
    while n1 <= n0 and time.monotonic() < deadline:
        time.sleep(0.5)
        n1 = end_offset(cons, topics["listens"])
    check(n1 == n0 + 1, f"ingest, with its new consumer, turned it into a record ({n0} -> {n1})")
    cons.close()


def stack(*args):
    r = subprocess.run([STACK, *args], capture_output=True, text=True)
    if r.returncode != 0:
        print(r.stdout + r.stderr)
    return r.returncode


def main():
    from confluent_kafka.admin import AdminClient, NewTopic

    tag = f"it-hz-{os.getpid()}-{int(time.time())}"
    topics = {k: f"{tag}.{k}" for k in ("raw", "listens", "idle", "enriched", "ldlq", "edlq")}
    admin = AdminClient({"bootstrap.servers": BROKERS})
    for f in admin.create_topics([NewTopic(t, 1, 1) for t in topics.values()]).values():
        f.result(30)
    tmp = tempfile.mkdtemp(prefix="stint-healthz-")
    common = ["-b", BROKERS, "--redis.port", REDIS_PORT, "--redis.prefix", tag, "--http.port", "0"]
    args = {
        # One record per batch: a backlog takes seconds to read. The enricher reads a topic of
        # its own, so that it makes no Last.fm requests.
        "ingest": ["--in.topic", topics["raw"], "--out.topic", topics["listens"], "--dlq.topic",
                   topics["ldlq"], "--batch.max", "1", "--http.ready_lag_max", "100"],
        "enricher": ["--in.topic", topics["idle"], "--out.topic", topics["enriched"],
                     "--dlq.topic", topics["edlq"]],
    }
    procs, ports, logs = {}, {}, {}
    try:
        for name, extra in args.items():
            logs[name] = os.path.join(tmp, f"{name}.log")
            group = ["-G", f"{tag}-{name}"]
            argv = [os.path.join(BIN, f"stint-{name}")] + common + group + extra
            procs[name] = subprocess.Popen(argv, stdout=open(logs[name], "w"),
                                           stderr=subprocess.STDOUT)
        for name in procs:
            deadline = time.monotonic() + 20
            while name not in ports and time.monotonic() < deadline:
                with open(logs[name], encoding="utf-8", errors="replace") as f:
                    m = re.search(r" starting .*http=127\.0\.0\.1:(\d+)", f.read())
                if m:
                    ports[name] = int(m.group(1))
                time.sleep(0.1)
        check(len(ports) == 2, f"both services started: {sorted(ports)}")
        if len(ports) != 2:
            return 1
        t = wait_health(ports, HEALTHY, 30)
        check(t is not None, "healthy, and ready (assigned, nothing to read) at start")

        backlog(ports, topics)

        check(stack("stop", "redis") == 0, "redis stopped")
        t = wait_health(ports, down("redis"), 10)
        check(t is not None, f"/healthz and /readyz 503 redis=down within 10 s of the stop "
                             f"({t if t is None else round(t, 1)} s)")
        check(stack("up") == 0, "stack up again")
        t = wait_health(ports, HEALTHY, 30)
        check(t is not None, f"healthy and ready again within 30 s "
                             f"({t if t is None else round(t, 1)} s)")

        check(stack("stop", "kafka") == 0, "kafka stopped")
        t = wait_health(ports, down("kafka"), 10)
        check(t is not None, f"/healthz and /readyz 503 kafka=down within 10 s of the stop "
                             f"({t if t is None else round(t, 1)} s)")
        check(stack("up") == 0, "stack up again")
        t = wait_health(ports, HEALTHY, 60)
        check(t is not None, f"healthy and ready again within 60 s "
                             f"({t if t is None else round(t, 1)} s)")

        long_outage(ports, topics, logs)
        for name, p in procs.items():
            p.send_signal(signal.SIGTERM)
            try:
                rc = p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                rc = "timeout"
            check(rc == 0, f"{name}: SIGTERM -> exit {rc}")
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.kill()
        if stack("status") != 0:
            stack("up")
        try:
            admin.delete_topics(list(topics.values()))
        except Exception:  # noqa: BLE001 - cleanup only
            pass
        if FAILS:
            for name, path in logs.items():
                with open(path, encoding="utf-8", errors="replace") as f:
                    print(f"--- {name} log (last 15 lines)\n" + "".join(f.readlines()[-15:]))
    print(f"{len(FAILS)} failed")
    return 1 if FAILS else 0


if __name__ == "__main__":
    sys.exit(main())
