#!/usr/bin/env python3
"""docs/configuration.md is exactly what deploy/gen-config-doc makes of the built programs' -h
tables: a setting added, renamed or re-defaulted without regenerating the reference fails here
(with the diff). Also checks that the reference has a section for every service and names every
STINT_* variable that a service's -h lists."""
import difflib
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from deploy_check import BIN, SERVICES, SRC, Checker  # noqa: E402

c = Checker()
gen = subprocess.run([sys.executable, os.path.join(SRC, "deploy", "gen-config-doc"), BIN],
                     capture_output=True, text=True, timeout=120)
c.check(gen.returncode == 0, "deploy/gen-config-doc exits 0: %s" % gen.stderr.strip())
with open(os.path.join(SRC, "docs", "configuration.md"), encoding="utf-8") as f:
    committed = f.read()
if not c.check(gen.stdout == committed,
               "docs/configuration.md is out of date: run deploy/gen-config-doc > docs/configuration.md"):
    diff = difflib.unified_diff(committed.splitlines(), gen.stdout.splitlines(),
                                "docs/configuration.md (committed)", "deploy/gen-config-doc", lineterm="")
    print("\n".join(list(diff)[:60]))

for s in SERVICES:
    c.check("\n## stint-%s\n" % s in committed, "a section for stint-%s" % s)
    text = subprocess.run([os.path.join(BIN, "stint-" + s), "-h"], capture_output=True, text=True).stdout
    names = set(re.findall(r"^\s+(STINT_[A-Z0-9_]+), ", text, re.M))
    missing = sorted(n for n in names if "`%s`" % n not in committed)
    c.check(len(names) > 15 and not missing, "stint-%s: every STINT_* name in the reference" % s,
            missing, len(names))
c.finish()
