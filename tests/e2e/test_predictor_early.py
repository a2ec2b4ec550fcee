"""e2e: the predictor on the sessionizer's early-OPENED stream. stint-session-events sends each
CLOSED two hours (event time) after its session closed, so a user's next OPENED usually comes
before the previous session's CLOSED; and, for rows of the data set in turn, (0) an OPENED first
with wrong features and then corrected (revision 1), (1) a spurious session announced inside a
real one and retracted by the real one's OPENED, revision 1 (retracted_session_ids), (2) a
spurious session announced inside a real one and voided by that one's CLOSED ([start_ms,
last_start_ms]). The stream also carries copies (the user's previous event and the current one
again every 7th event) and then the whole stream again at new offsets.

Checked: one revision-0 Prediction per announced session; a revision-1 Prediction per corrected
OPENED, other than the wrong revision 0; one retracted Prediction (revision 1, repeating the
voided one) per spurious session and none for a real one; nothing more (the copies give no
output); one Outcome per real session, carrying its latest revision; the latest prediction of
each session equals the offline prediction of the same bundle (features from the OPENED's recent
session details: the history in Redis lacks the previous session when the next one opens); the
consumer rule (highest revision wins, retracted deletes) leaves exactly the real sessions; the
counters and the MAE gauges (MODEL only); and no open prediction left in Redis."""
import collections
import os
import subprocess
import sys

from predictor_env import BIN, FAILS, REDIS_PORT, Env, check, run

GRACE_MS = 2 * 3600 * 1000
GAP_MS = 1800 * 1000


def main():
    env = Env("early", users=30, days=40)
    try:
        model = os.path.join(env.tmp, "model")
        env.train(model, epochs=5, seed=3)
        off_path = os.path.join(env.tmp, "offline.tsv")
        r = run([os.path.join(BIN, "stint-session-events"), "offline", "--sessions", env.sessions,
                 "--profiles", env.profiles, "--model", model, "--out", off_path])
        assert r.returncode == 0
        offline_mae = float(dict(kv.split("=") for kv in r.stdout.split())["offline_mae_s"])
        offline = {}
        with open(off_path, encoding="utf-8") as f:
            for line in f:
                sid, p = line.split("\t")
                offline[sid] = float(p)
        n = len(env.session_ids)
        check(set(offline) == env.session_ids, f"offline predictions for all {n} sessions")

        # How many OPENED come before the previous session's CLOSED (what the stream does).
        by_user = collections.defaultdict(list)
        with open(env.sessions, encoding="utf-8") as f:
            for line in f:
                u, start, length = line.split("\t")[:3]
                by_user[u].append((int(start) * 1000, round(float(length) * 1000)))
        early = 0
        for rows in by_user.values():
            rows.sort()
            for (s0, l0), (s1, _) in zip(rows, rows[1:]):
                early += s1 < min(s1, s0 + l0 + GAP_MS) + GRACE_MS
        check(early > n // 10, f"{early} of {n} OPENED come before the previous session's CLOSED")

        manifest = os.path.join(env.tmp, "manifest.tsv")
        r = run([os.path.join(BIN, "stint-session-events"), "produce", "--sessions", env.sessions,
                 "--profiles", env.profiles, "--topic", env.topics["sessions"], "--brokers",
                 env_brokers(), "--create", f"{env.topics['predictions']},{env.topics['outcomes']}",
                 "--grace-ms", str(GRACE_MS), "--scenario", "4", "--manifest", manifest,
                 "--copies", "7", "--repeat", "1"])
        assert r.returncode == 0, "producing the session events failed"
        counts = {k: int(v) for k, v in (kv.split("=") for kv in r.stdout.split())}
        roles = {}
        with open(manifest, encoding="utf-8") as f:
            for line in f:
                sid, role = line.rstrip("\n").split("\t")
                roles[sid] = role
        real = {s for s, ro in roles.items() if ro in ("session", "corrected", "retract_host",
                                                       "void_host")}
        spurious = {s for s, ro in roles.items() if ro in ("retracted", "voided")}
        corrected = {s for s, ro in roles.items() if ro == "corrected"}
        hosts = {s for s, ro in roles.items() if ro == "retract_host"}
        check(real == env.session_ids, f"manifest: {len(real)} real sessions == {n}")
        check(len(corrected) > 20 and len(hosts) > 20 and len(spurious) > 40,
              f"scenarios: {len(corrected)} corrected, {len(hosts)} retracting, "
              f"{len(spurious)} spurious sessions")
        events = counts["opened"] + counts["closed"] + counts["corrections"] + len(spurious)
        check(counts["copies"] > events, f"{counts['copies']} copies sent after {events} events")

        env.start_predictor(model)
        check(env.wait_outcomes(n), f"predictor published {n} outcomes")
        # Then every copy must have been seen (the whole stream comes again after the last CLOSED).
        deadline_ok = wait_metric(env, "stint_predictor_copies_total", counts["copies"])
        m = env.metrics()
        check(deadline_ok, f"all {counts['copies']} copies recognised as copies "
                           f"({m.get('stint_predictor_copies_total', -1):.0f})")
        want = n + len(corrected) + len(hosts) + 2 * len(spurious)
        preds = env.read("predictions", None)
        outs = env.read("outcomes", None)
        check(len(preds) == want, f"{len(preds)} Prediction records == {want} (no duplicates)")
        check(len(outs) == n, f"{len(outs)} Outcome records == {n} sessions")

        by_sid = collections.defaultdict(list)
        for _, _, rec in preds:
            by_sid[rec["session_id"]].append(rec)
        check(set(by_sid) == real | spurious, "predictions name exactly the announced sessions")
        bad = []
        diff_corr = 0
        for sid, recs in by_sid.items():
            revs = sorted((rec["revision"], rec["retracted"]) for rec in recs)
            role = roles.get(sid)
            expect = {"session": [(0, False)], "void_host": [(0, False)],
                      "corrected": [(0, False), (1, False)], "retract_host": [(0, False), (1, False)],
                      "retracted": [(0, False), (1, True)], "voided": [(0, False), (1, True)]}[role]
            if revs != expect:
                bad.append((sid, role, revs))
                continue
            r0 = next(rec for rec in recs if rec["revision"] == 0)
            r1 = next((rec for rec in recs if rec["revision"] == 1), None)
            if role == "corrected":
                diff_corr += r1["predicted_length_s"] != r0["predicted_length_s"]
            elif role in ("retract_host", "retracted", "voided") and \
                    r1["predicted_length_s"] != r0["predicted_length_s"]:
                bad.append((sid, role, "revision 1 differs", r0["predicted_length_s"],
                            r1["predicted_length_s"]))
        check(not bad, f"revisions per session as announced ({len(bad)} wrong; first: {bad[:2]})")
        check(diff_corr > len(corrected) * 0.9,
              f"corrected predictions differ from the wrong revision 0: {diff_corr} of {len(corrected)}")

        latest = {}
        for _, _, rec in preds:
            cur = latest.get(rec["session_id"])
            if cur is None or rec["revision"] > cur["revision"]:
                latest[rec["session_id"]] = rec
        kept = {sid: rec for sid, rec in latest.items() if not rec["retracted"]}
        check(set(kept) == real, f"upsert by session_id (highest revision, retracted deletes) "
                                 f"leaves the {n} real sessions: {len(kept)}")
        o_by = collections.Counter(rec["session_id"] for _, _, rec in outs)
        check(set(o_by) == real and max(o_by.values()) == 1, "one Outcome per real session")
        wrong_join = [rec["session_id"] for _, _, rec in outs
                      if rec["predicted_length_s"] != kept[rec["session_id"]]["predicted_length_s"]]
        check(not wrong_join, f"each Outcome carries its session's latest revision "
                              f"({len(wrong_join)} differ)")
        far = [(sid, rec["predicted_length_s"], offline[sid]) for sid, rec in kept.items()
               if abs(rec["predicted_length_s"] - offline[sid]) > 1e-3 * max(1.0, offline[sid])]
        check(not far, f"latest predictions equal the offline ones of the same bundle: {len(far)} "
                       f"of {n} differ by > 0.1 % (first: {far[:3]})")
        check(all(rec["predictor"] == "MODEL" for _, _, rec in preds), "every prediction by MODEL")

        check(m.get("stint_predictor_corrections_total") == len(corrected) + len(hosts),
              f"corrections counter {m.get('stint_predictor_corrections_total')} == "
              f"{len(corrected) + len(hosts)}")
        check(m.get("stint_predictor_retractions_total") == len(spurious),
              f"retractions counter {m.get('stint_predictor_retractions_total')} == {len(spurious)}")
        src_ev = m.get('stint_predictor_recent_source_total{source="event"}', 0)
        src_len = m.get('stint_predictor_recent_source_total{source="lengths"}', 0)
        check(src_ev > 0 and src_len == 0,
              f"recent sessions from the OPENED's details: event {src_ev:.0f}, lengths only {src_len:.0f}")
        nm = m.get('stint_predictor_mae_outcomes{predictor="MODEL",window="all"}')
        nb = m.get('stint_predictor_mae_outcomes{predictor="BASELINE",window="all"}')
        check(nm == n and nb == 0, f"MAE over the MODEL outcomes only: MODEL {nm}, BASELINE {nb}")
        gauge = m.get('stint_predictor_mae_seconds{predictor="MODEL",window="all",series="predicted"}', -1)
        topic_mae = sum(rec["abs_error_s"] for _, _, rec in outs) / max(len(outs), 1)
        check(abs(gauge - topic_mae) <= 1e-6 * max(gauge, 1),
              f"gauge MAE {gauge:.3f} == MAE of the outcomes {topic_mae:.3f}")
        rel = abs(gauge - offline_mae) / offline_mae
        check(rel <= 1e-4, f"online MAE {gauge:.3f} vs offline {offline_mae:.3f}: {100 * rel:.4f} %")

        left = []
        for u in by_user:
            # The state string (pred_store.h): "<lc> <markers>", then the open predictions.
            out = subprocess.run(["redis-cli", "-p", REDIS_PORT, "--raw", "GET",
                                  f"{env.tag}:u:{{{u}}}:pred:s"],
                                 capture_output=True, text=True).stdout
            left += [line for line in out.split("\n")[1:] if line.startswith("L ")]
        check(not left, f"no open prediction left in Redis once every session closed: {left[:2]}")
        print(f"figures: sessions={n} early_opened={early} corrected={len(corrected)} "
              f"retracting={len(hosts)} spurious={len(spurious)} copies={counts['copies']} "
              f"online_mae_s={gauge:.1f} offline_mae_s={offline_mae:.1f}")
        check(env.stop_predictor() == 0, "SIGTERM: exit 0")
    finally:
        env.cleanup()
    print(f"{len(FAILS)} failed")
    return 1 if FAILS else 0


def env_brokers():
    from predictor_env import BROKERS
    return BROKERS


def wait_metric(env, name, value, timeout_s=60):
    import time
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if env.metrics().get(name, -1) >= value:
            return env.metrics().get(name) == value
        time.sleep(0.3)
    return False


if __name__ == "__main__":
    sys.exit(main())
