"""e2e: one track-catalog rule offline and streaming (issue #24). A generated dataset's catalog
gets duplicated keys whose durations differ, for about three quarters of the tracks the listens
use, spelled the way the key normalises away (ASCII case, spaces):

- kind 0: the same key again at the end of the file, with another duration (or, for a track
  without one, with a duration);
- kind 1: the same key earlier in the file, without a duration;
- kind 2: the track's line without its duration, then the real line at the end of the file, then
  one more with another duration.

Offline, `stint sessions --catalog` on that file must equal `stint sessions` on the catalog
reduced to the winner the rule's wording picks (first-with-duration, computed here in Python),
and differ from the catalogs reduced by "first line wins" (the old offline loader) and by "last
line wins" (the old `catalog import`): so the streaming check below fails with either old rule.
Both `stint catalog import` and `stint sessions` report the duplicated keys and the rule.

Streaming: the catalog is imported into a private Redis prefix, the five services start on
private topics (live_env.py), `stint replay --max` publishes the dataset, and once ingest has
consumed it, sentinel listens 2 days later (stream_check.py's: several users per partition, so
that the partition clock's quorum moves) close every real session. The CLOSED sessions on
`sessions` must equal `stint sessions` offline on the same files, session for session (start,
length to the millisecond as printed, track count)."""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

from live_env import BIN, BROKERS, FAILS, REDIS_PORT, SRC, LiveServices, TopicReader, check
from test_live_corrections import publish

sys.path.insert(0, os.path.join(SRC, "deploy", "compose"))
from stream_check import (SENTINEL_AFTER_S, closed_sessions, last_listen_s,  # noqa: E402
                          sentinel_users)

USERS, DAYS, SEED = 6, 14, 24
PARTITIONS = 3  # live_env.py creates every private topic with 3 partitions
CLOSE_DEADLINE_S = 180
LISTENS_TSV = "userid-timestamp-artid-artname-traid-traname.tsv"


def norm(s):
    """st_trackmeta_key's normalisation of one name: trimmed of spaces, tabs, CR and LF, inner
    tabs, CR and LF made spaces, ASCII A-Z lower-cased (other bytes unchanged)."""
    s = s.strip(" \t\r\n")
    for c in "\t\r\n":
        s = s.replace(c, " ")
    return "".join(chr(ord(c) + 32) if "A" <= c <= "Z" else c for c in s)


def key_of(entry):
    return norm(entry["artist"]) + "\t" + norm(entry["track"])


def known(entry):
    d = entry.get("duration_ms")
    return isinstance(d, int) and d > 0


def respell(entry, **changes):
    """The same key spelled otherwise: ASCII case swapped, spaces around the names."""
    swap = "".join(c.swapcase() if c.isascii() else c for c in entry["artist"])
    out = dict(entry, artist=f"  {swap} ", track=entry["track"] + " ")
    out.update(changes)
    return out


def build_catalog(data, path):
    """Writes the duplicated catalog; returns its entries in file order."""
    listened = set()
    with open(os.path.join(data, LISTENS_TSV), encoding="utf-8", errors="replace") as f:
        for line in f:
            cols = line.rstrip("\n").split("\t")
            if len(cols) >= 6:
                listened.add(norm(cols[3]) + "\t" + norm(cols[5]))
    head, tail, n = [], [], 0
    with open(os.path.join(data, "tracks.jsonl"), encoding="utf-8") as f:
        for line in f:
            e = json.loads(line)
            if key_of(e) not in listened:
                head.append(e)
                continue
            kind, n = n % 4, n + 1
            other = (e["duration_ms"] * 2 + 60000) if known(e) else 240000
            if kind == 0:
                head.append(e)
                tail.append(respell(e, duration_ms=other, tags=["dup-later"]))
            elif kind == 1:
                head.append(respell(e, duration_ms=None, tags=["dup-earlier"]))
                head.append(e)
            elif kind == 2:
                head.append(respell(e, duration_ms=0, tags=["dup-none"]))
                tail.append(e)
                tail.append(respell(e, duration_ms=other, tags=["dup-last"]))
            else:
                head.append(e)
    entries = head + tail
    with open(path, "w", encoding="utf-8") as f:
        for e in entries:
            f.write(json.dumps(e, ensure_ascii=False) + "\n")
    return entries


def reduced(entries, pick, path):
    """Writes the catalog with one line per key, the one pick(lines of the key) chooses."""
    by_key = {}
    for e in entries:
        by_key.setdefault(key_of(e), []).append(e)
    with open(path, "w", encoding="utf-8") as f:
        for lines in by_key.values():
            f.write(json.dumps(pick(lines), ensure_ascii=False) + "\n")
    return sum(len(v) > 1 for v in by_key.values())


def first_with_duration(lines):
    return next((e for e in lines if known(e)), lines[0])


def offline(data, catalog, workdir, name):
    """`stint sessions` on the dataset with that catalog: ({(user, start_s): (length_s as
    printed, track_count)}, the summary line)."""
    out = os.path.join(workdir, f"{name}.tsv")
    r = subprocess.run([os.path.join(BIN, "stint"), "sessions", "--data", data, "--catalog",
                        catalog, "--out", out, "--quiet"], capture_output=True, text=True,
                       timeout=300)
    if not check(r.returncode == 0, f"stint sessions --catalog {name}: exit 0"):
        print(r.stdout + r.stderr)
        return {}, ""
    with open(out, encoding="utf-8") as f:
        rows = [line.rstrip("\n").split("\t")[:4] for line in f]
    return {(u, int(s)): (length, int(tracks)) for u, s, length, tracks in rows}, r.stdout


def summary_field(line, name):
    for kv in line.split():
        if kv.startswith(name + "="):
            return kv.split("=", 1)[1]
    return None


def wait_lag_zero(live, group, topic, timeout_s=180):
    """Waits until the consumer group has committed every record of the topic."""
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        r = subprocess.run([os.path.join(BIN, "stint"), "lag", "-b", BROKERS, "-G", group, topic,
                            "--wait", "--timeout", "60", "--total"],
                           capture_output=True, text=True, env=live.env, timeout=120)
        if r.stdout.strip() == "0":
            return True
        time.sleep(1)
    return False


def main():
    live = LiveServices("catdup")
    workdir = tempfile.mkdtemp(prefix="stint-catdup-")
    readers = []
    try:
        data = os.path.join(workdir, "data")
        r = subprocess.run([os.path.join(BIN, "stint"), "gen", "--users", str(USERS), "--days",
                            str(DAYS), "--seed", str(SEED), "--out", data],
                           capture_output=True, text=True, timeout=300)
        if not check(r.returncode == 0, f"stint gen: exit 0 ({r.stdout.strip()})"):
            print(r.stderr)
            return
        catalog = os.path.join(workdir, "tracks-dup.jsonl")
        entries = build_catalog(data, catalog)
        dup_keys = reduced(entries, first_with_duration, os.path.join(workdir, "rule.jsonl"))
        reduced(entries, lambda lines: lines[0], os.path.join(workdir, "first.jsonl"))
        reduced(entries, lambda lines: lines[-1], os.path.join(workdir, "last.jsonl"))
        check(dup_keys >= 20, f"the catalog names {dup_keys} keys more than once")

        want, summary = offline(data, catalog, workdir, "dup")
        print(summary.strip())
        check(summary_field(summary, "catalog_duplicate_keys") == str(dup_keys) and
              summary_field(summary, "catalog_rule") == "first-with-duration",
              f"stint sessions reports catalog_duplicate_keys={dup_keys} "
              f"catalog_rule=first-with-duration")
        rule, _ = offline(data, os.path.join(workdir, "rule.jsonl"), workdir, "rule")
        first, _ = offline(data, os.path.join(workdir, "first.jsonl"), workdir, "first")
        last, _ = offline(data, os.path.join(workdir, "last.jsonl"), workdir, "last")
        if not check(len(want) > 0, f"offline: {len(want)} sessions"):
            return
        check(want == rule, "offline on the duplicated catalog == offline on the catalog reduced "
                            "to each key's first line with a duration (else its first line)")
        differ = lambda other: sum(want.get(k) != other.get(k) for k in set(want) | set(other))
        check(differ(first) > 0 and differ(last) > 0,
              f"the duplicates matter: {differ(first)} sessions differ under first-line-wins, "
              f"{differ(last)} under last-line-wins")

        r = subprocess.run([os.path.join(BIN, "stint"), "catalog", "import", "--redis.port",
                            REDIS_PORT, "--redis.prefix", live.tag, catalog],
                           capture_output=True, text=True, env=live.env, timeout=300)
        print(r.stdout.strip())
        check(r.returncode == 0 and
              summary_field(r.stdout, "duplicate_keys") == str(dup_keys) and
              summary_field(r.stdout, "rule") == "first-with-duration",
              f"stint catalog import: exit 0, duplicate_keys={dup_keys} rule=first-with-duration")

        if not live.start():
            return
        sessions = TopicReader(live.topic("sessions"), live.env)
        readers.append(sessions)
        t0 = time.time()
        r = subprocess.run([os.path.join(BIN, "stint"), "replay", "--data", data, "--max",
                            "--topic", live.topic("listens.raw"), "--profiles-topic",
                            live.topic("users.profiles"), "-b", BROKERS],
                           capture_output=True, text=True, env=live.env, timeout=300)
        if not check(r.returncode == 0, f"stint replay --max: exit 0 ({time.time() - t0:.1f} s)"):
            print(r.stdout + r.stderr)
            return
        # Every replayed listen through ingest first, so that no end-of-data listen overtakes one.
        if not check(wait_lag_zero(live, f"{live.tag}-stint-ingest", live.topic("listens.raw")),
                     f"ingest consumed the replay ({time.time() - t0:.1f} s)"):
            return
        sentinels = sentinel_users(PARTITIONS)
        at = last_listen_s(data) + SENTINEL_AFTER_S
        t1 = time.time()
        if not publish(live, [(u, at, "Sentinel") for u in sentinels]):
            return
        keys = set(want)
        got = sessions.wait_for(lambda evs: set(closed_sessions(evs, sentinels)[0]) >= keys,
                                t1 + CLOSE_DEADLINE_S)
        check(got, f"every offline session CLOSED on sessions ({time.time() - t1:.1f} s after "
                   f"the end-of-data listens)")
        time.sleep(2)  # anything that should not come would come now
        closed, twice = closed_sessions(sessions.snapshot(), sentinels)
        missing = sorted(set(want) - set(closed))
        extra = sorted(set(closed) - set(want))
        diff = sorted(k for k in set(want) & set(closed) if want[k] != closed[k])
        check(not twice and not missing and not extra and not diff,
              f"CLOSED sessions after catalog import + replay == stint sessions offline on the "
              f"same files ({len(closed)} of {len(want)}; missing {missing[:3]}, extra "
              f"{extra[:3]}, different {[(k, want[k], closed[k]) for k in diff[:3]]}, closed "
              f"twice differently {sorted(twice)[:3]})")
        if FAILS:
            live.print_logs(("ingest", "enricher", "sessionizer"))
    finally:
        for rd in readers:
            rd.close()
        live.stop()
        live.cleanup()
        if FAILS:
            print(f"kept {workdir} for inspection")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
    print(f"{len(FAILS)} failed")
    sys.exit(1 if FAILS else 0)
