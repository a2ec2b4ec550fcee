"""e2e: with a schema registry (the Confluent-compatible stand-in of tests/fixtures/registry,
ids from 101, so the static ids of schemas/ids.conf cannot be mistaken for them) the session
events, the predictor and the Python consumer all go through the registry: every Prediction
carries a registry id, and the consumer decodes all of them with the schema fetched by id."""
import os
import subprocess
import sys

from predictor_env import FAILS, SRC, Env, check


def main():
    reg = subprocess.Popen([sys.executable, os.path.join(SRC, "tests", "fixtures", "registry",
                                                         "fake_registry.py"), "0", "101"],
                           stdout=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{int(reg.stdout.readline())}"
    env = Env("preg", users=10, days=20)
    try:
        model = os.path.join(env.tmp, "model")
        env.train(model, epochs=2, seed=1)
        n = len(env.session_ids)
        env.produce(registry=url)
        env.start_predictor(model, "--schema.registry.url", url)
        check(env.wait_outcomes(n), f"predictor published {n} outcomes")
        preds = env.read("predictions", n, registry=url)
        ids = {sid for _, sid, _ in preds}
        check(len(preds) == n and {rec["session_id"] for _, _, rec in preds} == env.session_ids,
              f"{len(preds)} predictions decoded for {n} sessions")
        check(ids and min(ids) >= 101, f"schema ids from the registry: {sorted(ids)}")
        check(all(rec["predictor"] == "MODEL" for _, _, rec in preds), "every prediction by MODEL")
        check(env.stop_predictor() == 0, "SIGTERM: exit 0")
    finally:
        env.cleanup()
        reg.terminate()
        reg.wait(10)
    print(f"{len(FAILS)} failed")
    return 1 if FAILS else 0


if __name__ == "__main__":
    sys.exit(main())
