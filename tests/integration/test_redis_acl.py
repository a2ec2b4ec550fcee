"""integration: stint-ingest against a Redis with ACL users (Redis 6+), its password read from a
file (STINT_REDIS_PASSWORD_FILE). The test runs a redis-server of its own (/usr/bin/redis-server
on a free 127.0.0.1 port, no persistence, the default user off) with three users limited to the
test's key prefix: one allowed every command ingest needs, one without +script (SCRIPT LOAD), one
without +evalsha. Kafka is the shared local stack's (topics of the test's own).
- the allowed user, --redis.username and the password from a file: /healthz 200, a listen
  published goes through to the output topic, the marks are written under the prefix;
- a wrong password, and a user without +script or without +evalsha: one clear error line naming
  the setting (redis.username and redis.password) or the ACL rule to fix, /healthz 503 redis=down,
  the service still running after several retries with one such line only (no retry spam, no
  crash), and a clean exit 0 on SIGTERM;
- --dump-config shows redis.password=*** from the file, never the password.
The redis-server is killed at the end whatever happens. About 40 s."""
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from ports import free_port  # noqa: E402
from itest import (BIN, BROKERS, Checklist, get, logged_http_port,  # noqa: E402
                   stop_service)

REDIS_SERVER = "/usr/bin/redis-server"
ADMIN_PASSWORD = "acl-test-admin"

CHECKS = Checklist()
check, FAILS = CHECKS.check, CHECKS.failed


def cli(port, *args):
    """One command to the test's redis-server as the admin user; its reply text."""
    r = subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", str(port), "--user", "admin",
                        "--pass", ADMIN_PASSWORD, "--no-auth-warning", *args],
                       capture_output=True, text=True, timeout=10)
    return (r.stdout + r.stderr).strip()


def start_redis(tmp):
    """(process, port) of a redis-server of the test's own, retried on another port if the one
    probed was taken meanwhile."""
    for _ in range(5):
        port = free_port()
        proc = subprocess.Popen([REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1",
                                 "--save", "", "--appendonly", "no", "--dir", tmp,
                                 "--logfile", os.path.join(tmp, "redis.log")],
                                stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        for _ in range(50):
            if proc.poll() is not None:
                break
            if subprocess.run(["redis-cli", "-p", str(port), "PING"], capture_output=True,
                              text=True).stdout.strip() == "PONG":
                return proc, port
            time.sleep(0.1)
        proc.kill()
        proc.wait()
    raise RuntimeError("redis-server did not start on a free port")


def wait_for(pred, timeout_s):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s:
        v = pred()
        if v:
            return v
        time.sleep(0.2)
    return None


def read(path):
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.read()


class Ingest:
    """A stint-ingest on topics and a group of its own, Redis user and password file given."""

    def __init__(self, tmp, tag, topics, redis_port, user, password_file):
        self.log = os.path.join(tmp, f"ingest-{user}-{len(os.listdir(tmp))}.log")
        env = dict(os.environ)
        for k in list(env):
            if k.startswith("STINT_REDIS_"):
                del env[k]
        env["STINT_REDIS_PASSWORD_FILE"] = password_file
        self.argv = [os.path.join(BIN, "stint-ingest"), "-b", BROKERS, "-G", f"{tag}-{user}",
                     "--redis.port", str(redis_port), "--redis.username", user,
                     "--redis.prefix", tag, "--http.port", "0", "--in.topic", topics["raw"],
                     "--out.topic", topics["listens"], "--dlq.topic", topics["dlq"]]
        self.env = env
        self.proc = subprocess.Popen(self.argv, stdout=open(self.log, "w"),
                                     stderr=subprocess.STDOUT, env=env)
        self.port = logged_http_port(self.log)

    def health(self):
        return get(self.port, "/healthz") if self.port else (0, "no port")

    def stop(self):
        return stop_service(self.proc)


def publish(topic, n, start):
    from confluent_kafka import Producer

    prod = Producer({"bootstrap.servers": BROKERS})
    for i in range(start, start + n):
        user = f"user_{i:06d}"
        ts = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(1230768000 + i * 60))
        prod.produce(topic, key=user, value=f'{{"user_id":"{user}","timestamp":"{ts}",'
                                            f'"artist_name":"A","track_name":"T{i}"}}')
    return prod.flush(30) == 0


def count_records(topic):
    from confluent_kafka import Consumer, TopicPartition

    cons = Consumer({"bootstrap.servers": BROKERS, "group.id": f"{topic}-probe"})
    lo, hi = cons.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
    cons.close()
    return hi - lo


def refused(tmp, tag, topics, redis_port, user, password_file, want, sent):
    """A service that Redis refuses: one clear line, /healthz 503 redis=down, alive, exit 0."""
    svc = Ingest(tmp, tag, topics, redis_port, user, password_file)
    try:
        check(svc.port is not None, f"{user}: started, /healthz served")
        if svc.port is None:
            return
        # The ACL refusals come with the first batch that runs the command.
        check(publish(topics["raw"], 1, sent), f"{user}: a listen published")
        lines = wait_for(lambda: [l for l in read(svc.log).splitlines() if want in l], 20)
        check(bool(lines), f"{user}: an error line naming \"{want}\"")
        status = wait_for(lambda: (lambda s: s if s[0] == 503 and "redis=down" in s[1] else None)(
            svc.health()), 15)
        check(status is not None, f"{user}: /healthz 503 redis=down ({svc.health()})")
        time.sleep(8)  # several retries with backoff (100 ms doubling up to 5 s)
        text = read(svc.log)
        alive = svc.proc.poll() is None
        check(alive, f"{user}: still running after the retries (exit {svc.proc.returncode})")
        check(svc.health()[0] == 503, f"{user}: /healthz still 503 ({svc.health()})")
        warned = [l for l in text.splitlines() if want in l and " warn " in l or
                  want in l and '"level":"warn"' in l]
        check(1 <= len(warned) <= 2, f"{user}: one warning line per distinct failure, not one "
                                     f"per retry ({len(warned)} lines)")
        secret = read(password_file).strip()
        check(secret not in text, f"{user}: the password is not in the log")
        print("      " + (lines[0] if lines else "(no line)"))
    finally:
        rc = svc.stop()
        check(rc == 0, f"{user}: SIGTERM -> exit {rc}")
        if FAILS:
            print(f"--- {user} log (last 15 lines)\n" + "\n".join(read(svc.log).splitlines()[-15:]))


def main():
    from confluent_kafka.admin import AdminClient, NewTopic

    if not os.access(REDIS_SERVER, os.X_OK):
        print(f"{REDIS_SERVER} is missing (apt-get install redis-server)")
        return 1
    tag = f"it-acl-{os.getpid()}-{int(time.time())}"
    tmp = tempfile.mkdtemp(prefix="stint-redis-acl-")
    redis, admin, topics = None, None, {}
    try:
        redis, port = start_redis(tmp)
        # The default user off; admin for the test; the users stint runs as, limited to the prefix.
        # ingest needs PING (health), SELECT, GET and SET (marks), DEL, EVALSHA and SCRIPT LOAD.
        needs = ["+ping", "+select", "+get", "+set", "+del", "+evalsha", "+script|load"]
        base = ["on", f"~{tag}:*", "resetchannels", "-@all"]
        users = {
            "stint-ok": needs,
            "stint-noscript": [c for c in needs if c != "+script|load"],
            "stint-noevalsha": [c for c in needs if c != "+evalsha"],
        }
        subprocess.run(["redis-cli", "-p", str(port), "ACL", "SETUSER", "admin", "on",
                        ">" + ADMIN_PASSWORD, "~*", "&*", "+@all"], check=True,
                       capture_output=True)
        subprocess.run(["redis-cli", "-p", str(port), "--user", "admin", "--pass",
                        ADMIN_PASSWORD, "--no-auth-warning", "ACL", "SETUSER", "default", "off"],
                       check=True, capture_output=True)
        secrets = {}
        for user, cmds in users.items():
            secrets[user] = os.path.join(tmp, f"{user}.password")
            with open(secrets[user], "w") as f:
                f.write(f"pw-{user}-{os.getpid()}\n")  # the newline is the file's end
            reply = cli(port, "ACL", "SETUSER", user, *base, f">pw-{user}-{os.getpid()}", *cmds)
            check(reply == "OK", f"ACL SETUSER {user}: {reply}")
        wrong = os.path.join(tmp, "wrong.password")
        with open(wrong, "w") as f:
            f.write("not-the-password\n")
        check(cli(port, "PING").endswith("PONG"), f"redis-server of the test on port {port}")

        topics = {k: f"{tag}.{k}" for k in ("raw", "listens", "dlq")}
        admin = AdminClient({"bootstrap.servers": BROKERS})
        for f in admin.create_topics([NewTopic(t, 1, 1) for t in topics.values()]).values():
            f.result(30)

        # --dump-config: the source is the file, the value redacted.
        dump = subprocess.run([os.path.join(BIN, "stint-ingest"), "--redis.username", "stint-ok",
                               "--dump-config"], capture_output=True, text=True,
                              env=dict(os.environ, STINT_REDIS_PASSWORD_FILE=secrets["stint-ok"]))
        check("redis.password=***  # file STINT_REDIS_PASSWORD_FILE" in dump.stdout and
              "redis.username=stint-ok" in dump.stdout and "pw-stint-ok" not in dump.stdout,
              "--dump-config: redis.password=*** from the file, redis.username shown")

        # The allowed user: healthy, a listen goes through, marks written under the prefix.
        svc = Ingest(tmp, tag, topics, port, "stint-ok", secrets["stint-ok"])
        try:
            check(svc.port is not None, "stint-ok: started")
            ok = wait_for(lambda: (lambda s: s if s[0] == 200 else None)(svc.health()), 30)
            check(ok is not None and "redis=ok" in ok[1], f"stint-ok: /healthz 200 ({svc.health()})")
            check(publish(topics["raw"], 3, 0), "stint-ok: 3 listens published")
            n = wait_for(lambda: count_records(topics["listens"]) >= 3 and 3, 30)
            check(n == 3, f"stint-ok: 3 listens validated to {topics['listens']}")
            keys = cli(port, "--scan", "--pattern", f"{tag}:*")
            check(len(keys.split()) >= 1, f"stint-ok: keys written under {tag}: ({keys[:80]})")
            check(svc.health()[0] == 200, f"stint-ok: /healthz still 200 ({svc.health()})")
            metrics = get(svc.port, "/metrics")[1]
            check("stint_build_info" in metrics and "pw-stint-ok" not in metrics,
                  "stint-ok: /metrics served, without the password")
        finally:
            rc = svc.stop()
            check(rc == 0, f"stint-ok: SIGTERM -> exit {rc}")
            if FAILS:
                print("--- stint-ok log\n" + "\n".join(read(svc.log).splitlines()[-15:]))

        refused(tmp, tag, topics, port, "stint-ok", wrong, "check redis.username and "
                "redis.password", 100)
        refused(tmp, tag, topics, port, "stint-noscript", secrets["stint-noscript"],
                "NOPERM", 200)
        refused(tmp, tag, topics, port, "stint-noevalsha", secrets["stint-noevalsha"],
                "NOPERM", 300)
    finally:
        if redis is not None:
            redis.kill()
            redis.wait()
        if admin is not None and topics:
            try:
                admin.delete_topics(list(topics.values()))
            except Exception:  # noqa: BLE001 - cleanup only
                pass
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{len(FAILS)} failed")
    return 1 if FAILS else 0


if __name__ == "__main__":
    sys.exit(main())
