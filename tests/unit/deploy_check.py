"""Helpers of the deployment tests (tests/unit/test_deploy_*.py): the repo and binary paths, a
pass/fail counter that prints both values, and the real programs' --dump-config, which says for
every setting where its value came from (so a test can tell whether a STINT_* variable is one
the program reads)."""
import os
import re
import subprocess
import sys

SRC = os.path.abspath(os.environ.get("STINT_SOURCE_DIR",
                                     os.path.join(os.path.dirname(__file__), "..", "..")))
BIN = os.path.abspath(os.environ.get("STINT_BIN_DIR", os.path.join(SRC, "build", "bin")))
SERVICES = ["ingest", "enricher", "sessionizer", "clusterer", "predictor"]


class Checker:
    """Counts checks; prints a failure with what was expected and what was found."""

    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, cond, what, got=None, want=None):
        if cond:
            self.passed += 1
            return True
        self.failed += 1
        msg = "FAIL " + what
        if got is not None or want is not None:
            msg += "\n  got:  %r\n  want: %r" % (got, want)
        print(msg)
        return False

    def finish(self):
        print("%d passed, %d failed" % (self.passed, self.failed))
        sys.exit(1 if self.failed or not self.passed else 0)


def program_argv(command):
    """The stint program a container command runs, as an argv prefix, or None when the command
    is not a stint program (the Kafka image's topic job)."""
    if not command:
        return None
    head = os.path.basename(command[0])
    if head.startswith("stint-") and head[len("stint-"):] in SERVICES:
        return [os.path.join(BIN, head)]
    if head == "train-bundle":
        return [os.path.join(BIN, "stint"), "train"]
    if head == "stint" and len(command) > 1:
        sub = [command[1]]
        if command[1] == "catalog":
            sub.append("import")
        return [os.path.join(BIN, "stint")] + sub
    return None


def dump_config(argv, env=None):
    """Runs ARGV --dump-config with only ENV (plus PATH/HOME) in the environment. Returns
    {key: (value, source)}; librdkafka properties appear as rdkafka.<prop>. Raises on failure."""
    full = {"PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", "/tmp"),
            "OPENBLAS_NUM_THREADS": "1"}
    full.update(env or {})
    res = subprocess.run(argv + ["--dump-config"], env=full, capture_output=True, text=True,
                         timeout=30)
    if res.returncode != 0:
        raise RuntimeError("%s --dump-config exited %d: %s" % (" ".join(argv), res.returncode,
                                                                res.stderr.strip()))
    out = {}
    for line in res.stdout.splitlines():
        m = re.match(r"^([^=\s]+)=(.*?)\s+#\s+(.*)$", line)
        if m:
            out[m.group(1)] = (m.group(2), m.group(3))
    return out


def consumed(dump, name):
    """True when the --dump-config output shows that environment variable NAME was read (a
    secret's NAME_FILE shows as the source "file NAME_FILE")."""
    if any(src.split(", ")[-1] == "file " + name for _, src in dump.values()):
        return True
    if name.startswith("STINT_RDKAFKA_"):
        prop = "rdkafka." + name[len("STINT_RDKAFKA_"):].lower().replace("_", ".")
        return prop in dump
    return any(src == "env " + name for _, src in dump.values())


def env_name(key):
    """STINT_<KEY>: upper-cased, '.' and '-' as '_' (st_config_env_name)."""
    return "STINT_" + re.sub(r"[.\-]", "_", key).upper()


def topics_conf():
    """[(name, compact?)] of deploy/topics.conf."""
    out = []
    with open(os.path.join(SRC, "deploy", "topics.conf"), encoding="utf-8") as f:
        for line in f:
            parts = line.split("#", 1)[0].split()
            if parts:
                out.append((parts[0], len(parts) > 1 and parts[1] == "compact"))
    return out


def dockerfile_stages():
    """{stage name: [instruction lines, continuations joined]} of deploy/docker/Dockerfile."""
    stages, cur, pending = {}, None, ""
    with open(os.path.join(SRC, "deploy", "docker", "Dockerfile"), encoding="utf-8") as f:
        for raw in f:
            line = raw.rstrip("\n")
            if not pending and (not line.strip() or line.lstrip().startswith("#")):
                continue
            if line.endswith("\\"):
                pending += line[:-1] + " "
                continue
            line, pending = pending + line, ""
            m = re.match(r"^FROM\s+\S+(?:\s+AS\s+(\S+))?", line, re.I)
            if m:
                cur = m.group(1) or "stage%d" % len(stages)
                stages[cur] = []
            elif cur is not None:
                stages[cur].append(line.strip())
    return stages


def image_env():
    """The ENV of the Dockerfile's runtime stage: what every container starts with."""
    env = {}
    for line in dockerfile_stages().get("runtime", []):
        if line.upper().startswith("ENV "):
            for m in re.finditer(r"([A-Za-z_][A-Za-z0-9_]*)=(\"[^\"]*\"|\S+)", line[4:]):
                env[m.group(1)] = m.group(2).strip('"')
    return env
