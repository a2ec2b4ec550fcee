"""e2e: generated dataset -> SessionEvents -> stint-predictor with a trained bundle. The stream
also carries byte-identical copies of events at new offsets, as the sessionizer re-emits them after
a crash. Every CLOSED session that had an OPENED gets exactly one Prediction and one Outcome (by
session_id), read and
decoded by a Python consumer (confluent-kafka, schema from schemas/ or the registry); the online
MAE (the predictor's /metrics gauge, and recomputed from the outcomes) equals the offline MAE of
the same bundle on the same sessions (within 1e-6: serving computes the features training used);
SIGTERM exits 0."""
import collections
import json
import os
import sys

from predictor_env import BIN, FAILS, Env, check, run


def main(name="pred", kind="seq", *train_args, members=1):
    """The checks above for the bundle of kind (and members) `stint train ... train_args` writes
    (test_predictions_gbt runs them on a GBT bundle, test_predictions_members on one of three
    networks); name keeps the topics apart."""
    env = Env(name, users=30, days=40)
    try:
        model = os.path.join(env.tmp, "model")
        env.train(model, 10, 1, *train_args)
        with open(os.path.join(model, "metadata.json"), encoding="utf-8") as f:
            spec = json.load(f)["spec"]
        check(spec["kind"] == kind and spec["members"] == members,
              f"a {kind} bundle of {members} member(s) ({spec['kind']}, {spec['members']})")
        r = run([os.path.join(BIN, "stint-session-events"), "offline", "--sessions", env.sessions,
                 "--profiles", env.profiles, "--model", model])
        assert r.returncode == 0
        off = dict(kv.split("=") for kv in r.stdout.split())
        offline_mae, rows = float(off["offline_mae_s"]), int(off["rows"])
        n = len(env.session_ids)
        check(rows == n, f"offline rows {rows} == sessions {n}")

        counts = env.produce(copies=7)
        check(int(counts["opened"]) == n and int(counts["closed"]) == n,
              f"stream has {counts['opened']} OPENED and {counts['closed']} CLOSED for {n} sessions")
        env.start_predictor(model)
        check(env.wait_outcomes(n), f"predictor published {n} outcomes")
        m = env.metrics()
        copies = int(counts["copies"])
        check(copies > 0 and m.get("stint_predictor_copies_total", -1) == copies,
              f"{copies} re-emitted copies in the stream, all recognised "
              f"({m.get('stint_predictor_copies_total', -1):.0f})")

        preds = env.read("predictions", n)
        outs = env.read("outcomes", n)
        p_by = collections.Counter(rec["session_id"] for _, _, rec in preds)
        o_by = collections.Counter(rec["session_id"] for _, _, rec in outs)
        check(set(p_by) == env.session_ids and max(p_by.values()) == 1,
              f"one Prediction per session: {len(p_by)} distinct of {n}, "
              f"max copies {max(p_by.values()) if p_by else 0}, records {len(preds)}")
        check(set(o_by) == env.session_ids and max(o_by.values()) == 1,
              f"one Outcome per session: {len(o_by)} distinct of {n}, "
              f"max copies {max(o_by.values()) if o_by else 0}, records {len(outs)}")
        check(all(k == rec["user_id"] for k, _, rec in preds), "predictions keyed by user_id")
        check(all(rec["predictor"] == "MODEL" for _, _, rec in preds), "every prediction by MODEL")
        versions = {rec["model_version"] for _, _, rec in preds}
        check(len(versions) == 1 and "none" not in versions, f"one model version: {versions}")
        p_val = {rec["session_id"]: rec["predicted_length_s"] for _, _, rec in preds}
        check(all(abs(p_val[rec["session_id"]] - rec["predicted_length_s"]) < 1e-9
                  for _, _, rec in outs if rec["session_id"] in p_val),
              "each outcome carries its prediction")
        check(all(abs(abs(rec["predicted_length_s"] - rec["actual_length_s"]) - rec["abs_error_s"]) < 1e-6
                  for _, _, rec in outs), "abs_error_s = |predicted - actual|")

        online_gauge = m.get('stint_predictor_mae_seconds{predictor="MODEL",window="all",series="predicted"}', -1)
        online_topic = sum(rec["abs_error_s"] for _, _, rec in outs) / max(len(outs), 1)
        rel = abs(online_gauge - offline_mae) / offline_mae
        # Serving computes exactly the features training used (the median over the same last
        # sessions included; each prediction is checked above), so the two agree but for the
        # rounding of the actual lengths (CLOSED carries them in ms): within 1e-6. A feature
        # computed differently (the median over all earlier sessions did) shows as 0.1 %.
        check(rel <= 1e-6, f"online MAE {online_gauge:.6f} s (gauge) vs offline {offline_mae:.6f} s: "
                           f"relative difference {rel:.2e} <= 1e-6")
        check(abs(online_topic - online_gauge) <= 1e-6 * online_gauge,
              f"gauge MAE {online_gauge:.3f} == MAE of the outcomes topic {online_topic:.3f}")
        base = m.get('stint_predictor_mae_seconds{predictor="MODEL",window="all",series="baseline"}', -1)
        print(f"figures: sessions={n} online_mae_s={online_gauge:.1f} offline_mae_s={offline_mae:.1f} "
              f"baseline_mae_s={base:.1f}")
        check(env.stop_predictor() == 0, "SIGTERM: exit 0")
    finally:
        env.cleanup()
    print(f"{len(FAILS)} failed")
    return 1 if FAILS else 0


if __name__ == "__main__":
    sys.exit(main())
