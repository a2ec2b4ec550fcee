#!/usr/bin/env python3
"""sessionize.py - test helper: a small, private implementation of DESIGN.md's session rule that
turns a Last.fm-format directory + tracks.jsonl catalog into the `stint sessions` TSV
(user_id, start_ts, length_s, track_count, unknown_duration_share), sorted by user then start.
Only for tests and demos until the shared session module is in; exact duplicate rows are dropped."""
import json
import sys
from datetime import datetime, timezone

GAP_S = 1800


def main():
    if len(sys.argv) != 4:
        sys.stderr.write("usage: sessionize.py DATA_DIR CATALOG OUT_TSV\n")
        return 2
    data_dir, catalog, out_path = sys.argv[1:]
    durations = {}
    with open(catalog, encoding="utf-8") as f:
        for line in f:
            rec = json.loads(line)
            durations[(rec["artist"].lower(), rec["track"].lower())] = int(rec["duration_ms"]) // 1000
    by_user = {}
    with open(data_dir + "/userid-timestamp-artid-artname-traid-traname.tsv", encoding="utf-8",
              errors="replace") as f:
        for line in f:
            fields = line.rstrip("\n").split("\t")
            if len(fields) != 6 or not fields[0]:
                continue
            try:
                ts = int(datetime.strptime(fields[1], "%Y-%m-%dT%H:%M:%SZ")
                         .replace(tzinfo=timezone.utc).timestamp())
            except ValueError:
                continue
            d = durations.get((fields[3].lower(), fields[5].lower()), 0)
            by_user.setdefault(fields[0], set()).add((ts, fields[3].lower(), fields[5].lower(), d))
    with open(out_path, "w", encoding="utf-8") as out:
        for user in sorted(by_user):
            events = sorted(by_user[user])
            sessions = []
            cur = None
            prev = None
            for ts, _a, _t, d in events:
                same = False
                if prev is not None:
                    gap = ts - prev[0]
                    pd = prev[3]
                    same = (gap <= pd or gap - pd <= GAP_S) if pd > 0 else gap <= GAP_S
                if not same:
                    if cur:
                        sessions.append(cur)
                    cur = [ts, ts, d, 0, 0]
                cur[1] = ts
                cur[2] = d
                cur[3] += 1
                cur[4] += 1 if d <= 0 else 0
                prev = (ts, None, None, d)
            if cur:
                sessions.append(cur)
            for start, last, last_d, n, unknown in sessions:
                out.write("%s\t%d\t%d\t%d\t%.4f\n" % (user, start, last - start + max(last_d, 0), n,
                                                     unknown / n))
    return 0


if __name__ == "__main__":
    sys.exit(main())
