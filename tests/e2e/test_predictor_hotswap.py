"""e2e: hot swap under load. The predictor's --model.dir is a symlink to bundle A (a sequence
model); while a paced SessionEvent stream flows, the symlink is atomically repointed to bundle B
(gradient-boosted trees, `stint train --preset gbt`: a swap across kinds needs nothing more). Every session
still gets exactly one Prediction and one Outcome, both versions appear in the records, each
partition switches from A to B once and never back, and outcomes carry their prediction's
version. After the swap, /metrics is still a valid exposition (tests/support/prom_exposition.py),
with stint_predictor_model_info one family: the old version at 0 and the new one at 1."""
import collections
import os
import sys
import time

from predictor_env import FAILS, Env, check

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from prom_exposition import families, problems  # noqa: E402


def main():
    env = Env("swap", users=60, days=60)
    try:
        a, b = os.path.join(env.tmp, "bundle-a"), os.path.join(env.tmp, "bundle-b")
        env.train(a, epochs=4, seed=1)
        env.train(b, 8, 2, "--preset", "gbt")
        link = os.path.join(env.tmp, "model")
        os.symlink(a, link)
        n = len(env.session_ids)
        rate = 1500
        env.create_topics()
        env.start_predictor(link, "--model.poll_ms", "200")
        check(env.wait_assigned(), "predictor joined its group")
        producer = env.produce(rate=rate, background=True)
        # Swap once about a third of the outcomes are out (the stream runs 2n / rate seconds).
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and \
                env.metrics().get("stint_predictor_outcomes_total", 0) < n / 3:
            time.sleep(0.05)
        tmp_link = link + ".new"
        os.symlink(b, tmp_link)
        os.replace(tmp_link, link)
        swapped_at = env.metrics().get("stint_predictor_outcomes_total", 0)
        print(f"swapped the bundle after {swapped_at:.0f} of {n} outcomes")
        producer.wait(timeout=120)
        check(producer.returncode == 0, "paced producer finished")
        check(env.wait_outcomes(n), f"predictor published {n} outcomes")
        m = env.metrics()
        check(m.get("stint_predictor_model_swaps_total") == 1,
              f"one swap counted: {m.get('stint_predictor_model_swaps_total')}")
        text = env.metrics_text()
        bad = problems(text)
        check(not bad, f"/metrics after the swap is a valid exposition: {bad[:5]}")
        info = families(text).get("stint_predictor_model_info")
        info = {s.labels["model_version"]: s.value for s in info.samples} if info else {}
        check(sorted(info.values()) == [0.0, 1.0],
              f"stint_predictor_model_info after the swap: old version 0, new 1 ({info})")

        preds = env.read("predictions", n)
        outs = env.read("outcomes", n)
        p_by = collections.Counter(rec["session_id"] for _, _, rec in preds)
        o_by = collections.Counter(rec["session_id"] for _, _, rec in outs)
        check(set(p_by) == env.session_ids and len(preds) == n,
              f"no lost or duplicated predictions: {len(p_by)} distinct of {n}, records {len(preds)}")
        check(set(o_by) == env.session_ids and len(outs) == n,
              f"no lost or duplicated outcomes: {len(o_by)} distinct of {n}, records {len(outs)}")
        order = []
        for _, _, rec in preds:
            if not order or order[-1] != rec["model_version"]:
                if rec["model_version"] not in order:
                    order.append(rec["model_version"])
        versions = collections.Counter(rec["model_version"] for _, _, rec in preds)
        check(len(versions) == 2 and "none" not in versions,
              f"both versions in the records: {dict(versions)}")
        # Per user (one partition each, in order): the old version, then only the new one.
        by_user = collections.defaultdict(list)
        for _, _, rec in sorted(preds, key=lambda t: t[2]["session_start_ms"]):
            by_user[rec["user_id"]].append(rec["model_version"])
        first = {}
        for _, _, rec in preds:
            first.setdefault(rec["model_version"], len(first))
        new = max(first, key=first.get) if first else None
        back = sum(1 for vs in by_user.values()
                   for i in range(1, len(vs)) if vs[i - 1] == new and vs[i] != new)
        check(back == 0, f"no user goes back to the old version after the new one ({back})")
        pv = {rec["session_id"]: rec["model_version"] for _, _, rec in preds}
        check(all(pv.get(rec["session_id"]) == rec["model_version"] for _, _, rec in outs),
              "outcomes carry the version of their prediction")
        check(all(rec["predictor"] == "MODEL" for _, _, rec in preds), "every prediction by MODEL")
        check(env.stop_predictor() == 0, "SIGTERM: exit 0")
    finally:
        env.cleanup()
    print(f"{len(FAILS)} failed")
    return 1 if FAILS else 0


if __name__ == "__main__":
    sys.exit(main())
