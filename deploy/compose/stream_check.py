#!/usr/bin/env python3
"""The streaming part of `make compose-test` (deploy/compose/test), run on the host against the
compose stack's published ports (STINT_KAFKA_BROKERS, STINT_SCHEMA_REGISTRY_URL):

1. replays the generated dataset of the `data` volume (the `replay` job of the tools profile,
   paced with --speed so that it lasts long enough), reading `sessions` and `predictions` with
   `stint tail --follow` from the start;
2. restarts one service container mid-stream (`docker-compose restart`, the sessionizer by
   default; with --kill, SIGKILL and `start`) while the replay still runs, and waits until it is
   healthy again;
3. publishes SENTINELS_PER_PARTITION listens per partition (distinct users) with kcat to the
   published Kafka port, stamped 2 days after the data (as the integration tests' sentinels: as
   many users as the partition clock's largest quorum, so stream time moves there and every real
   session closes by its deadline);
4. checks that nothing was lost or changed: the CLOSED sessions, and the consumer's final view of
   `sessions`, equal `stint sessions` run offline on the same files; every offline session has a
   Prediction; a Prediction comes for each kcat listen; and tools/python/stint_consumer.py reads
   the same predictions as `stint tail`.

    stream_check.py --data DIR --compose 'docker-compose -p NAME --env-file FILE' [--speed X]
                    [--restart SERVICE] [--kill]

The readers, the consumer's view and the kcat publisher are those of tests/e2e."""
import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import types

SRC = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(SRC, "tests", "e2e"))
from live_env import BIN, BROKERS, FAILS, TopicReader, check  # noqa: E402
from test_live_corrections import publish, session_view, val  # noqa: E402

SENTINEL_AFTER_S = 2 * 86400  # within the sessionizer's clock.ahead_max_s
SENTINELS_PER_PARTITION = 4  # the largest clock.quorum (ST_SESSIONIZER_CLOCK_MAX)
CLOSE_DEADLINE_S = 180


def murmur2(data):
    """Kafka's murmur2 (the Java client's and librdkafka's murmur2_random partitioner)."""
    m, r, h = 0x5bd1e995, 24, (0x9747b28c ^ len(data)) & 0xffffffff
    n = len(data) // 4 * 4
    for i in range(0, n, 4):
        k = int.from_bytes(data[i:i + 4], "little")
        k = (k * m) & 0xffffffff
        k ^= k >> r
        k = (k * m) & 0xffffffff
        h = ((h * m) & 0xffffffff) ^ k
    rest = data[n:]
    if len(rest) == 3:
        h ^= rest[2] << 16
    if len(rest) >= 2:
        h ^= rest[1] << 8
    if len(rest) >= 1:
        h ^= rest[0]
        h = (h * m) & 0xffffffff
    h ^= h >> 13
    h = (h * m) & 0xffffffff
    h ^= h >> 15
    return h


def sentinel_users(partitions, per=SENTINELS_PER_PARTITION):
    """per user ids for each partition of the services' topics (all keyed by user id, murmur2),
    partition by partition."""
    users, i = {p: [] for p in range(partitions)}, 0
    while any(len(us) < per for us in users.values()):
        u = f"zz_compose_end_{i}"
        us = users[(murmur2(u.encode()) & 0x7fffffff) % partitions]
        if len(us) < per:
            us.append(u)
        i += 1
    return [u for p in range(partitions) for u in users[p]]


def dataset_sessions(data, workdir):
    """`stint sessions` offline on the dataset with its catalog, as the enricher sees it:
    {(user, start_s): (length_s as printed, track_count)}."""
    out = os.path.join(workdir, "sessions.tsv")
    r = subprocess.run([os.path.join(BIN, "stint"), "sessions", "--data", data, "--catalog",
                        os.path.join(data, "tracks.jsonl"), "--out", out, "--quiet"],
                       capture_output=True, text=True, timeout=300)
    if not check(r.returncode == 0, "stint sessions offline: exit 0"):
        print(r.stdout + r.stderr)
        return {}
    with open(out, encoding="utf-8") as f:
        rows = [line.rstrip("\n").split("\t")[:4] for line in f]
    return {(u, int(start)): (length, int(tracks)) for u, start, length, tracks in rows}


def last_listen_s(data):
    """The dataset's last listen (epoch s), from the listens TSV's ISO-8601 timestamps."""
    last = ""
    with open(os.path.join(data, "userid-timestamp-artid-artname-traid-traname.tsv"),
              encoding="utf-8", errors="replace") as f:
        for line in f:
            cols = line.split("\t")
            if len(cols) > 1 and cols[1][:4].isdigit() and cols[1] > last:
                last = cols[1]
    return int(time.mktime(time.strptime(last.strip()[:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone)


def container_health(compose, service):
    """The health podman reports for the service's container (found by compose's labels)."""
    project = compose[compose.index("-p") + 1]
    r = subprocess.run(["podman", "ps", "-a", "--filter", f"label=com.docker.compose.project={project}",
                        "--filter", f"label=com.docker.compose.service={service}", "--format",
                        "{{.ID}}"], capture_output=True, text=True)
    cid = r.stdout.split()[0] if r.stdout.split() else ""
    if not cid:
        return "missing"
    r = subprocess.run(["podman", "inspect", "--format", "{{.State.Health.Status}}", cid],
                       capture_output=True, text=True)
    return r.stdout.strip() or "unknown"


def closed_sessions(events, skip):
    """{(user, start_s): (length_s, track_count)} of the CLOSED events, and the sessions closed
    twice in different ways (a replay after the restart must repeat the same CLOSED)."""
    got, differ = {}, set()
    for e in events:
        if e.get("kind") != "CLOSED" or e["user_id"] in skip:
            continue
        key = (e["user_id"], e["start_ms"] // 1000)
        value = (f"{val(e['length_s']):.3f}", val(e["track_count"]))
        if got.setdefault(key, value) != value:
            differ.add(key)
    return got, differ


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--compose", required=True, help="the docker-compose command, with its options")
    ap.add_argument("--speed", default="300000")
    ap.add_argument("--restart", default="sessionizer")
    ap.add_argument("--kill", action="store_true", help="SIGKILL the service instead of a restart")
    ap.add_argument("--partitions", type=int, default=int(os.environ.get("STINT_PARTITIONS", "6")))
    args = ap.parse_args()
    compose = shlex.split(args.compose)
    workdir = tempfile.mkdtemp(prefix="stint-compose-check-")
    env = dict(os.environ)

    offline = dataset_sessions(args.data, workdir)
    if not check(len(offline) > 0, f"offline: {len(offline)} sessions in the dataset"):
        return
    sentinels = sentinel_users(args.partitions)
    readers = {t: TopicReader(t, env) for t in ("sessions", "predictions")}
    sessions = readers["sessions"]
    try:
        t0 = time.time()
        # --no-deps: the stack is up; `run` would otherwise run the one-shot topics job again.
        replay = subprocess.Popen(compose + ["--profile", "tools", "run", "--rm", "-T", "--no-deps", "replay",
                                             "stint", "replay", "--speed", args.speed],
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        # Mid-stream: the pipeline has closed a quarter of the sessions, the replay still runs.
        few = len(offline) // 4
        first = {}

        def flowing(evs):
            for e in evs[:1] + [e for e in evs if e.get("kind") == "CLOSED"][:1]:
                first.setdefault(e.get("kind"), time.time() - t0)
            return sum(e.get("kind") == "CLOSED" for e in evs) >= few

        got = sessions.wait_for(flowing, t0 + 120)
        print("first session event after %s s, first CLOSED after %s s" %
              tuple(f"{first[k]:.1f}" if k in first else "-" for k in ("OPENED", "CLOSED")))
        running = replay.poll() is None
        if not check(got and running, f"mid-stream after {time.time() - t0:.1f} s: "
                                      f"{few}+ sessions closed, the replay still running"):
            evs = sessions.snapshot()
            print(f"sessions read: {len(evs)}, CLOSED {sum(e.get('kind') == 'CLOSED' for e in evs)}; "
                  f"predictions read: {len(readers['predictions'].snapshot())}; replay "
                  f"{'running' if running else 'exited %s' % replay.returncode}")
            if not running:
                print(replay.stdout.read())
            return
        t1 = time.time()
        # restart: SIGTERM (the service commits and exits), then a start; --kill: SIGKILL instead
        # (nothing committed since the last batch), then a start.
        steps = ([["kill", "-s", "SIGKILL", args.restart], ["start", args.restart]] if args.kill
                 else [["restart", args.restart]])
        for cmd in steps:
            r = subprocess.run(compose + cmd, capture_output=True, text=True, timeout=120)
            check(r.returncode == 0, f"docker-compose {' '.join(cmd)}: exit 0 ({time.time() - t1:.1f} s)"
                                     f"{r.returncode and ': ' + r.stderr.strip() or ''}")
        deadline = time.time() + 60
        while container_health(compose, args.restart) != "healthy" and time.time() < deadline:
            time.sleep(0.5)
        check(container_health(compose, args.restart) == "healthy",
              f"{args.restart} healthy again {time.time() - t1:.1f} s after the restart began")
        check(replay.poll() is None, "the restart happened while the replay was running")

        try:
            out, _ = replay.communicate(timeout=300)
        except subprocess.TimeoutExpired:
            replay.kill()
            out, _ = replay.communicate()
        print("replay: " + out.strip().splitlines()[-1] if out.strip() else "replay: no output")
        if not check(replay.returncode == 0, f"replay: exit 0 ({time.time() - t0:.1f} s)"):
            print(out)
            return

        # kcat to the published port: the sentinels, 2 days after the data.
        at = last_listen_s(args.data) + SENTINEL_AFTER_S
        t2 = time.time()
        if not publish(types.SimpleNamespace(topic=lambda t: t),
                       [(u, at, "Sentinel") for u in sentinels]):
            return
        keys = set(offline)
        got = sessions.wait_for(lambda evs: set(closed_sessions(evs, sentinels)[0]) >= keys,
                                t2 + CLOSE_DEADLINE_S)
        check(got, f"every offline session CLOSED on sessions ({time.time() - t2:.1f} s after "
                   f"the kcat listens)")
        preds = readers["predictions"].wait_for(
            lambda ps: {p["user_id"] for p in ps} >= set(sentinels), time.time() + 30)
        check(preds, f"a Prediction for each of the {len(sentinels)} kcat listens "
                     f"({time.time() - t2:.1f} s after publishing)")
        time.sleep(2)  # anything that should not come would come now

        evs = [e for e in sessions.snapshot() if e["user_id"] not in sentinels]
        closed, twice = closed_sessions(evs, sentinels)
        copies = sum(e["kind"] == "CLOSED" for e in evs) - len(closed)
        check(not twice, f"a session closed more than once closes the same way each time "
                         f"({copies} repeated CLOSED; different: {sorted(twice)[:3]})")
        missing = sorted(set(offline) - set(closed))
        extra = sorted(set(closed) - set(offline))
        differ = sorted(k for k in set(offline) & set(closed) if offline[k] != closed[k])
        check(not missing and not extra and not differ,
              f"CLOSED sessions == stint sessions offline ({len(closed)} of {len(offline)}; "
              f"missing {missing[:3]}, extra {extra[:3]}, different {differ[:3]})")
        final = {}
        for s, (op, cl) in session_view(evs).items():
            if op is not None and cl is not None:
                final[(cl["user_id"], cl["start_ms"] // 1000)] = (f"{val(cl['length_s']):.3f}",
                                                                  val(cl["track_count"]))
        check(final == offline, f"the consumer's final view of sessions (announced and closed) "
                                f"equals offline ({len(final)} sessions)")
        ps = readers["predictions"].snapshot()
        predicted = {(p["user_id"], p["session_start_ms"] // 1000) for p in ps
                     if p["user_id"] not in sentinels and not p["retracted"]}
        check(predicted >= set(offline),
              f"a Prediction for every offline session ({len(set(offline) & predicted)} of "
              f"{len(offline)}; {len(ps)} Predictions in all)")

        # The Python consumer reads the same topic through the registry.
        r = subprocess.run([sys.executable, os.path.join(SRC, "tools", "python", "stint_consumer.py"),
                            "--topic", "predictions", "--brokers", BROKERS, "--timeout", "10"],
                           capture_output=True, text=True, timeout=300, env=env)
        py = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
        check(r.returncode == 0 and len(py) == len(ps) and
              sorted(json.dumps(p, sort_keys=True) for p in py) ==
              sorted(json.dumps(p, sort_keys=True) for p in ps),
              f"stint_consumer.py reads the same {len(ps)} Predictions as stint tail ({len(py)}; "
              f"exit {r.returncode}{r.stderr.strip()[-200:] and ': ' + r.stderr.strip()[-200:]})")
    finally:
        for r in readers.values():
            r.close()
        if FAILS:
            print(f"stream_check: kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
    print(f"stream_check: {len(FAILS)} failed")
    sys.exit(1 if FAILS else 0)
