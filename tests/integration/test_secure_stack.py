"""integration: stint against the secured stack (issue 23), deploy/local/secure-stack with a
STINT_HOME of its own in a temp dir and free ports of its own (never the shared plain stack nor
~/.stint-secure): Kafka 4.1.1 with SASL_SSL and mTLS listeners only, StandardAuthorizer with one
principal per service; Redis with TLS (through its stunnel endpoint) and one ACL user per
service.
- no plaintext listener: a PLAINTEXT Kafka client fails on each of the three Kafka ports (the
  broker, mTLS and controller listeners), where the same client with the tools' certificate lists
  the broker;
- the positive path: a small generated dataset (`stint gen`, 20 users x 30 days) and a bundle
  trained on it (tests/e2e/predictor_env.py), replayed as the tools principal (`stint replay
  --max`); the five services each as its own principal (`secure-stack env <service>`: SASL_SSL
  with SCRAM-SHA-512, the user's password from a file); a
  Prediction arrives on `predictions` (`stint tail --follow` as the tools principal), every
  service's /healthz is 200, and each exits 0 on SIGTERM;
- the crash (issue 23: "the crash test run once against the secured stack"), within the positive
  path: the catalog is imported into the secure Redis first (`stint catalog import` as
  stint-tools, whose ACL user may write stint:track:*), so that the enricher, which has no Last.fm
  key here, knows every duration that `stint sessions --catalog` offline knows; the sessionizer
  runs with --batch.max 200 (many batches per stream) and --clock.quorum 1 (20 users on 6
  partitions are too few for the default quorum of 3: its clock lags a quiet user by more than
  clock.ahead_max_s and sends listens to sessions.dlq that offline keeps). Its /metrics is read
  every 50 ms and it gets a SIGKILL as soon as stint_records_in_total > 0 (failing if it had
  already consumed everything the enricher wrote), and is started again at once with the same
  principal's environment and arguments. Once the CLOSED sessions on `sessions` (`stint tail`
  as stint-tools) number at least the offline sessions less one per user and have not changed
  for 5 s: every CLOSED session equals `stint sessions` offline (start, length, tracks), none is
  closed twice differently, and each offline session not closed is its user's last
  (bench/full_pipeline's offline_check);
- the refusals, run side by side: ingest with a wrong SCRAM password, ingest on the mTLS listener
  with a client certificate the broker does not trust (self-signed), ingest with the clusterer's
  identity (no ACL on its group and topics), the enricher with a wrong Redis password, ingest as a
  Redis ACL user without +evalsha. Each gives exactly one error line naming the setting to fix
  (sasl.password, ssl.certificate.location, kafka.group, redis.password, the ACL rule), /healthz
  not 200, still running a while later (no crash loop, no repeated line), exit 0 on SIGTERM.
The stack is stopped and the temp dirs removed whatever happens. About 1.5 to 2.5 minutes, most of
it the stack's start (certificates, Kafka, topics, ACLs); bounded at BUDGET_S (200 s)."""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "support"))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
sys.path.insert(0, os.path.join(HERE, "..", "..", "deploy", "compose"))
from itest import (BIN, SRC, Checklist, get, logged_http_port,  # noqa: E402
                   stop_service)
from live_env import SERVICES  # noqa: E402
from ports import free_port_block  # noqa: E402
from predictor_env import Env  # noqa: E402
from stream_check import closed_sessions, dataset_sessions  # noqa: E402

SECURE_STACK = os.path.join(SRC, "deploy", "local", "secure-stack")
PORT_VARS = ("STINT_SECURE_KAFKA_PORT", "STINT_SECURE_CONTROLLER_PORT",
             "STINT_SECURE_KAFKA_MTLS_PORT", "STINT_SECURE_REDIS_TLS_PORT",
             "STINT_SECURE_REDIS_PORT")
BUDGET_S = 200  # the whole test; every wait below is bounded, and by this too
SESSIONIZER_BATCH = 200  # records per batch of the crashed sessionizer: several batches a stream

CHECKS = Checklist()
check, FAILS = CHECKS.check, CHECKS.failed
T0 = time.monotonic()


def left(cap):
    """Seconds to wait: at most cap, and never past the test's budget (at least 1)."""
    return max(1.0, min(cap, BUDGET_S - (time.monotonic() - T0)))


def wait_for(pred, timeout_s):
    deadline = time.monotonic() + left(timeout_s)
    while True:
        v = pred()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(0.2)


def read(path):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


class Stack:
    """deploy/local/secure-stack on a private STINT_HOME and free ports."""

    def __init__(self, tmp):
        self.home = os.path.join(tmp, "home")
        base = free_port_block(len(PORT_VARS))
        self.ports = {v: base + i for i, v in enumerate(PORT_VARS)}
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("STINT_")}
        self.env.update({k: str(v) for k, v in self.ports.items()},
                        STINT_HOME=self.home, STINT_BIN_DIR=BIN, STINT_STACK_TIMEOUT="60")
        self.sec = os.path.join(self.home, "secure")

    def run(self, *args, timeout=30):
        return subprocess.run([SECURE_STACK, *args], env=self.env, capture_output=True, text=True,
                              timeout=left(timeout))

    def principal_env(self, principal):
        """The environment of a process run as principal: `secure-stack env` evaluated."""
        r = self.run("env", principal)
        assert r.returncode == 0, f"secure-stack env {principal}: {r.stderr}"
        env = dict(self.env)
        for line in r.stdout.splitlines():
            m = re.match(r"^export (\w+)=(.*)$", line)
            if m:
                env[m.group(1)] = m.group(2)
        return env

    def redis_admin(self, *args):
        with open(os.path.join(self.sec, "redis-admin.password"), encoding="utf-8") as f:
            pw = f.read().strip()
        r = subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p",
                            str(self.ports["STINT_SECURE_REDIS_TLS_PORT"]), "--tls", "--cacert",
                            os.path.join(self.sec, "ca.pem"), "--user", "admin", *args],
                           env=dict(self.env, REDISCLI_AUTH=pw), capture_output=True, text=True,
                           timeout=left(10))
        return (r.stdout + r.stderr).strip()


class Service:
    """stint-<name> with the environment given, HTTP on a free port (read from its log)."""

    def __init__(self, tmp, name, env, label, *args):
        self.name, self.label, self.env = name, label, env
        self.log = os.path.join(tmp, f"{label}.log")
        with open(self.log, "w") as out:
            self.proc = subprocess.Popen([os.path.join(BIN, f"stint-{name}"), "--http.port", "0",
                                          *args], stdout=out, stderr=subprocess.STDOUT, env=env)
        self.port = None

    def wait_port(self, timeout_s=20):
        self.port = logged_http_port(self.log, left(timeout_s))
        return self.port

    def health(self):
        return get(self.port, "/healthz") if self.port else (0, "no port")

    def tail(self, n=12):
        return f"--- {self.label} log (last {n} lines)\n" + "\n".join(
            read(self.log).splitlines()[-n:])


def no_plaintext(stack):
    """A PLAINTEXT client fails on every Kafka port; the same client over mTLS lists the broker."""
    tools = stack.principal_env("tools")
    ok = subprocess.run(
        ["kcat", "-b", tools["STINT_SECURE_MTLS_BROKERS"], "-L", "-m", "10", "-X",
         "security.protocol=SSL", "-X", f"ssl.ca.location={tools['STINT_RDKAFKA_SSL_CA_LOCATION']}",
         "-X", f"ssl.certificate.location={tools['STINT_SECURE_MTLS_CERTIFICATE_LOCATION']}",
         "-X", f"ssl.key.location={tools['STINT_SECURE_MTLS_KEY_LOCATION']}"],
        capture_output=True, text=True, timeout=left(20))
    check(ok.returncode == 0 and "1 brokers:" in ok.stdout,
          "kcat over mTLS with the tools' certificate lists the broker")
    props = read(os.path.join(stack.home, "kafka", "server.properties"))
    listeners = re.search(r"^listener\.security\.protocol\.map=(.*)$", props, re.M)
    check(listeners is not None and "PLAINTEXT" not in listeners.group(1),
          f"no PLAINTEXT in the broker's listener map ({listeners.group(1) if listeners else '-'})")
    ports = [stack.ports[v] for v in ("STINT_SECURE_KAFKA_PORT", "STINT_SECURE_KAFKA_MTLS_PORT",
                                      "STINT_SECURE_CONTROLLER_PORT")]
    procs = {p: subprocess.Popen(["kcat", "-b", f"127.0.0.1:{p}", "-L", "-m", "4", "-X",
                                  "security.protocol=plaintext"], stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True) for p in ports}
    for p, proc in procs.items():
        try:
            out, _ = proc.communicate(timeout=left(20))
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
        check(proc.returncode != 0 and "brokers:" not in out,
              f"a PLAINTEXT Kafka client on 127.0.0.1:{p} fails (exit {proc.returncode})")


def metric(svc, name):
    """The value of an unlabelled counter on svc's /metrics, or None when it does not answer."""
    st, body = get(svc.port, "/metrics") if svc.port else (0, "")
    m = re.search(rf"^{name}(?:{{[^}}]*}})? (\d+(?:\.\d+)?)", body, re.M) if st == 200 else None
    return int(float(m.group(1))) if m else None


def tail_sessions(tools):
    """The events on `sessions` read as stint-tools (`stint tail`, no --follow), or None."""
    try:
        r = subprocess.run([os.path.join(BIN, "stint"), "tail", "sessions"], env=tools,
                           capture_output=True, text=True, timeout=left(30))
    except subprocess.TimeoutExpired:
        return None
    if r.returncode != 0:
        return None
    return [json.loads(line) for line in r.stdout.splitlines() if line.strip()]


def crash(tmp, svcs, tools, listens, sessionizer_args):
    """SIGKILL to the sessionizer as soon as it has consumed records but not all of them, the
    same command (its principal's environment) started again at once; returns (the new Service,
    in svcs in place of the old one, the records consumed before the kill), or None when the
    kill did not land mid-stream."""
    i = next(k for k, s in enumerate(svcs) if s.name == "sessionizer")
    old = svcs[i]
    if not check(old.wait_port() is not None, "stint-sessionizer as stint-sessionizer: started"):
        return None
    deadline = time.monotonic() + left(60)
    n = None
    while time.monotonic() < deadline:
        n = metric(old, "stint_records_in_total")
        if n:
            break
        time.sleep(0.05)
    if not check(bool(n), f"stint-sessionizer consumed records within 60 s ({n})"):
        return None
    os.kill(old.proc.pid, signal.SIGKILL)
    old.proc.wait()
    new = Service(tmp, "sessionizer", old.env, "sessionizer-restarted", *sessionizer_args)
    svcs[i] = new
    print(f"      SIGKILL to stint-sessionizer after {n} of the {listens} listens replayed, "
          f"started again at once")
    if not check(n < listens, f"the SIGKILL landed mid-stream: {n} records consumed of {listens}"
                              f" (had it finished, the crash would test nothing)"):
        return None
    check(new.wait_port() is not None, "stint-sessionizer started again (same principal)")
    return new, n


def crash_guarantee(tools, offline, users, before, new, enricher):
    """Every CLOSED session on `sessions` equals `stint sessions` offline (start, length,
    tracks), none closed twice differently, and each offline session not closed is its user's
    last: bench/full_pipeline's offline_check, read as stint-tools once the CLOSED count holds."""
    want = len(offline) - users
    deadline = time.monotonic() + left(75)
    count, since, events, still = -1, time.monotonic(), None, False
    while time.monotonic() < deadline and not still:
        got = tail_sessions(tools)
        if got is not None:
            events = got
            c = sum(1 for e in events if e.get("kind") == "CLOSED")
            if c != count:
                count, since = c, time.monotonic()
            still = c >= want and time.monotonic() - since >= 5
        if not still:
            time.sleep(0.5)
    if not check(still,
                 f"at least {want} CLOSED sessions on sessions (offline {len(offline)} - {users} "
                 f"users' last), unchanged for 5 s, within 75 s ({count})"):
        return
    closed, twice = closed_sessions(events, set())
    n_closed = sum(1 for e in events if e.get("kind") == "CLOSED")
    last = {}
    for u, start in offline:
        last[u] = max(last.get(u, start), start)
    differ = [k for k in closed if offline.get(k) != closed[k]]
    open_not_last = [k for k in offline if k not in closed and last[k[0]] != k[1]]
    again = metric(new, "stint_records_in_total")
    enriched = metric(enricher, "stint_records_out_total")
    check(enriched is not None and before < enriched,
          f"the SIGKILL came before the sessionizer had consumed all the enricher's output "
          f"({before} of {enriched})")
    print(f"      the restarted sessionizer consumed {again} records ({before} before the kill); "
          f"{n_closed} CLOSED events on sessions, {len(closed)} distinct: {n_closed - len(closed)}"
          f" copies replayed; {len(events)} events in all")
    check(not differ, f"every CLOSED session equals `stint sessions` offline (start, length, "
                      f"tracks): {len(differ)} differ (e.g. {differ[:2]}: "
                      f"{[closed[k] for k in differ[:2]]} vs "
                      f"{[offline.get(k) for k in differ[:2]]})")
    check(not twice,
          f"no session closed twice differently ({len(twice)}, e.g. {sorted(twice)[:2]})")
    check(not open_not_last, f"each offline session not closed is its user's last "
                             f"({len(open_not_last)} are not, e.g. {open_not_last[:2]})")


def positive(stack, tmp, data):
    """The catalog imported and the replay as tools, the five services as themselves, a crash of
    the sessionizer mid-stream, a Prediction out, all healthy, streaming = offline."""
    tools = stack.principal_env("tools")
    # The enricher's durations come from the catalog in Redis (no Last.fm key here, and Last.fm
    # is unreachable): imported as stint-tools (ACL ~stint:*), the one `stint sessions
    # --catalog` offline reads too, so streaming and offline see the same durations.
    catalog = os.path.join(data.data, "tracks.jsonl")
    r = subprocess.run([os.path.join(BIN, "stint"), "catalog", "import", catalog], env=tools,
                       capture_output=True, text=True, timeout=left(60))
    if not check(r.returncode == 0, f"stint catalog import as stint-tools (Redis user "
                                    f"stint-tools): {(r.stdout + r.stderr).strip()[:300]}"):
        return
    offline = dataset_sessions(data.data, tmp)
    if not check(len(offline) > 0, f"stint sessions --catalog offline: {len(offline)} sessions"):
        return
    users = len({u for u, _ in offline})
    r = subprocess.run([os.path.join(BIN, "stint"), "replay", "--data", data.data, "--max",
                        "--progress", "never", "--bad-lines-logged", "0"], env=tools,
                       capture_output=True, text=True, timeout=left(60))
    m = re.search(r"replay: ok listens_sent=(\d+) profiles_sent=(\d+)", r.stdout + r.stderr)
    if not check(r.returncode == 0 and m and int(m.group(1)) > 1000,
                 f"stint replay --max as stint-tools: {m.group(0) if m else r.stderr[-300:]}"):
        return
    listens = int(m.group(1))
    model = os.path.join(data.tmp, "model")
    # Small batches, so that the sessionizer takes several to go through the stream and the
    # SIGKILL lands between two of them; and the partition clock of the largest listen time
    # (--clock.quorum 1): 20 users on 6 partitions are too few for the default quorum of 3, whose
    # clock then lags a quiet user by over clock.ahead_max_s and sends listens to sessions.dlq
    # (ahead_of_stream_time), which `stint sessions` offline keeps; the replay is in event-time
    # order, so no listen is late either way. The same arguments for the restarted one.
    sessionizer_args = ["--batch.max", str(SESSIONIZER_BATCH), "--clock.quorum", "1"]
    svcs = []
    try:
        for name in SERVICES:
            extra = ["--model.dir", model] if name in ("clusterer", "predictor") else \
                sessionizer_args if name == "sessionizer" else []
            svcs.append(Service(tmp, name, stack.principal_env(name), name, *extra))
        crashed = crash(tmp, svcs, tools, listens, sessionizer_args)
        for s in svcs:
            if s.name != "sessionizer":
                check(s.wait_port() is not None, f"stint-{s.name} as stint-{s.name}: started")
        if crashed:
            crash_guarantee(tools, offline, users, crashed[1], crashed[0],
                            next(s for s in svcs if s.name == "enricher"))
        reader = subprocess.run([os.path.join(BIN, "stint"), "tail", "predictions", "--follow",
                                 "-n", "1"], env=tools, capture_output=True, text=True,
                                timeout=left(60))
        m = re.search(r'"predictor":"(MODEL|BASELINE)"', reader.stdout)
        check(reader.returncode == 0 and m is not None,
              f"a Prediction on predictions, read as stint-tools ({reader.stdout.strip()[:160]})")
        for s in svcs:
            st = wait_for(lambda: (lambda h: h if h[0] == 200 else None)(s.health()), 20)
            check(st is not None, f"{s.label}: /healthz 200 ({s.health()})")
    finally:
        for s in svcs:
            rc = stop_service(s.proc)
            check(rc == 0, f"{s.label}: SIGTERM -> exit {rc}")
        if FAILS:
            for s in svcs:
                print(s.tail())


def refusals(stack, tmp, data):
    """The five refusals side by side; each one line, unhealthy, alive, exit 0."""
    rogue_key, rogue_pem = os.path.join(tmp, "rogue.key"), os.path.join(tmp, "rogue.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=stint-ingest", "-keyout", rogue_key, "-out", rogue_pem],
                   capture_output=True, timeout=left(20), check=True)
    wrong_pw = os.path.join(tmp, "wrong.password")
    with open(wrong_pw, "w") as f:
        f.write("not-the-password\n")
    # A Redis user with the ingest user's rule but for +evalsha.
    rules = [line for line in stack.redis_admin("ACL", "LIST").splitlines()
             if line.startswith("user stint-ingest ")]
    noeval_pw = os.path.join(tmp, "noevalsha.password")
    with open(noeval_pw, "w") as f:
        f.write(f"noevalsha-{os.getpid()}\n")
    if rules:
        rule = [t for t in rules[0].split()[2:] if not t.startswith("#") and t != "+evalsha"]
        reply = stack.redis_admin("ACL", "SETUSER", "stint-noevalsha", "reset", *rule,
                                  f">noevalsha-{os.getpid()}")
        check(reply == "OK",
              f"ACL SETUSER stint-noevalsha (ingest's rule without +evalsha): {reply}")
    else:
        check(False, "the Redis user stint-ingest found in ACL LIST")

    cases = []  # (service, what the one line names, healthz body part)
    env = stack.principal_env("ingest")
    env["STINT_RDKAFKA_SASL_PASSWORD_FILE"] = wrong_pw
    cases.append((Service(tmp, "ingest", env, "ingest-wrong-kafka-password"),
                  "sasl.password", "kafka=down"))
    # The same refusal on the mTLS listener: a self-signed certificate with the right CN.
    env = stack.principal_env("ingest")
    for k in ("STINT_RDKAFKA_SASL_MECHANISM", "STINT_RDKAFKA_SASL_USERNAME",
              "STINT_RDKAFKA_SASL_PASSWORD_FILE"):
        env.pop(k, None)
    env.update(STINT_KAFKA_BROKERS=env["STINT_SECURE_MTLS_BROKERS"],
               STINT_RDKAFKA_SECURITY_PROTOCOL="SSL",
               STINT_RDKAFKA_SSL_CERTIFICATE_LOCATION=rogue_pem,
               STINT_RDKAFKA_SSL_KEY_LOCATION=rogue_key)
    cases.append((Service(tmp, "ingest", env, "ingest-rogue-certificate"),
                  "ssl.certificate.location", "kafka=down"))
    cases.append((Service(tmp, "ingest", stack.principal_env("clusterer"), "ingest-as-clusterer"),
                  "kafka.group", "kafka=down"))
    env = stack.principal_env("enricher")
    env["STINT_REDIS_PASSWORD_FILE"] = wrong_pw
    cases.append((Service(tmp, "enricher", env, "enricher-wrong-redis-password"),
                  "check redis.username and redis.password", "redis=down"))
    env = stack.principal_env("ingest")
    env.update(STINT_REDIS_USERNAME="stint-noevalsha", STINT_REDIS_PASSWORD_FILE=noeval_pw)
    noeval = Service(tmp, "ingest", env, "ingest-redis-noevalsha")
    cases.append((noeval, "'evalsha' command (allow the command", "redis=down"))
    try:
        for s, _, _ in cases:
            check(s.wait_port() is not None, f"{s.label}: started, /healthz served")
        # The ACL refusal comes with the first batch: a few listens more, once ingest has its
        # partitions (the group's offsets are at the end of the positive path's replay).
        assigned = wait_for(lambda: "partitions_assigned" in read(noeval.log), 30)
        check(bool(assigned), f"{noeval.label}: partitions assigned")
        r = subprocess.run([os.path.join(BIN, "stint"), "replay", "--data", data.data, "--max",
                            "--limit", "5", "--profiles-topic", "", "--progress", "never",
                            "--bad-lines-logged", "0"], env=stack.principal_env("tools"),
                           capture_output=True, text=True, timeout=left(30))
        check(r.returncode == 0, f"5 listens more replayed as stint-tools (exit {r.returncode})")
        for s, want, body in cases:
            lines = wait_for(lambda: [x for x in read(s.log).splitlines() if want in x], 30)
            check(bool(lines), f"{s.label}: an error line naming \"{want}\"")
            if lines:
                print("      " + lines[0][:400])
            st = wait_for(lambda: (lambda h: h if h[0] != 200 and body in h[1] else None)(
                s.health()), 15)
            check(st is not None, f"{s.label}: /healthz not 200, {body} ({s.health()})")
        time.sleep(min(8, left(8)))  # several reconnects and retries (backoff up to 5 s, 10 s)
        for s, want, body in cases:
            text = read(s.log)
            n = len([x for x in text.splitlines() if want in x])
            check(n == 1, f"{s.label}: exactly one line naming \"{want}\" ({n})")
            check(s.proc.poll() is None, f"{s.label}: still running (exit {s.proc.returncode})")
            check(s.health()[0] not in (0, 200), f"{s.label}: /healthz still not 200 "
                                                 f"({s.health()})")
            for secret in ("noevalsha-", "not-the-password"):
                check(secret not in text, f"{s.label}: no password in the log ({secret}...)")
    finally:
        for s, _, _ in cases:
            rc = stop_service(s.proc)
            check(rc == 0, f"{s.label}: SIGTERM -> exit {rc}")
        if FAILS:
            for s, _, _ in cases:
                print(s.tail())


def main():
    def on_signal(signum, _frame):
        raise SystemExit(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    for tool in ("kcat", "openssl", "redis-server", "redis-cli", "stunnel4", "java"):
        if not shutil.which(tool):
            print(f"{tool} is missing (deploy/local/bootstrap)")
            return 1
    tmp = tempfile.mkdtemp(prefix="stint-secure-stack-")
    stack, data = None, None
    try:
        stack = Stack(tmp)
        t = time.monotonic()
        r = stack.run("up", timeout=150)
        print(r.stdout.strip())
        if not check(r.returncode == 0, f"secure-stack up on ports {sorted(stack.ports.values())} "
                                        f"in {time.monotonic() - t:.0f} s"):
            print(r.stderr[-3000:])
            return 1
        data = Env("secure", users=20, days=30)
        data.train(os.path.join(data.tmp, "model"), 10, 1)
        no_plaintext(stack)
        positive(stack, tmp, data)
        refusals(stack, tmp, data)
    finally:
        if stack is not None:
            try:
                r = subprocess.run([SECURE_STACK, "down"], env=stack.env, capture_output=True,
                                   text=True, timeout=90)
                check(r.returncode == 0, "secure-stack down")
            except subprocess.TimeoutExpired:
                check(False, "secure-stack down within 90 s")
        if data is not None:
            shutil.rmtree(data.tmp, ignore_errors=True)
        if os.environ.get("STINT_KEEP_TEST_DIR"):
            print(f"kept {tmp} (STINT_KEEP_TEST_DIR)")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print(f"{len(FAILS)} failed in {time.monotonic() - T0:.0f} s")
    return 1 if FAILS else 0


if __name__ == "__main__":
    sys.exit(main())
