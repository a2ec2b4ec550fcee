"""e2e: the predictor SIGKILLed twice mid-stream and restarted in the same consumer group. Every
session still gets its Prediction and Outcome; replayed copies are identical to the first one
(every field but made_at_ms); and each user's state in Redis ends where its sessions end: the
applied CLOSED start (lc) is its last session's, no open prediction is left, and no key of the
history earlier versions kept (pred:hist) is written."""
import collections
import os
import signal
import subprocess
import sys
import time

from predictor_env import FAILS, REDIS_PORT, Env, check


def main():
    env = Env("restart", users=40, days=50)
    try:
        model = os.path.join(env.tmp, "model")
        env.train(model, epochs=3, seed=1)
        n = len(env.session_ids)
        env.create_topics()
        env.start_predictor(model, "--batch.max", "300", "-X", "session.timeout.ms=6000")
        check(env.wait_assigned(), "predictor joined its group")
        producer = env.produce(rate=1200, background=True)
        for kill_at in (n // 4, n // 2):
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and \
                    env.metrics().get("stint_predictor_outcomes_total", 0) < kill_at / 2:
                time.sleep(0.05)
            env.proc.send_signal(signal.SIGKILL)
            env.proc.wait()
            env.start_predictor(model, "--batch.max", "300", "-X", "session.timeout.ms=6000")
        producer.wait(timeout=120)
        check(producer.returncode == 0, "paced producer finished")
        # The last instance saw only part of the stream: wait until the topics are complete.
        deadline = time.monotonic() + 90
        outs = []
        while time.monotonic() < deadline:
            outs = env.read("outcomes", None)
            if {rec["session_id"] for _, _, rec in outs} >= env.session_ids:
                break
            time.sleep(1)
        preds = env.read("predictions", None)
        p_first, p_bad = {}, 0
        for _, _, rec in preds:
            key = {k: v for k, v in rec.items() if k != "made_at_ms"}
            if p_first.setdefault(rec["session_id"], key) != key:
                p_bad += 1
        o_first, o_bad = {}, 0
        for _, _, rec in outs:
            if o_first.setdefault(rec["session_id"], rec) != rec:
                o_bad += 1
        check(set(p_first) == env.session_ids,
              f"every session predicted: {len(p_first)} of {n} ({len(preds)} records)")
        check(set(o_first) == env.session_ids,
              f"every session has an outcome: {len(o_first)} of {n} ({len(outs)} records)")
        check(p_bad == 0 and o_bad == 0,
              f"replayed copies identical: {p_bad} predictions and {o_bad} outcomes differ")
        replayed = env.metrics().get("stint_predictor_replayed_total", 0)
        print(f"figures: sessions={n} prediction_records={len(preds)} outcome_records={len(outs)} "
              f"skipped_as_applied_by_last_instance={replayed:.0f}")

        by_user = collections.defaultdict(list)
        with open(env.sessions, encoding="utf-8") as f:
            for line in f:
                u, start, length = line.split("\t")[:3]
                by_user[u].append(int(start))
        wrong, open_left, hist = [], [], []
        for u, starts in by_user.items():
            # The state string (pred_store.h): "<lc> <markers>\n", then the open predictions:
            # "<closed_last_ms>" and one line per entry, "L ..." an open prediction.
            text = subprocess.run(["redis-cli", "-p", REDIS_PORT, "--raw", "GET",
                                   f"{env.tag}:u:{{{u}}}:pred:s"],
                                  capture_output=True, text=True).stdout
            head, _, os_text = text.partition("\n")
            lc = head.split(" ")[0]
            if lc != str(max(starts) * 1000):
                wrong.append((u, lc, max(starts) * 1000))
            if any(line.startswith("L ") for line in os_text.split("\n")):
                open_left.append(u)
            r = subprocess.run(["redis-cli", "-p", REDIS_PORT, "EXISTS",
                                f"{env.tag}:u:{{{u}}}:pred:hist"], capture_output=True, text=True)
            if r.stdout.strip() != "0":
                hist.append(u)
        check(not wrong, f"Redis lc = each user's last CLOSED start ({len(wrong)} users differ; "
                         f"first: {wrong[:3]})")
        check(not open_left, f"no open prediction left once every session closed: {open_left[:5]}")
        check(not hist, f"no pred:hist key written: {hist[:5]}")
        check(env.stop_predictor() == 0, "SIGTERM: exit 0")
    finally:
        env.cleanup()
    print(f"{len(FAILS)} failed")
    return 1 if FAILS else 0


if __name__ == "__main__":
    sys.exit(main())
