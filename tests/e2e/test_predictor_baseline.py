"""e2e: the predictor without a bundle answers with the baseline and says so: every Prediction
has predictor BASELINE, model_version "none", predicted = baseline = the mean length of the
user's earlier sessions (--baseline.default_s for a first session); outcomes and the MAE gauges
agree. An undecodable record goes to the dead-letter topic and processing continues."""
import collections
import os
import sys

from predictor_env import BROKERS, FAILS, Env, check


def main():
    env = Env("base", users=15, days=30)
    try:
        n = len(env.session_ids)
        env.produce()
        from confluent_kafka import Producer
        from confluent_kafka.admin import AdminClient, NewTopic
        admin = AdminClient({"bootstrap.servers": BROKERS})
        for f in admin.create_topics([NewTopic(env.topics["dlq"], 1, 1)]).values():
            f.result(30)
        prod = Producer({"bootstrap.servers": BROKERS})
        prod.produce(env.topics["sessions"], key=b"user_000001", value=b"not avro at all")
        prod.flush(30)
        env.start_predictor(os.path.join(env.tmp, "no-bundle-here"), "--baseline.default_s", "777")
        check(env.wait_outcomes(n), f"predictor published {n} outcomes")
        preds = env.read("predictions", n)
        earlier = collections.defaultdict(list)
        expect = {}
        with open(env.sessions, encoding="utf-8") as f:
            rows = sorted((line.split("\t")[0], int(line.split("\t")[1]), float(line.split("\t")[2]))
                          for line in f)
        for user, start, length in rows:
            prev = earlier[user]
            expect[f"{user}:{start * 1000}"] = sum(prev) / len(prev) if prev else 777.0
            prev.append(length)
        wrong = [rec for _, _, rec in preds
                 if rec["predictor"] != "BASELINE" or rec["model_version"] != "none" or
                 rec["predicted_length_s"] != rec["baseline_length_s"] or
                 abs(rec["baseline_length_s"] - expect[rec["session_id"]]) > 1e-6 * max(1.0, expect[rec["session_id"]])]
        check(len(preds) == n and not wrong,
              f"{len(preds)} of {n} predictions are the labelled baseline ({len(wrong)} wrong; "
              f"first: {wrong[:1]})")
        m = env.metrics()
        a = m.get('stint_predictor_mae_seconds{predictor="BASELINE",window="all",series="predicted"}')
        b = m.get('stint_predictor_mae_seconds{predictor="BASELINE",window="all",series="baseline"}')
        check(a is not None and a == b, f"MAE gauges: predicted {a} == baseline {b}")
        nb = m.get('stint_predictor_mae_outcomes{predictor="BASELINE",window="all"}')
        nm = m.get('stint_predictor_mae_outcomes{predictor="MODEL",window="all"}')
        check(nb == n and nm == 0,
              f"outcomes counted under predictor BASELINE only: BASELINE {nb}, MODEL {nm} of {n}")
        check(m.get('stint_predictor_predictions_total{predictor="BASELINE"}') == n,
              "BASELINE counter")
        dead = env.read("dlq", 1)
        check(len(dead) == 1 and dead[0][2]["error_code"] == "invalid" and
              dead[0][2]["original_value"] == b"not avro at all",
              f"the bad record is in the DLQ: {[d[2]['error'] for d in dead]}")
        check(env.stop_predictor() == 0, "SIGTERM: exit 0")
    finally:
        env.cleanup()
    print(f"{len(FAILS)} failed")
    return 1 if FAILS else 0


if __name__ == "__main__":
    sys.exit(main())
