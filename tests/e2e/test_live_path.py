"""e2e: the README's live path, as a newcomer runs it. The five services start the way `make up`
starts them (deploy/local/services up), the README's kcat command publishes one listen stamped
now for a fresh user, a Prediction for that user must arrive on `predictions` within 30 s (read
with the README's `stint tail predictions --follow`), and `deploy/local/services down` stops
every service with exit 0. The commands `make demo` prints at its end must be the README's: the
reset that empties the topics first, and the same kcat pipeline.

The stack under test is shared with other tests, so the services get a private STINT_HOME and
HTTP ports, and, through the per-service settings file that deploy/local/services passes with -F
($STINT_HOME/services/<name>.conf), consumer groups, a Redis prefix and topics of their own
(<tag>.<topic>), all set up by live_env.py. The README's commands run as written, with only the
broker address, the topic name and the user id replaced."""
import json
import math
import os
import re
import subprocess
import sys
import time
import urllib.request

from live_env import BIN, BROKERS, FAILS, SERVICES, SRC, LiveServices, TopicReader, check

README_BROKERS = "127.0.0.1:19092"
README_USER = "user_000001"
DEADLINE_S = 30


def readme_section(title):
    with open(os.path.join(SRC, "README.md"), encoding="utf-8") as f:
        text = f.read()
    m = re.search(r"^## " + re.escape(title) + r"\n(.*?)(?=^## )", text, re.S | re.M)
    assert m, f"README has no section '{title}'"
    return m.group(1)


def readme_commands():
    """The publish command (a whole ```sh block) and the tail command line of the README."""
    sec = readme_section("Publishing listens and reading predictions")
    blocks = re.findall(r"```sh\n(.*?)```", sec, re.S)
    publish = [b for b in blocks if "kcat" in b and "-t listens.raw" in b]
    tail = [line.split("|")[0].split("#")[0].strip() for b in blocks for line in b.splitlines()
            if line.startswith("build/bin/stint tail predictions --follow")]
    assert publish, "README: no ```sh block with the kcat command for listens.raw"
    assert tail, "README: no `build/bin/stint tail predictions --follow` line"
    return publish[0], tail[0]


def one_line(cmd):
    """A shell command with its line continuations and runs of blanks made single spaces."""
    return " ".join(cmd.replace("\\\n", " ").split())


def demo_commands():
    """The reset line and the publish pipeline that deploy/local/demo prints at its end: its
    closing here-document, rendered by bash with placeholder paths and the README's broker."""
    with open(os.path.join(SRC, "deploy", "local", "demo"), encoding="utf-8") as f:
        m = re.search(r"^cat <<MSG\n.*?^MSG\n", f.read(), re.S | re.M)
    assert m, "deploy/local/demo: no closing cat <<MSG here-document"
    env = dict(os.environ, report="R", bundle="B", logs="L", rel="build/bin/stint", data="D",
               seed="1", STINT_KAFKA_BROKERS=README_BROKERS)
    lines = subprocess.run(["bash", "-c", m.group(0)], env=env, capture_output=True, text=True,
                           check=True).stdout.splitlines()
    reset = [x.strip() for x in lines if "deploy/local/stack reset" in x]
    at = [k for k, x in enumerate(lines) if x.strip().startswith("printf 'user_000001|")]
    publish = one_line(lines[at[0]] + " " + lines[at[0] + 1]) if at else ""
    return (reset[0] if reset else ""), publish


def check_demo_hint(publish):
    """make demo's closing commands are the README's: the reset that empties the history's
    clocks first (after the demo's replay a listen stamped now goes to sessions.dlq), then the
    same kcat pipeline."""
    reset, demo_publish = demo_commands()
    check(demo_publish == one_line(publish),
          "make demo's closing kcat command is the README's (same partitioner, same record)")
    blocks = re.findall(r"```sh\n(.*?)```", readme_section("Publishing listens and reading predictions"),
                        re.S)
    # the catalog's path is the demo's data there, a placeholder in the README
    def norm(cmd):
        return re.sub(r"catalog import \S+", "catalog import FILE", cmd)
    readme_reset = [norm(line.split("#")[0].strip()) for b in blocks
                    if "deploy/local/stack reset" in b for line in b.splitlines()]
    steps = [norm(x.strip()) for x in reset.split("&&")] if reset else []
    check(steps[:1] == ["deploy/local/services down"] and "deploy/local/stack reset" in steps
          and "build/bin/stint catalog import FILE" in steps
          and all(x in readme_reset for x in steps),
          f"make demo prints the README's reset before publishing ({reset!r})")


def check_stream_time(live, listen_s):
    """The sessionizer's stream time gauge of the listen's partition is the listen's time (a
    partition with one user follows it), and the other partitions it holds have none yet."""
    port = live.http_base + SERVICES.index("sessionizer")
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    times = {m.group(1): float(m.group(2)) for m in re.finditer(
        r'^stint_sessionizer_stream_time_seconds\{topic="[^"]*",partition="(\d+)"\} (\S+)$', text,
        re.M)}
    known = {p: t for p, t in times.items() if not math.isnan(t)}
    check(len(times) > 1 and list(known.values()) == [listen_s],
          f"stint_sessionizer_stream_time_seconds: the listen's partition at its time {listen_s}, "
          f"the others NaN ({times})")


def main():
    live = LiveServices("live")
    user = f"user_{live.tag}"
    try:
        publish, tail = readme_commands()
        check_demo_hint(publish)
        check("$(date -u +%Y-%m-%dT%H:%M:%SZ)" in publish and README_BROKERS in publish
              and README_USER in publish,
              "README's kcat command stamps the listen now, on the local stack, for user_000001")
        if not live.start():
            return

        cmd = (publish.replace(README_BROKERS, BROKERS)
               .replace("-t listens.raw", f"-t {live.topic('listens.raw')}")
               .replace(README_USER, user))
        published_s = time.time()
        r = subprocess.run(["bash", "-c", "set -euo pipefail\n" + cmd], env=live.env,
                           capture_output=True, text=True, timeout=30)
        if not check(r.returncode == 0, "README's kcat command: exit 0"):
            sys.stderr.write(f"{cmd}\n{r.stdout}{r.stderr}")
            return

        argv = tail.split()
        argv[0] = os.path.join(BIN, "stint")
        argv[argv.index("predictions")] = live.topic("predictions")
        reader = TopicReader(None, live.env, argv)
        try:
            preds = reader.wait_for(lambda recs: [x for x in recs if x.get("user_id") == user],
                                    published_s + DEADLINE_S)
        finally:
            reader.close()
        pred = preds[0] if preds else None
        waited = time.time() - published_s
        if check(pred is not None, f"a Prediction for {user} within {DEADLINE_S} s "
                                   f"({waited:.1f} s)"):
            print(f"prediction: {json.dumps(pred)}")
            start_s = pred["session_start_ms"] / 1000
            check(abs(start_s - published_s) <= 5,
                  f"the session starts at the listen's timestamp, now ({start_s - published_s:+.1f} s)")
            check(pred["predictor"] in ("MODEL", "BASELINE") and pred["predicted_length_s"] >= 0,
                  f"predictor={pred['predictor']} predicted_length_s={pred['predicted_length_s']}")
            check_stream_time(live, pred["session_start_ms"] / 1000)
        else:
            live.print_logs(("sessionizer", "predictor"))
    finally:
        live.stop()
        live.cleanup()


if __name__ == "__main__":
    main()
    print(f"{len(FAILS)} failed")
    sys.exit(1 if FAILS else 0)
