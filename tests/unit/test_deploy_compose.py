#!/usr/bin/env python3
"""docker-compose.yml against the real programs and the local stack: `docker-compose config`
accepts it (Debian's docker-compose; skipped only when the binary is missing), every STINT_*
variable a stint container gets is one its program reads (--dump-config of the real binary says
so), values differ from the programs' defaults only for the endpoints a container must change,
the topics are deploy/topics.conf's (the compose topic job mounts that file, as the local stack
reads it) and exactly those the services use, ports are published on 127.0.0.1 only, Kafka, Redis
and the registry on the local stack's ports (deploy/local/env.sh) unless moved by variables. The
images default to the upstream ones, and deploy/compose/podman.env (the podman path's local images)
changes nothing but image names. No Docker engine is needed."""
import json
import os
import re
import shutil
import subprocess
import sys

import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from deploy_check import (BIN, SERVICES, SRC, Checker, consumed, dump_config,  # noqa: E402
                          image_env, program_argv, topics_conf)

# Settings a container has to set differently from the programs' defaults (which suit the local
# stack): where Kafka, Redis, the registry, the data and the bundles are, and the HTTP endpoint.
CONTAINER_KEYS = {"kafka.brokers", "redis.host", "redis.port", "schema.registry.url", "http.bind",
                  "http.port", "schemas.dir", "model.dir", "data"}
c = Checker()


def interpolate(value):
    """Compose's ${VAR:-default} / ${VAR} / $$ with an empty host environment."""
    if not isinstance(value, str):
        return value
    value = re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*))?\}",
                   lambda m: m.group(2) or "", value)
    return value.replace("$$", "$")


def env_of(svc):
    env = svc.get("environment") or {}
    if isinstance(env, list):
        env = dict(e.split("=", 1) if "=" in e else (e, "") for e in env)
    return {k: str(interpolate(v)) for k, v in env.items()}


def local_default(name):
    with open(os.path.join(SRC, "deploy", "local", "env.sh"), encoding="utf-8") as f:
        m = re.search(r"^%s=\$\{%s:-([^}]*)\}" % (name, name), f.read(), re.M)
    return m.group(1) if m else None


def compose_config(exe, extra):
    """`docker-compose config` of the file, as YAML, with an empty environment for the
    variables (extra: more options, e.g. --env-file)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STINT_")}
    res = subprocess.run([exe, "-f", os.path.join(SRC, "docker-compose.yml")] + extra +
                         ["--profile", "tools", "config"], cwd=SRC, capture_output=True, text=True,
                         timeout=60, env=env)
    c.check(res.returncode == 0, "docker-compose %s config: %s" % (" ".join(extra), res.stderr.strip()))
    return yaml.safe_load(res.stdout) if res.returncode == 0 else {}


def check_podman_env(exe):
    """deploy/compose/podman.env selects local images and changes nothing else: the same services,
    commands, environment, ports, volumes and dependencies."""
    path = os.path.join(SRC, "deploy", "compose", "podman.env")
    names = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#"):
                k, _, v = line.partition("=")
                names[k] = v
    c.check(all(k.endswith("_IMAGE") for k in names), "podman.env sets image names only", sorted(names))
    upstream = compose_config(exe, [])
    local = compose_config(exe, ["--env-file", path])
    images = {}
    for cfg in (upstream, local):
        for svc in cfg.get("services", {}).values():
            images.setdefault(id(cfg), set()).add(svc.pop("image", None))
    c.check(upstream == local, "with podman.env only the image names differ")
    stand_ins = {names.get(k) for k in ("STINT_KAFKA_IMAGE", "STINT_REDIS_IMAGE",
                                        "STINT_REGISTRY_IMAGE", "STINT_PROMETHEUS_IMAGE")}
    c.check(None not in stand_ins, "podman.env has a local Kafka, Redis, registry and Prometheus")
    c.check(not images[id(upstream)] & stand_ins, "upstream images by default",
            sorted(images[id(upstream)]))
    c.check(stand_ins <= images[id(local)], "podman.env's images are used",
            sorted(images[id(local)]))


def check_docker_compose_config():
    exe = shutil.which("docker-compose")
    if not exe:
        print("SKIP docker-compose config: the docker-compose binary is missing "
              "(deploy/local/bootstrap installs Debian's docker-compose)")
        return
    check_podman_env(exe)
    for args in (["config", "-q"], ["--profile", "tools", "config", "-q"]):
        res = subprocess.run([exe, "-f", os.path.join(SRC, "docker-compose.yml")] + args,
                             cwd=SRC, capture_output=True, text=True, timeout=60)
        c.check(res.returncode == 0, "docker-compose %s: %s" % (" ".join(args), res.stderr.strip()))
    res = subprocess.run([exe, "-f", os.path.join(SRC, "docker-compose.yml"), "--profile", "tools",
                          "--profile", "monitoring", "config", "--services"], cwd=SRC,
                         capture_output=True, text=True, timeout=60)
    names = set(res.stdout.split())
    want = set(SERVICES) | {"kafka", "redis", "schema-registry", "topics", "gen", "catalog",
                            "replay", "train", "prometheus", "grafana"}
    c.check(names == want, "docker-compose config --services", sorted(names), sorted(want))


def check_monitoring(services):
    """deploy/monitoring: Prometheus scrapes every service at the port its container listens on,
    one job each; Grafana is provisioned with that Prometheus and the dashboard, whose JSON
    parses and whose panels all query the provisioned datasource (the metric names in its
    queries are checked against live services by tests/e2e/test_metrics_exposition.py)."""
    mon = os.path.join(SRC, "deploy", "monitoring")
    with open(os.path.join(mon, "prometheus.yml"), encoding="utf-8") as f:
        prom = yaml.safe_load(f)
    jobs = {j["job_name"]: j["static_configs"][0]["targets"] for j in prom["scrape_configs"]}
    want = {f"stint-{n}": [f"{n}:{services[n]['environment']['STINT_HTTP_PORT']}"]
            for n in SERVICES}
    c.check(jobs == want, "prometheus.yml: one job per service, at its container port", jobs, want)
    with open(os.path.join(mon, "grafana", "provisioning", "datasources", "prometheus.yml"),
              encoding="utf-8") as f:
        ds = yaml.safe_load(f)["datasources"][0]
    c.check(ds["url"] == "http://prometheus:9090" and ds["uid"] == "stint-prometheus",
            "grafana datasource: the compose Prometheus", ds)
    with open(os.path.join(mon, "grafana", "dashboards", "stint.json"), encoding="utf-8") as f:
        dash = json.load(f)
    uids = {t["datasource"]["uid"] for p in dash["panels"] for t in p["targets"]}
    c.check(dash["panels"] and uids == {"stint-prometheus"},
            "dashboard: panels, all on the provisioned datasource", uids)
    for name in ("prometheus", "grafana"):
        c.check(services[name].get("profiles") == ["monitoring"],
                f"{name} only in the monitoring profile", services[name].get("profiles"))
        c.check(all(p.startswith("127.0.0.1:") for p in services[name].get("ports", [])),
                f"{name} published on 127.0.0.1 only", services[name].get("ports"))


def main():
    with open(os.path.join(SRC, "docker-compose.yml"), encoding="utf-8") as f:
        compose = yaml.safe_load(f)
    services = compose["services"]
    check_docker_compose_config()
    check_monitoring(services)

    # Images and build: one Dockerfile for every stint container.
    stint_containers = {n: s for n, s in services.items() if program_argv(s.get("command"))}
    c.check(set(SERVICES) <= set(stint_containers), "the five services run stint programs",
            sorted(stint_containers), SERVICES)
    for name, svc in stint_containers.items():
        build = svc.get("build") or {}
        c.check(build.get("dockerfile") == "deploy/docker/Dockerfile" and build.get("context") == ".",
                "%s: built from deploy/docker/Dockerfile" % name, build)
        c.check(os.path.isfile(os.path.join(SRC, "deploy", "docker", "Dockerfile")), "Dockerfile exists")
    kafka_image = services["kafka"]["image"]
    c.check(re.fullmatch(r"apache/kafka:4\.1\.\d+", interpolate(kafka_image)) is not None, "kafka image",
            kafka_image)
    registry_image = interpolate(services["schema-registry"]["image"])
    c.check(registry_image == "apicurio/apicurio-registry-mem:2.4.2.Final", "registry image",
            registry_image)
    c.check(services["topics"]["image"] == kafka_image, "topic job uses the Kafka image",
            services["topics"]["image"], kafka_image)

    # Every STINT_* variable of a stint container is read by its program; values stay at the
    # program's defaults except for the container endpoints.
    topics_used = set()
    for name, svc in sorted(stint_containers.items()):
        argv = program_argv(svc["command"])
        env = env_of(svc)
        if not any(v.startswith("STINT_") for v in env):
            continue  # e.g. `stint gen`, which takes flags only
        try:
            defaults = dump_config(argv)
            dump = dump_config(argv, dict(image_env(), **env))
        except RuntimeError as e:
            c.check(False, "%s: %s" % (name, e))
            continue
        for var, value in sorted(env.items()):
            if not var.startswith("STINT_"):
                continue
            if not c.check(consumed(dump, var), "%s: %s is not a setting of %s" % (name, var, " ".join(
                    os.path.basename(a) for a in argv))):
                continue
            key = next(k for k, (_, src) in dump.items() if src == "env " + var)
            if key not in CONTAINER_KEYS and key in defaults:
                c.check(dump[key][0] == defaults[key][0],
                        "%s: %s changes %s from the default the local stack uses" % (name, var, key),
                        dump[key][0], defaults[key][0])
        if os.path.basename(argv[0]).startswith("stint-"):
            for var in image_env():
                c.check(not var.startswith("STINT_") or consumed(dump, var),
                        "%s: the image's %s is a setting of its program" % (name, var))
            c.check(env.get("STINT_KAFKA_BROKERS") == "kafka:9092", "%s: brokers" % name,
                    env.get("STINT_KAFKA_BROKERS"), "kafka:9092")
            c.check(env.get("STINT_REDIS_HOST") == "redis" and env.get("STINT_REDIS_PORT") == "6379",
                    "%s: redis:6379" % name, (env.get("STINT_REDIS_HOST"), env.get("STINT_REDIS_PORT")))
            c.check(env.get("STINT_SCHEMA_REGISTRY_URL") == "http://schema-registry:8081/apis/ccompat/v7",
                    "%s: schema registry (its ccompat API)" % name, env.get("STINT_SCHEMA_REGISTRY_URL"))
            port = env.get("STINT_HTTP_PORT")
            c.check([interpolate(p) for p in svc.get("ports", [])] == ["127.0.0.1:%s:%s" % (port, port)],
                    "%s: its fixed http.port published on 127.0.0.1" % name, svc.get("ports"), port)
        for key, (value, _) in dump.items():
            if (key.endswith("topic") or key.endswith(".topic")) and value:
                topics_used.add(value)

    # Topics: the services' topics are exactly deploy/topics.conf's, which the topic job mounts
    # and the local stack reads; compacted topics stay compacted (create-topics reads the conf).
    conf = topics_conf()
    names = {n for n, _ in conf}
    c.check(topics_used == names, "topics the services use == deploy/topics.conf",
            sorted(topics_used), sorted(names))
    job = services["topics"]
    mounts = [v.split(":") for v in job.get("volumes", [])]
    c.check(any(m[0] == "./deploy/topics.conf" for m in mounts), "topic job mounts deploy/topics.conf",
            job.get("volumes"))
    c.check(any(m[0] == "./deploy/docker/create-topics" for m in mounts),
            "topic job mounts deploy/docker/create-topics", job.get("volumes"))
    cmd = [str(interpolate(a)) for a in job["command"]]
    c.check(cmd[-1] in {m[1] for m in mounts} and "kafka:9092" in cmd, "topic job command", cmd)
    c.check(cmd[-3] == local_default("STINT_PARTITIONS"), "partitions as the local stack's",
            cmd[-3], local_default("STINT_PARTITIONS"))
    with open(os.path.join(SRC, "deploy", "local", "stack"), encoding="utf-8") as f:
        c.check("topics.conf" in f.read(), "the local stack reads deploy/topics.conf")
    for name, compact in conf:
        c.check(not compact or name.startswith("users."), "compacted topic %s" % name)
    for svc_name in SERVICES:
        # kafka: docker-compose stops a service before what it depends on, and a service must
        # commit before Kafka stops.
        for dep in ("topics", "redis", "kafka", "schema-registry"):
            c.check(dep in (services[svc_name].get("depends_on") or {}),
                    "%s waits for %s" % (svc_name, dep))

    # Ports: 127.0.0.1 only; Kafka and Redis on the local stack's host ports.
    for name, svc in services.items():
        for p in svc.get("ports", []):
            c.check(str(p).startswith("127.0.0.1:"), "%s publishes %s on 127.0.0.1 only" % (name, p))
    kport = local_default("STINT_KAFKA_PORT")
    rport = local_default("STINT_REDIS_PORT")
    gport = local_default("STINT_REGISTRY_PORT")
    # Published ports move with the local stack's variables (the compose test uses its own).
    c.check(services["kafka"]["ports"] == ["127.0.0.1:${STINT_KAFKA_PORT:-%s}:19092" % kport],
            "kafka port", services["kafka"]["ports"], kport)
    c.check("HOST://127.0.0.1:${STINT_KAFKA_PORT:-%s}" % kport in
            services["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"],
            "kafka advertises the host listener on the published port")
    c.check(services["redis"]["ports"] == ["127.0.0.1:${STINT_REDIS_PORT:-%s}:6379" % rport],
            "redis port", services["redis"]["ports"], rport)
    c.check(services["schema-registry"]["ports"] == ["127.0.0.1:${STINT_REGISTRY_PORT:-%s}:8081" % gport],
            "registry port", services["schema-registry"]["ports"], gport)
    reg_env = env_of(services["schema-registry"])
    c.check(reg_env.get("QUARKUS_HTTP_PORT") == "8081" and
            reg_env.get("REGISTRY_RULES_GLOBAL_COMPATIBILITY") == "BACKWARD" and
            reg_env.get("REGISTRY_DATASOURCE_URL", "").startswith("jdbc:h2:file:/var/lib/registry/"),
            "registry: port 8081, BACKWARD, H2 file under /var/lib/registry", reg_env)
    c.check("registry-data:/var/lib/registry" in services["schema-registry"].get("volumes", []),
            "registry keeps its H2 file on the registry-data volume")
    defaults = dump_config([os.path.join(BIN, "stint-ingest")])
    c.check(defaults["kafka.brokers"][0] == "127.0.0.1:%s" % kport, "the programs' default brokers",
            defaults["kafka.brokers"][0], kport)
    c.check(defaults["redis.port"][0] == rport, "the programs' default redis.port",
            defaults["redis.port"][0], rport)

    # Redis with AOF, everysec, as the local stack's.
    cmd = services["redis"]["command"]
    c.check("--appendonly" in cmd and cmd[cmd.index("--appendonly") + 1] == "yes", "redis AOF", cmd)
    c.check("--appendfsync" in cmd and cmd[cmd.index("--appendfsync") + 1] == "always",
            "redis appendfsync always", cmd)

    # One-shot jobs in the tools profile; bundles shared between train and the model readers.
    for name in ("gen", "catalog", "replay", "train"):
        c.check(services[name].get("profiles") == ["tools"], "%s in the tools profile" % name)
    model_dirs = {}
    for name in ("clusterer", "predictor"):
        env = env_of(services[name])
        vols = [v.split(":") for v in services[name].get("volumes", [])]
        c.check(any(v[0] == "models" and env.get("STINT_MODEL_DIR", "").startswith(v[1] + "/")
                    for v in vols), "%s reads the models volume" % name, vols)
        model_dirs[name] = env.get("STINT_MODEL_DIR")
    train = services["train"]
    c.check(train["command"][1] + "/current" == model_dirs["predictor"],
            "train writes the bundle the predictor reads", train["command"][1], model_dirs["predictor"])
    c.check(any(v == "models:" + train["command"][1] for v in train.get("volumes", [])),
            "train mounts the models volume read-write", train.get("volumes"))
    c.check(set(compose.get("volumes", {})) >= {"models", "data", "kafka-data", "redis-data",
                                                 "registry-data"},
            "named volumes", sorted(compose.get("volumes", {})))
    c.finish()


main()
