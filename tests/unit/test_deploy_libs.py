#!/usr/bin/env python3
"""The container image's runtime stage installs what the binaries need: every shared library
that `ldd` shows for build/bin's programs belongs (dpkg -S) to a Debian package that the runtime
stage of deploy/docker/Dockerfile installs, or that one of those (or debian:12-slim's essential
packages) depends on; every library a binary names directly (DT_NEEDED) comes from a package the
stage lists itself. The one exception is librdkafka, which the build stage builds from source
(deploy/local/build-librdkafka into the prefix its cmake gets as STINT_RDKAFKA_PREFIX) and the
runtime stage copies to the same path, the binaries' RPATH: a library no package owns must be such
a copy. The build stage installs the -dev packages of deploy/local/packages.txt."""
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from deploy_check import BIN, SERVICES, SRC, Checker, dockerfile_stages  # noqa: E402

PROGRAMS = ["stint"] + ["stint-" + s for s in SERVICES]
c = Checker()


SANITIZER_RUNTIME = re.compile(r"^lib(asan|ubsan|lsan|tsan|hwasan)\.so")


def apt_installs(lines):
    """Packages of the stage's `apt-get install` commands."""
    pkgs = []
    for line in lines:
        if not line.startswith("RUN "):
            continue
        for cmd in re.split(r"&&|;", line[4:]):
            words = cmd.split()
            if "apt-get" in words and "install" in words:
                pkgs += [w for w in words[words.index("install") + 1:] if not w.startswith("-")]
    return pkgs


def installed_packages():
    """{package: (essential, [[alternatives], ...], [provides])} from dpkg's database."""
    out = subprocess.run(["dpkg-query", "-W", "-f=${Package}\t${Status}\t${Essential}\t${Depends}, "
                          "${Pre-Depends}\t${Provides}\n"], capture_output=True, text=True).stdout
    pkgs = {}
    for line in out.splitlines():
        name, status, essential, deps, provides = line.split("\t")
        if not status.endswith(" installed"):
            continue
        groups = []
        for group in deps.split(","):
            alts = [re.sub(r"[\s(].*$", "", a.strip()).split(":")[0] for a in group.split("|")]
            alts = [a for a in alts if a]
            if alts:
                groups.append(alts)
        prov = [re.sub(r"[\s(].*$", "", p.strip()) for p in provides.split(",") if p.strip()]
        pkgs[name] = (essential == "yes", groups, prov)
    return pkgs


def closure(roots, pkgs):
    providers = {}
    for name, (_, _, prov) in pkgs.items():
        for p in prov:
            providers.setdefault(p, []).append(name)
    seen, pending = set(), list(roots)
    while pending:
        p = pending.pop()
        if p in seen or p not in pkgs:
            continue
        seen.add(p)
        for alts in pkgs[p][1]:
            for a in alts:
                pending += [a] if a in pkgs else providers.get(a, [])
    return seen


def dt_needed(path):
    """The sonames an ELF file names directly (readelf -d, DT_NEEDED)."""
    elf = subprocess.run(["readelf", "-d", path], capture_output=True, text=True).stdout
    return re.findall(r"\(NEEDED\)\s+Shared library: \[(\S+)\]", elf)


def owners(paths):
    """{path: package} through one dpkg -S call, trying each path as ldd gives it, its real path
    and its /usr/lib form (usrmerge)."""
    cands = {path: [path, os.path.realpath(path), re.sub(r"^/lib/", "/usr/lib/", path)]
             for path in paths}
    query = sorted({x for xs in cands.values() for x in xs})
    res = subprocess.run(["dpkg", "-S"] + query, capture_output=True, text=True)
    found = {}
    for line in res.stdout.splitlines():
        m = re.match(r"^([^:\s,]+)(?::[a-z0-9]+)?(?:, [^:]+)*: (/\S+)$", line)
        if m:
            found.setdefault(m.group(2), m.group(1))
    return {path: next((found[x] for x in xs if x in found), None) for path, xs in cands.items()}


def main():
    stages = dockerfile_stages()
    c.check(set(stages) == {"build", "runtime"}, "Dockerfile stages build and runtime", sorted(stages))
    runtime = apt_installs(stages.get("runtime", []))
    build = apt_installs(stages.get("build", []))
    c.check(bool(runtime), "the runtime stage installs packages")
    c.check(not [p for p in runtime if p.endswith("-dev")], "no -dev package at run time", runtime)
    with open(os.path.join(SRC, "deploy", "local", "packages.txt"), encoding="utf-8") as f:
        local = [l.strip() for l in f if l.strip() and not l.startswith("#")]
    # libclang-rt-*-dev: clang's sanitizer and libFuzzer runtimes, for `make fuzz` only, not the image
    want = {p for p in local if p.endswith("-dev") and not p.startswith("libclang-rt-")} | \
        {"build-essential", "cmake", "ninja-build", "pkg-config"}
    c.check(want <= set(build), "the build stage installs deploy/local/packages.txt's build packages",
            sorted(set(build)), sorted(want))
    runtime_text = "\n".join(stages.get("runtime", []))
    c.check(re.search(r"^USER\s+(?!root|0)\S+", runtime_text, re.M) is not None, "non-root USER")
    c.check("HEALTHCHECK" in runtime_text and "/healthz" in runtime_text, "HEALTHCHECK on /healthz")
    c.check("debian:12-slim" in open(os.path.join(SRC, "deploy", "docker", "Dockerfile")).read(),
            "runtime on debian:12-slim")

    # librdkafka: built in the build stage, copied into the runtime stage at the same prefix.
    build_text = "\n".join(stages.get("build", []))
    m = re.search(r"^RUN (?:\w+=\S+ )*build-librdkafka (/\S+)(?: &&.*)?$", build_text, re.M)
    rdk_prefix = m.group(1) if m else None
    c.check(rdk_prefix is not None, "the build stage runs build-librdkafka PREFIX")
    c.check(rdk_prefix is not None and "-DSTINT_RDKAFKA_PREFIX=%s " % rdk_prefix in build_text,
            "the build stage's cmake links the librdkafka it built", rdk_prefix)
    copied = {}
    for line in stages.get("runtime", []):
        m = re.match(r"^COPY\s+--from=build\s+(\S+)\s+(\S+)$", line)
        if m:
            copied[os.path.basename(m.group(2))] = (m.group(1), m.group(2))
    rdk = copied.get("librdkafka.so.1")
    c.check(rdk is not None and rdk[0] == rdk[1] == "%s/lib/librdkafka.so.1" % rdk_prefix,
            "the runtime stage copies librdkafka.so.1 to the path it was built for", rdk, rdk_prefix)

    pkgs = installed_packages()
    missing_runtime = [p for p in runtime if p not in pkgs]
    c.check(not missing_runtime, "runtime packages are real (installed here)", missing_runtime)
    essential = [p for p, (ess, _, _) in pkgs.items() if ess]
    base = closure(essential, pkgs)
    covered = closure(set(runtime) | set(essential), pkgs)

    seen, copied_deps_checked = {}, set()
    for prog in PROGRAMS:
        path = os.path.join(BIN, prog)
        if not c.check(os.access(path, os.X_OK), "%s is built" % path):
            continue
        ldd = subprocess.run(["ldd", path], capture_output=True, text=True).stdout
        libs = {}
        for line in ldd.splitlines():
            m = re.match(r"^\s*(\S+)\s+=>\s+(/\S+)", line)
            # A -DSANITIZE build links the sanitizer runtimes; images are never built that way.
            if m and not SANITIZER_RUNTIME.match(m.group(1)):
                libs[m.group(1)] = m.group(2)
        c.check(len(libs) > 5, "%s: ldd lists its libraries" % prog, sorted(libs))
        needed = [n for n in dt_needed(path) if not SANITIZER_RUNTIME.match(n)]
        c.check(bool(needed), "%s: readelf shows DT_NEEDED" % prog)
        new = sorted(set(libs.values()) - set(seen))
        seen.update(owners(new) if new else {})
        own = seen
        for soname, lib in sorted(libs.items()):
            pkg = own.get(lib)
            if pkg is None and soname in copied:
                # the build stage's own build (checked above): what it names directly comes from
                # packages the runtime stage lists, as for the binaries
                for dep in dt_needed(lib):
                    if dep.startswith("ld-linux") or (lib, dep) in copied_deps_checked:
                        continue  # the dynamic loader (libc6, essential); or checked already
                    copied_deps_checked.add((lib, dep))
                    dep_pkg = own.get(libs.get(dep))  # ldd lists it too: its owner is known
                    c.check(dep_pkg in runtime or dep_pkg in base,
                            "%s links %s directly: add %s to the runtime stage's apt-get install"
                            % (soname, dep, dep_pkg), dep_pkg, runtime)
                continue
            if not c.check(pkg is not None, "%s: %s (%s) belongs to a Debian package" % (prog, soname, lib)):
                continue
            c.check(pkg in covered, "%s: %s comes from %s, which the runtime stage does not install "
                    "(nor anything it depends on)" % (prog, soname, pkg), pkg, runtime)
            if soname in needed:
                c.check(pkg in runtime or pkg in base,
                        "%s links %s directly: add %s to the runtime stage's apt-get install"
                        % (prog, soname, pkg), pkg, runtime)
    c.finish()


main()
