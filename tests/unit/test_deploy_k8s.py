#!/usr/bin/env python3
"""deploy/k8s against the Kubernetes JSON schemas and against stint itself: every manifest (and
secrets.example.yaml) validates strictly with kubernetes-validate (installed by
deploy/local/bootstrap, schemas shipped in the package, no network), kustomization.yaml lists
every manifest, each service is a Deployment with /healthz and /readyz probes on its http.port,
resource requests and limits and a non-root user, every STINT_* variable a container gets is
read by its program (the real binary's --dump-config), every ConfigMap, Secret, key and volume
claim referred to exists, the training CronJob writes the bundle the predictor and the clusterer
read, and topics.yaml is what deploy/k8s/gen-topics-configmap makes of deploy/topics.conf."""
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile

import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from deploy_check import (SERVICES, SRC, Checker, consumed, dump_config,  # noqa: E402
                          image_env, program_argv)

K8S = os.path.join(SRC, "deploy", "k8s")
KUBE_VERSIONS = ["1.29.0", "1.34.0"]
# Copies of the mounted Secrets' files (the example values), for --dump-config.
SECRET_COPIES = tempfile.mkdtemp(prefix="stint-k8s-secrets-")
c = Checker()


def load_all(path):
    with open(path, encoding="utf-8") as f:
        return [d for d in yaml.safe_load_all(f) if d]


def validator():
    res = subprocess.run(["bash", "-c", '. "$1"; echo "$K8S_VALIDATE_VENV"', "-",
                          os.path.join(SRC, "deploy", "local", "env.sh")],
                         capture_output=True, text=True)
    exe = os.path.join(res.stdout.strip(), "bin", "kubernetes-validate")
    return exe if os.access(exe, os.X_OK) else None


def check_schemas(files):
    exe = validator()
    if not c.check(exe is not None, "kubernetes-validate is installed (run deploy/local/bootstrap)"):
        return
    for version in KUBE_VERSIONS:
        res = subprocess.run([exe, "--strict", "--quiet", "-k", version] + files,
                             capture_output=True, text=True, timeout=120)
        c.check(res.returncode == 0 and "ERROR" not in res.stdout + res.stderr,
                "Kubernetes %s schemas: %s" % (version, (res.stdout + res.stderr).strip()))


def pod_spec(obj):
    kind = obj["kind"]
    if kind == "Deployment" or kind == "Job":
        return obj["spec"]["template"]["spec"]
    if kind == "CronJob":
        return obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return None


def main():
    kust = load_all(os.path.join(K8S, "kustomization.yaml"))[0]
    resources = kust["resources"]
    present = sorted(os.path.basename(p) for p in glob.glob(os.path.join(K8S, "*.yaml"))
                     if os.path.basename(p) not in ("kustomization.yaml", "secrets.example.yaml"))
    c.check(sorted(resources) == present, "kustomization.yaml lists every manifest",
            sorted(resources), present)
    files = [os.path.join(K8S, r) for r in resources] + [os.path.join(K8S, "secrets.example.yaml")]
    check_schemas(files)

    objs = [o for r in resources for o in load_all(os.path.join(K8S, r))]
    secrets = {o["metadata"]["name"]: o.get("stringData", {})
               for o in load_all(os.path.join(K8S, "secrets.example.yaml"))}
    configmaps = {o["metadata"]["name"]: o.get("data", {}) for o in objs if o["kind"] == "ConfigMap"}
    pvcs = {o["metadata"]["name"] for o in objs if o["kind"] == "PersistentVolumeClaim"}
    for o in objs:
        if o["kind"] != "Namespace":
            c.check(o["metadata"].get("namespace") == kust["namespace"],
                    "%s/%s in namespace %s" % (o["kind"], o["metadata"]["name"], kust["namespace"]))

    # topics.yaml is generated from deploy/topics.conf and deploy/docker/create-topics.
    gen = subprocess.run([sys.executable, os.path.join(K8S, "gen-topics-configmap")],
                         capture_output=True, text=True)
    with open(os.path.join(K8S, "topics.yaml"), encoding="utf-8") as f:
        c.check(gen.returncode == 0 and gen.stdout == f.read(),
                "deploy/k8s/topics.yaml is up to date (deploy/k8s/gen-topics-configmap > "
                "deploy/k8s/topics.yaml)")

    deployments = {o["metadata"]["name"]: o for o in objs if o["kind"] == "Deployment"}
    c.check(sorted(deployments) == sorted("stint-" + s for s in SERVICES), "one Deployment per service",
            sorted(deployments))
    config_use = {}  # (kind, name, key) -> read by some container
    model_dirs = {}
    for o in objs:
        spec = pod_spec(o)
        if spec is None:
            continue
        name = o["metadata"]["name"]
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        for v in volumes.values():
            if "configMap" in v:
                c.check(v["configMap"]["name"] in configmaps, "%s: volume ConfigMap %s" % (name, v["configMap"]["name"]))
            if "secret" in v:
                c.check(v["secret"]["secretName"] in secrets, "%s: volume Secret %s" % (name, v["secret"]["secretName"]))
            if "persistentVolumeClaim" in v:
                c.check(v["persistentVolumeClaim"]["claimName"] in pvcs, "%s: claim %s" % (name, v["persistentVolumeClaim"]["claimName"]))
        c.check((spec.get("securityContext") or {}).get("runAsNonRoot") is True, "%s runs as non-root" % name)
        for ctr in spec["containers"]:
            where = "%s/%s" % (name, ctr["name"])
            for m in ctr.get("volumeMounts", []):
                c.check(m["name"] in volumes, "%s: mount of volume %s" % (where, m["name"]))
            res = ctr.get("resources") or {}
            for part in ("requests", "limits"):
                c.check(set((res.get(part) or {})) >= {"cpu", "memory"}, "%s: %s cpu and memory" % (where, part), res)
            # The container's environment, as Kubernetes would give it.
            env, sources = {}, {}
            if ctr["image"] == "stint":
                env = dict(image_env())
                sources = {k: ("Dockerfile", "runtime", k) for k in env}
            for ef in ctr.get("envFrom", []):
                if "configMapRef" in ef:
                    ref, kind, table = ef["configMapRef"], "ConfigMap", configmaps
                else:
                    ref, kind, table = ef["secretRef"], "Secret", secrets
                c.check(ref["name"] in table or ref.get("optional"), "%s: %s %s" % (where, kind, ref["name"]))
                for k, v in table.get(ref["name"], {}).items():
                    env[k] = str(v)
                    sources[k] = (kind, ref["name"], k)
            explicit = set()
            for e in ctr.get("env", []):
                explicit.add(e["name"])
                sources.pop(e["name"], None)
                if "value" in e:
                    env[e["name"]] = str(e["value"])
                    continue
                vf = e["valueFrom"]
                ref = vf.get("secretKeyRef") or vf.get("configMapKeyRef")
                table = secrets if "secretKeyRef" in vf else configmaps
                c.check(ref["key"] in table.get(ref["name"], {}),
                        "%s: %s refers to %s/%s" % (where, e["name"], ref["name"], ref["key"]))
                env[e["name"]] = str(table.get(ref["name"], {}).get(ref["key"], "x"))
            for arg in ctr.get("command", []) + ctr.get("args", []):
                for var in re.findall(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", arg):
                    c.check(var in env, "%s: $(%s) is defined" % (where, var))
                    if var in sources:
                        config_use[sources[var]] = True
            # A *_FILE secret is a file of a Secret mounted read-only into the container: the
            # key must exist, and --dump-config below reads a copy of its placeholder value.
            secret_mounts = {m["mountPath"]: (volumes[m["name"]]["secret"]["secretName"], m)
                             for m in ctr.get("volumeMounts", [])
                             if "secret" in volumes.get(m["name"], {})}
            for var, val in list(env.items()):
                if not (var.startswith("STINT_") and var.endswith("_FILE")):
                    continue
                mp = next((p for p in secret_mounts if val.startswith(p.rstrip("/") + "/")), None)
                if mp is None:
                    c.check(False, "%s: %s=%s is not a file of a mounted Secret" % (where, var, val))
                    continue
                sname, mount = secret_mounts[mp]
                key = val[len(mp.rstrip("/")) + 1:]
                c.check(mount.get("readOnly") is True, "%s: Secret %s mounted read-only" % (where, sname))
                c.check(key in secrets.get(sname, {}), "%s: %s refers to %s/%s" % (where, var, sname, key))
                copy = os.path.join(SECRET_COPIES, name, sname, key)
                os.makedirs(os.path.dirname(copy), exist_ok=True)
                with open(copy, "w", encoding="utf-8") as f:
                    f.write(str(secrets.get(sname, {}).get(key, "x")) + "\n")
                env[var] = copy
            argv = program_argv(ctr.get("command"))
            if argv is None:
                continue
            c.check(ctr["image"] == "stint", "%s: the stint image" % where, ctr["image"])
            try:
                dump = dump_config(argv, env)
            except RuntimeError as e:
                c.check(False, "%s: %s" % (where, e))
                continue
            for var in env:
                if not var.startswith("STINT_"):
                    continue
                ok = consumed(dump, var)
                if var in explicit:
                    c.check(ok, "%s: %s is not a setting of %s" % (where, var, " ".join(
                        os.path.basename(a) for a in argv)))
                elif sources[var][0] == "Dockerfile":
                    continue  # test_deploy_compose.py checks the image's settings
                elif ok:
                    config_use[sources[var]] = True
                else:
                    config_use.setdefault(sources[var], False)
            if "model.dir" in dump:
                model_dirs[name] = (dump["model.dir"][0], ctr.get("volumeMounts", []), volumes)
            if o["kind"] == "Deployment":
                port = int(env.get("STINT_HTTP_PORT", "0"))
                c.check(dump["http.port"][0] == str(port) and port > 0, "%s: a fixed http.port" % where, port)
                c.check(dump["http.bind"][0] == "0.0.0.0", "%s: http.bind 0.0.0.0 (image default)" % where,
                        dump["http.bind"][0])
                ports = {p.get("name"): p["containerPort"] for p in ctr.get("ports", [])}
                c.check(ports.get("http") == port, "%s: containerPort http == http.port" % where, ports, port)
                for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
                    get = (ctr.get(probe) or {}).get("httpGet") or {}
                    c.check(get.get("path") == path and get.get("port") in ("http", port),
                            "%s: %s on %s" % (where, probe, path), get)
    # Every STINT_* key of a ConfigMap or Secret is read by some container that gets it.
    for (kind, cname, key), used in sorted(config_use.items()):
        c.check(used, "%s %s: %s is read by none of the containers that get it" % (kind, cname, key))

    # Training writes <claim>/current, the predictor and the clusterer read it.
    cron = [o for o in objs if o["kind"] == "CronJob"]
    c.check(len(cron) == 1, "one training CronJob", len(cron))
    if cron:
        ctr = pod_spec(cron[0])["containers"][0]
        cmd = ctr["command"]
        c.check(cmd[0] == "train-bundle", "CronJob runs train-bundle", cmd)
        out_dir = next((a for a in cmd[1:] if a.startswith("/")), None)
        vols = pod_spec(cron[0])["volumes"]
        mount = next((m for m in ctr["volumeMounts"] if m["mountPath"] == out_dir), None)
        c.check(mount is not None and not mount.get("readOnly"), "CronJob mounts %s read-write" % out_dir)
        claim = next((v["persistentVolumeClaim"]["claimName"] for v in vols
                      if mount and v["name"] == mount["name"]), None)
        for reader in ("stint-predictor", "stint-clusterer"):
            mdir, mounts, volumes = model_dirs.get(reader, ("", [], {}))
            ok = any(mdir == m["mountPath"] + "/current" and
                     volumes[m["name"]].get("persistentVolumeClaim", {}).get("claimName") == claim
                     for m in mounts)
            c.check(ok, "%s reads <%s>/current" % (reader, claim), mdir)

    # The topic Job runs the Kafka image's kafka-topics.sh on the ConfigMap's topics.conf.
    jobs = [o for o in objs if o["kind"] == "Job"]
    c.check(len(jobs) == 1 and re.fullmatch(r"apache/kafka:4\.1\.\d+", pod_spec(jobs[0])["containers"][0]["image"]),
            "topic Job on apache/kafka 4.1")
    if jobs:
        cmd = pod_spec(jobs[0])["containers"][0]["command"]
        c.check(cmd[:2] == ["/bin/sh", "/stint/create-topics"] and cmd[-1] == "/stint/topics.conf",
                "topic Job command", cmd)
    c.finish()


try:
    main()
finally:
    shutil.rmtree(SECRET_COPIES, ignore_errors=True)
