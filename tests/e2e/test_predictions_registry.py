"""e2e: with the local stack's schema registry (Apicurio; a new one has ids 1..100 taken by
placeholders, so the static ids of schemas/ids.conf cannot be mistaken for registry ids) the
session events, the predictor and the Python consumer all go through the registry: every
Prediction carries the registry's id for its subject, and the consumer decodes all of them with
the schema fetched by id."""
import json
import os
import sys
import urllib.request

from predictor_env import FAILS, SRC, Env, check

sys.path.insert(0, os.path.join(SRC, "tools", "python"))
import stint_consumer  # noqa: E402


def static_ids():
    with open(os.path.join(SRC, "schemas", "ids.conf"), encoding="utf-8") as f:
        return {int(line.split()[0]) for line in f if line.strip() and not line.startswith("#")}


def main():
    url = stint_consumer.registry_url_from_env()
    check(url is not None, "a schema registry is configured (STINT_SCHEMA_REGISTRY_URL not empty)")
    if url is None:
        return 1
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
        with urllib.request.urlopen(
                f"{url}/subjects/{env.topics['predictions']}-value/versions/latest", timeout=10) as r:
            subject_id = json.load(r)["id"]
        check(ids == {subject_id}, f"schema ids {sorted(ids)} = the registry's id {subject_id}")
        check(not ids & static_ids(), "no registry id is a static id of schemas/ids.conf")
        check(all(rec["predictor"] == "MODEL" for _, _, rec in preds), "every prediction by MODEL")
        check(env.stop_predictor() == 0, "SIGTERM: exit 0")
    finally:
        env.cleanup()
    print(f"{len(FAILS)} failed")
    return 1 if FAILS else 0


if __name__ == "__main__":
    sys.exit(main())
