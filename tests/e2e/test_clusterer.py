"""e2e: stint-clusterer on a generated dataset. A k-means bundle is trained on two thirds of the
users; all users' profiles and SessionEvents are streamed. Every user gets an assignment on
users.clusters and in Redis (the same one): a training user its bundle cluster, a new user a
cluster of the bundle's model (or cold with little history), all under the bundle's version;
a scheduled re-fit publishes an informational "+refit-N" version; byte-identical copies of
events at new offsets (the sessionizer re-emits them after a crash) are not counted again, so
every stored profile counts each session once; a second run over the same
input (new consumer group) is skipped by the idempotency markers: no new assignments and the
stored profiles unchanged; the predictor on the same Redis prefix then predicts with the bundle's
cluster for training users and the clusterer's assignment for the others (none when cold)."""
import collections
import json
import os
import subprocess
import sys
import time

from predictor_env import BIN, BROKERS, FAILS, REDIS_PORT, Env, check


def redis(*args):
    r = subprocess.run(["redis-cli", "-p", REDIS_PORT, "--raw", *args], capture_output=True,
                       text=True)
    return r.stdout.splitlines()


def start_clusterer(env, model, group, port, log):
    return subprocess.Popen(
        [os.path.join(BIN, "stint-clusterer"), "-b", BROKERS, "--redis.port", REDIS_PORT,
         "--sessions.topic", env.topics["sessions"], "--profiles.topic", env.topics["profiles"],
         "--clusters.topic", env.topics["clusters"], "--dlq.topic", env.topics["dlq"],
         "--model.dir", model, "--redis.prefix", env.tag, "-G", group, "--http.port", str(port),
         "--refit.interval_s", "2", "--refit.min_users", "10", "--batch.timeout_ms", "20"],
        stdout=log, stderr=subprocess.STDOUT)


def records_in(env, port):
    env.port = port
    import urllib.request
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
            text = r.read().decode()
    except OSError:
        return {}
    out = {}
    for line in text.splitlines():
        if line.startswith("stint_") and " " in line:
            k, v = line.rsplit(" ", 1)
            out[k] = float(v)
    return out


def wait_in(port, env, n, timeout_s=60):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if records_in(env, port).get("stint_records_in_total", 0) >= n:
            return True
        time.sleep(0.3)
    return False


def main():
    env = Env("clu", users=30, days=40)
    env.topics["profiles"] = env.tag + ".profiles"
    env.topics["clusters"] = env.tag + ".clusters"
    procs = []
    try:
        users = sorted({line.split("\t")[0] for line in open(env.sessions, encoding="utf-8")})
        train_users = set(users[: 2 * len(users) // 3])
        train_tsv = os.path.join(env.tmp, "train.tsv")
        with open(env.sessions, encoding="utf-8") as f, open(train_tsv, "w", encoding="utf-8") as o:
            for line in f:
                if line.split("\t")[0] in train_users:
                    o.write(line)
        model = os.path.join(env.tmp, "model")
        r = subprocess.run([os.path.join(BIN, "stint-session-events"), "train", "--sessions",
                            train_tsv, "--profiles", env.profiles, "--out", model, "--epochs", "3",
                            "--cluster", "kmeans"], capture_output=True, text=True)
        check(r.returncode == 0, "k-means bundle trained")
        bundle_cluster = {}
        with open(os.path.join(model, "user_clusters.tsv"), encoding="utf-8") as f:
            for line in f:
                u, c = line.split("\t")[:2]
                bundle_cluster[u] = int(c)
        k = json.load(open(os.path.join(model, "metadata.json")))["k"]
        n_sessions = collections.Counter(line.split("\t")[0]
                                         for line in open(env.sessions, encoding="utf-8"))

        r = subprocess.run([os.path.join(BIN, "stint-session-events"), "profiles", "--sessions",
                            env.sessions, "--profiles", env.profiles, "--topic",
                            env.topics["profiles"], "--brokers", BROKERS], capture_output=True,
                           text=True)
        check(r.returncode == 0, "profiles produced")
        n_prof = int(r.stdout.split("=")[1])
        r = subprocess.run([os.path.join(BIN, "stint-session-events"), "produce", "--sessions",
                            env.sessions, "--profiles", env.profiles, "--topic",
                            env.topics["sessions"], "--brokers", BROKERS, "--create",
                            env.topics["clusters"], "--copies", "7"], capture_output=True,
                           text=True, check=True)
        copies = int(dict(kv.split("=") for kv in r.stdout.split())["copies"])
        total = 2 * sum(n_sessions.values()) + n_prof + copies

        log = open(os.path.join(env.tmp, "clusterer.log"), "a")
        port1, port2 = 18000 + os.getpid() % 1000, 19000 + os.getpid() % 1000
        procs.append(start_clusterer(env, model, env.tag + "-a", port1, log))
        check(wait_in(port1, env, total), f"clusterer consumed {total} records")
        time.sleep(3)  # one scheduled re-fit (every 2 s)
        m1 = records_in(env, port1)
        assigned = env.read("clusters", None)
        last = {}
        for _, _, rec in assigned:
            last[rec["user_id"]] = rec
        check(set(last) == set(users), f"every user assigned: {len(last)} of {len(users)}")
        versions = {rec["clustering_version"] for rec in last.values()}
        check(len(versions) == 1 and next(iter(versions)).startswith("b-"),
              f"one bundle clustering version: {versions}")
        bad_train = [u for u in train_users if u in bundle_cluster and
                     (last[u]["cluster"] != bundle_cluster[u] or last[u]["cold"])]
        check(not bad_train, f"training users keep their bundle cluster ({len(bad_train)} differ)")
        new = [u for u in users if u not in bundle_cluster]
        bad_new = [u for u in new if not (
            (last[u]["cold"] and last[u]["cluster"] == k and n_sessions[u] < 5) or
            (not last[u]["cold"] and 0 <= last[u]["cluster"] < k))]
        check(new and not bad_new, f"new users: nearest cluster or cold ({len(new)} users, "
                                   f"{len(bad_new)} wrong)")
        mismatched = []
        for u in users:
            h = redis("HMGET", f"{env.tag}:u:{{{u}}}:clu:prof", "cluster", "cold", "version")
            if h != [str(last[u]["cluster"]), "1" if last[u]["cold"] else "0",
                     last[u]["clustering_version"]]:
                mismatched.append((u, h))
        check(not mismatched, f"Redis holds the published assignment ({mismatched[:2]})")
        refit = redis("GET", f"{env.tag}:clustering:refit")
        doc = json.loads(refit[0]) if refit else {}
        check(doc.get("version", "").startswith(next(iter(versions)) + "+refit-") and
              doc.get("k") == k and doc.get("users") == len(users),
              f"re-fit published: {doc.get('version')} k={doc.get('k')} users={doc.get('users')}")
        check(copies > 0 and m1.get("stint_clusterer_copies_total", 0) > 0,
              f"copies of CLOSED sessions recognised: "
              f"{m1.get('stint_clusterer_copies_total', 0):.0f} (of {copies} copied events)")
        miscounted = [u for u in users
                      if redis("HGET", f"{env.tag}:u:{{{u}}}:clu:prof", "n") != [str(n_sessions[u])]]
        check(not miscounted, f"each session counted once despite {copies} copies in the stream "
                              f"({len(miscounted)} users miscounted)")
        prof_before = {u: redis("HGETALL", f"{env.tag}:u:{{{u}}}:clu:prof") for u in users}
        procs[0].terminate()
        check(procs[0].wait(30) == 0, "SIGTERM: exit 0")

        # Same input again under a new group: the markers skip every record.
        procs.append(start_clusterer(env, model, env.tag + "-b", port2, log))
        check(wait_in(port2, env, total), "second run consumed the input again")
        time.sleep(1)
        m2 = records_in(env, port2)
        check(m2.get("stint_clusterer_replayed_total") == total,
              f"every record skipped as applied: {m2.get('stint_clusterer_replayed_total')} of {total}")
        again = env.read("clusters", None)
        check(len(again) == len(assigned), f"no new assignments ({len(again)} vs {len(assigned)})")
        prof_after = {u: redis("HGETALL", f"{env.tag}:u:{{{u}}}:clu:prof") for u in users}
        check(prof_after == prof_before, "stored profiles unchanged by the replay")
        print(f"figures: users={len(users)} assignments={len(assigned)} "
              f"changes={m1.get('stint_clusterer_assignments_changed_total')} "
              f"refits={m1.get('stint_clusterer_refits_total')}")
        procs[1].terminate()
        check(procs[1].wait(30) == 0, "SIGTERM: exit 0 (second run)")

        # The predictor on the same Redis prefix uses these clusters: a training user's bundle
        # cluster, else the clusterer's (non-cold) assignment, else none.
        from confluent_kafka.admin import AdminClient, NewTopic
        admin = AdminClient({"bootstrap.servers": BROKERS})
        fs = admin.create_topics([NewTopic(env.topics[t], 3, 1)
                                  for t in ("predictions", "outcomes")])
        for f in fs.values():
            f.result(30)
        env.start_predictor(model)
        n = sum(n_sessions.values())
        check(env.wait_outcomes(n), f"predictor published {n} outcomes")
        preds = env.read("predictions", n)
        wrong = []
        for _, _, rec in preds:
            u = rec["user_id"]
            want = bundle_cluster.get(u, None if last[u]["cold"] else last[u]["cluster"])
            if rec["cluster"] != want:
                wrong.append((u, rec["cluster"], want))
        warm_new = [u for u in new if not last[u]["cold"]]
        check(warm_new, f"{len(warm_new)} new users with a clusterer assignment to check")
        check(len(preds) == n and not wrong,
              f"predictions use the bundle's / clusterer's cluster ({len(wrong)} of {len(preds)} "
              f"differ: {wrong[:3]})")
        check(env.stop_predictor() == 0, "predictor SIGTERM: exit 0")
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        env.cleanup()
    print(f"{len(FAILS)} failed")
    return 1 if FAILS else 0


if __name__ == "__main__":
    sys.exit(main())
