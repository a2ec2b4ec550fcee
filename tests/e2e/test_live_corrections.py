"""e2e: corrections on the live path (issue 15). The five services run as `make up` starts them
(tests/e2e/live_env.py: private STINT_HOME, ports, groups, Redis prefix and topics), the
sessionizer with session.gap_s=20, session.grace_ms=30000 and idle.lag_ms=0 (sessions close in
wall time at once). Listens stamped relative to now,
T, go to listens.raw as the README's kcat command sends them; a listen published after a later
one, inside the grace, changes sessions already announced:

- user 1, "fills the gap": A at T-35 s and B at T-5 s (30 s apart: two sessions, both announced),
  then L at T-17 s (A->L 18 s, L->B 12 s): B's session belongs to A's. Expected on `sessions`
  the OPENED of A's session again with a higher revision and retracted_session_ids = [B's], on
  `predictions` B's Prediction retracted and A's corrected, each with a higher revision.
  (Revisions are compared by rank per session: only their order means something.)
- user 2, "starts earlier": A2 at T-35 s and B2 at T-5 s, then L2 at T-14 s (A2->L2 21 s, a new
  session that B2 continues): expected an OPENED of L2's session with retracted_session_ids =
  [B2's], B2's Prediction retracted and a Prediction of L2's session.

A and A2 go first, B and B2 once A's and A2's OPENED are on `sessions`, L and L2 as soon as B's and
B2's are; L and L2 stay inside the grace as long as they arrive within ~18 s (the live clock moves
the partition's stream time, T-5 after B, on with wall time), and `sessions.late` must stay empty.
The sessions then close in wall time (stream time past the last listen + gap + grace: about T+50 s),
and the CLOSED events, the consumer's final view of `sessions` (latest revision per session_id,
retracted ones dropped, a CLOSED voiding the other announcements in [start_ms, last_start_ms]) and
of `predictions` (upsert by session_id), and the PredictionOutcomes must all equal `stint sessions
--gap-s 20` run offline on the same listens as a Last.fm 1K TSV, session for session. Finally
`deploy/local/services down`: every exit 0."""
import json
import os
import subprocess
import sys
import tempfile
import time

from live_env import BIN, BROKERS, FAILS, LiveServices, TopicReader, check

GAP_S = 20
GRACE_MS = 30000
OPENED_DEADLINE_S = 30  # from T to the OPENED of A, A2, B and B2
EVENTS_DEADLINE_S = 30  # from publishing L, L2 to the corrections
CLOSE_DEADLINE_S = 120  # from T to every CLOSED (expected at about T+50 s)
ARTIST = "Deep Dish"


def iso(sec):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(sec))


def val(x):
    """A nullable union's value, whether the JSON wraps it ({"double": 1.5}) or not."""
    if isinstance(x, dict) and len(x) == 1:
        return next(iter(x.values()))
    return x


def sid(user, sec):
    return f"{user}:{sec * 1000}"


def publish(live, listens):
    """listens: (user, epoch s, track) -> listens.raw with kcat, as the README does."""
    lines = "".join(
        f"{u}|" + json.dumps({"user_id": u, "timestamp": iso(t), "artist_name": ARTIST,
                              "track_name": track}, separators=(",", ":")) + "\n"
        for u, t, track in listens)
    r = subprocess.run(["kcat", "-b", BROKERS, "-X", "partitioner=murmur2_random", "-P", "-t",
                        live.topic("listens.raw"), "-K", "|"],
                       input=lines, capture_output=True, text=True, timeout=30)
    if not check(r.returncode == 0, f"kcat published {len(listens)} listens"):
        print(r.stderr)
        return False
    return True


def offline_sessions(listens, workdir):
    """`stint sessions --gap-s GAP_S` on the listens as a Last.fm 1K TSV (each user's rows newest
    first): {(user, start_s): (length_s as printed, track_count)}."""
    data = os.path.join(workdir, "data")
    os.makedirs(data)
    rows = sorted(listens, key=lambda x: (x[0], -x[1]))
    with open(os.path.join(data, "userid-timestamp-artid-artname-traid-traname.tsv"), "w",
              encoding="utf-8") as f:
        for u, t, track in rows:
            f.write(f"{u}\t{iso(t)}\t\t{ARTIST}\t\t{track}\n")
    out = os.path.join(workdir, "sessions.tsv")
    r = subprocess.run([os.path.join(BIN, "stint"), "sessions", "--data", data, "--gap-s",
                        str(GAP_S), "--out", out], capture_output=True, text=True, timeout=60)
    check(r.returncode == 0, f"stint sessions: exit 0 ({r.stdout.strip()}{r.stderr.strip()})")
    got = {}
    with open(out, encoding="utf-8") as f:
        for line in f:
            u, start, length, tracks = line.rstrip("\n").split("\t")[:4]
            got[(u, int(start))] = (length, int(tracks))
    return got


def by_user(records, user, key="user_id"):
    return [r for r in records if r.get(key) == user]


def session_view(events):
    """The consumer's final view of `sessions` (docs/sessionizer.md, "Early OPENED and
    corrections"): session_id -> [latest OPENED or None, CLOSED or None]."""
    view, retracted = {}, set()
    for ev in events:
        s = ev["session_id"]
        if ev["kind"] == "OPENED":
            if s in retracted:
                continue
            for r in ev.get("retracted_session_ids") or []:
                retracted.add(r)
                view.pop(r, None)
            cur = view.setdefault(s, [None, None])
            if cur[0] is None or ev["revision"] > cur[0]["revision"]:
                cur[0] = ev
        else:
            lo, hi = ev["start_ms"], val(ev["last_start_ms"])
            for other in [k for k, v in view.items() if k != s and (v[0] or v[1])["user_id"] ==
                          ev["user_id"] and lo <= (v[0] or v[1])["start_ms"] <= hi]:
                del view[other]
            view.setdefault(s, [None, None])[1] = ev
    return view


def ranked(records):
    """The records with each revision replaced by its rank among its session's revisions: only
    the order of revisions means something (docs/sessionizer.md), so 0 = the first, 1 = the next."""
    revs = {}
    for r in records:
        if r.get("kind", "OPENED") == "OPENED":
            revs.setdefault(r["session_id"], set()).add(r["revision"])
    order = {s: sorted(v) for s, v in revs.items()}
    out = []
    for r in records:
        r = dict(r)
        if r["session_id"] in order and r.get("kind", "OPENED") == "OPENED":
            r["revision"] = order[r["session_id"]].index(r["revision"])
        out.append(r)
    return out


def prediction_view(preds):
    """Upsert by session_id: the highest revision, deleted when it is retracted."""
    best = {}
    for p in preds:
        s = p["session_id"]
        if s not in best or p["revision"] > best[s]["revision"]:
            best[s] = p
    return {s: p for s, p in best.items() if not p["retracted"]}


def brief(ev):
    if ev["kind"] == "CLOSED":
        return ("CLOSED", ev["session_id"], val(ev["track_count"]), val(ev["length_s"]))
    return ("OPENED", ev["session_id"], ev["revision"], tuple(ev.get("retracted_session_ids") or ()))


def main():
    live = LiveServices("livecorr", extra={"sessionizer": [f"session.gap_s={GAP_S}",
                                                           f"session.grace_ms={GRACE_MS}",
                                                           "idle.lag_ms=0"]})
    u1, u2 = f"u1_{live.tag}", f"u2_{live.tag}"
    readers = []
    workdir = tempfile.mkdtemp(prefix="stint-livecorr-")
    try:
        if not live.start():
            return
        r = subprocess.run([os.path.join(BIN, "stint-sessionizer"), "-F",
                            os.path.join(live.home, "services", "sessionizer.conf"), "--dump-config"],
                           capture_output=True, text=True, env=live.env)
        check(f"session.gap_s={GAP_S}" in r.stdout and f"session.grace_ms={GRACE_MS}" in r.stdout,
              "the sessionizer's .conf sets the gap and the grace")
        sessions = TopicReader(live.topic("sessions"), live.env)
        preds = TopicReader(live.topic("predictions"), live.env)
        outcomes = TopicReader(live.topic("predictions.outcomes"), live.env)
        late = TopicReader(live.topic("sessions.late"), live.env)
        readers = [sessions, preds, outcomes, late]

        T = int(time.time())
        a, b, fill = T - 35, T - 5, T - 17      # user 1: L fills the gap between A and B
        a2, b2, early = T - 35, T - 5, T - 14   # user 2: L2 starts B2's session earlier
        # A, A2 first, B, B2 once their OPENED are out: the services' producers partition by
        # murmur2 and kcat by crc32, so two users of one sessionizer partition can come from
        # two listens.raw partitions that ingest merges in any order; B2 (T-5) before A
        # (T-35) would put A exactly at the grace's edge.
        phases = [[(u1, a, "Flashdance"), (u2, a2, "Flashdance")],
                  [(u1, b, "Say Hello"), (u2, b2, "Say Hello")],
                  [(u1, fill, "Dreams"), (u2, early, "Dreams")]]
        sa, sb, sa2, sb2, sl2 = sid(u1, a), sid(u1, b), sid(u2, a2), sid(u2, b2), sid(u2, early)

        for listens, wait, what in ((phases[0], {sa, sa2}, "A and A2"),
                                    (phases[1], {sb, sb2}, "B and B2")):
            if not publish(live, listens):
                return
            opened = sessions.wait_for(
                lambda evs: {e["session_id"] for e in evs if e["kind"] == "OPENED"} >= wait,
                T + OPENED_DEADLINE_S)
            seen_s = time.time()
            if not check(opened, f"OPENED of {what} on sessions ({seen_s - T:.1f} s after T)"):
                return
        if not publish(live, phases[2]):
            return
        check(time.time() - seen_s < 5,
              f"L and L2 published {time.time() - seen_s:.1f} s after B's OPENED (grace "
              f"{GRACE_MS / 1000:.0f} s, L is {b - fill} s, L2 {b2 - early} s behind)")
        t_second = time.time()

        # The corrections.
        def corrected(evs):
            revs = {(e["session_id"], e["revision"]) for e in ranked(evs) if e["kind"] == "OPENED"}
            return (sa, 1) in revs and (sl2, 0) in revs
        got = sessions.wait_for(corrected, t_second + EVENTS_DEADLINE_S)
        check(got, f"the corrections on sessions ({time.time() - t_second:.1f} s after L)")
        want_preds = {u1: [(sa, 0, False), (sb, 0, False), (sa, 1, False), (sb, 1, True)],
                      u2: [(sa2, 0, False), (sb2, 0, False), (sb2, 1, True), (sl2, 0, False)]}

        def all_preds(ps):
            have = sorted((p["session_id"], p["revision"], p["retracted"]) for p in ranked(ps))
            return have == sorted(want_preds[u1] + want_preds[u2])
        got = preds.wait_for(lambda ps: all_preds(by_user(ps, u1) + by_user(ps, u2)),
                             t_second + EVENTS_DEADLINE_S)
        check(got, f"the corrected and retracted Predictions ({time.time() - t_second:.1f} s "
                   f"after L)")

        # The closes, in wall time.
        got = sessions.wait_for(lambda evs: sum(e["kind"] == "CLOSED" for e in evs) >= 3,
                                T + CLOSE_DEADLINE_S)
        # Stream time passes B + gap + grace; it trails wall time by T - B.
        check(got, f"three CLOSED ({time.time() - T:.1f} s after T; expected about "
                   f"{GAP_S + GRACE_MS / 1000:.0f} s)")
        outcomes.wait_for(lambda os_: len(os_) >= 3, time.time() + 15)
        time.sleep(2)  # anything that should not come would come now

        evs = sessions.snapshot()
        ev1, ev2 = by_user(evs, u1), by_user(evs, u2)
        rev1, rev2 = ranked(ev1), ranked(ev2)
        check([brief(e) for e in rev1] ==
              [("OPENED", sa, 0, ()), ("OPENED", sb, 0, ()), ("OPENED", sa, 1, (sb,)),
               ("CLOSED", sa, 3, float(b - a))],
              "user 1 (L fills the gap): OPENED A, OPENED B, OPENED A revision 1 retracting B, "
              "CLOSED A with 3 listens")
        check([brief(e) for e in rev2] ==
              [("OPENED", sa2, 0, ()), ("OPENED", sb2, 0, ()), ("OPENED", sl2, 0, (sb2,)),
               ("CLOSED", sa2, 1, 0.0), ("CLOSED", sl2, 2, float(b2 - early))],
              "user 2 (L2 starts earlier): OPENED A2, OPENED B2, OPENED L2 retracting B2, "
              "CLOSED A2 and L2's session with 2 listens")
        check(len(evs) == len(ev1) + len(ev2), f"no other session events ({len(evs)})")
        ps = preds.snapshot()
        for u in (u1, u2):
            mine = ranked(by_user(ps, u))
            check(sorted((p["session_id"], p["revision"], p["retracted"]) for p in mine) ==
                  sorted(want_preds[u]),
                  f"{u}: Predictions (session, revision, retracted) {sorted(want_preds[u])}")
        lt = late.snapshot()
        check(not lt, f"no listen late ({len(lt)} on sessions.late)")

        # Live against offline.
        offline = offline_sessions([x for p in phases for x in p], workdir)
        check(offline == {(u1, a): (f"{b - a:.3f}", 3), (u2, a2): ("0.000", 1),
                          (u2, early): (f"{b2 - early:.3f}", 2)},
              f"stint sessions offline: {offline}")
        closed = {(e["user_id"], e["start_ms"] // 1000): (f"{val(e['length_s']):.3f}",
                                                           val(e["track_count"]))
                  for e in evs if e["kind"] == "CLOSED"}
        check(closed == offline, f"the CLOSED sessions equal stint sessions offline: {closed}")
        view = session_view(ev1 + ev2)
        final = {}
        for s, (op, cl) in view.items():
            if not check(op is not None and cl is not None,
                         f"{s}: announced and closed in the consumer's view"):
                continue
            final[(cl["user_id"], cl["start_ms"] // 1000)] = (f"{val(cl['length_s']):.3f}",
                                                              val(cl["track_count"]))
        check(final == offline, f"the consumer's final view of sessions equals offline: {final}")
        pview = prediction_view(ranked(by_user(ps, u1) + by_user(ps, u2)))
        check(sorted((p["user_id"], p["session_start_ms"] // 1000) for p in pview.values()) ==
              sorted(offline), "the consumer's final view of predictions: one per offline session")
        check(all(p["revision"] == (1 if s == sa else 0) for s, p in pview.items()),
              "A's prediction is the corrected one (revision 1)")
        oc = by_user(outcomes.snapshot(), u1) + by_user(outcomes.snapshot(), u2)
        got = {(o["user_id"], o["session_start_ms"] // 1000): f"{o['actual_length_s']:.3f}"
               for o in oc}
        check(len(oc) == 3 and got == {k: v[0] for k, v in offline.items()},
              f"one PredictionOutcome per offline session, with its length: {got}")
        check(all(o["predicted_length_s"] == pview[o["session_id"]]["predicted_length_s"]
                  for o in oc if o["session_id"] in pview),
              "each outcome carries the latest revision's prediction")
    finally:
        if FAILS:
            for r in readers:
                name = r.proc.args[2]
                print(f"-- {name}:")
                for rec in r.snapshot():
                    print(json.dumps(rec))
            live.print_logs(("sessionizer", "predictor"), 12)
        for r in readers:
            r.close()
        live.stop()
        live.cleanup()
        if not FAILS:
            subprocess.run(["rm", "-rf", workdir])


if __name__ == "__main__":
    main()
    print(f"{len(FAILS)} failed")
    sys.exit(1 if FAILS else 0)
