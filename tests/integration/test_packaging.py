#!/usr/bin/env python3
"""Packaging: packaging/Dockerfile, .dockerignore and packaging/fedproxy.service.

No container engine is needed. The Dockerfile is parsed, and every package it
installs is looked up in the Debian release its stage is built FROM (apt-cache
madison: on Debian 13 the native archive, on Debian 12 the trixie source that
packaging/install-deps.sh adds at pin 50). The runtime stage's list is checked
against what the real binary links (ldd + dpkg -S on this host, mapped to the
trixie package of the same source and soname). The image's HEALTHCHECK command
is run against a live fedproxy. The systemd unit is checked for its hardening
directives and, where systemd-analyze exists, with `systemd-analyze verify`.

Run: FEDPROXY_BIN=build/proxy/app/fedproxy python3 tests/integration/test_packaging.py
"""

from __future__ import annotations

import functools
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# fedtest starts the binary from a temporary working directory.
if os.environ.get("FEDPROXY_BIN"):
    os.environ["FEDPROXY_BIN"] = os.path.abspath(os.environ["FEDPROXY_BIN"])

from fedtest.case import main  # noqa: E402
from fedtest.proxy import REPO_ROOT, Proxy, free_port  # noqa: E402
from fedtest.reload import admin_request, write_admin_token  # noqa: E402

DOCKERFILE = os.path.join(REPO_ROOT, "packaging", "Dockerfile")
DOCKERIGNORE = os.path.join(REPO_ROOT, ".dockerignore")
UNIT = os.path.join(REPO_ROOT, "packaging", "fedproxy.service")
SOCKET_UNIT = os.path.join(REPO_ROOT, "packaging", "fedproxy.socket")

# The contract with examples/docker-compose and examples/kubernetes.
IMAGE_ENTRYPOINT = ["fedproxy"]
IMAGE_CMD = ["run", "--config", "/etc/fedproxy/fedproxy.json"]
INGRESS_PORT = 8443                 # SPEC §11 ingress.listen default
SHUTDOWN_GRACE_S = 10               # timeouts.shutdown_grace_ms default (SPEC §10)
AUDIT_DIR = "/var/log/fedproxy"

# Shared objects that come with debian:*-slim itself (apt needs them), by the
# Debian package that ships them; and sanitizer runtimes of ASan/UBSan builds.
BASE_IMAGE_PACKAGES = {"libc6", "libstdc++6", "libgcc-s1"}
SANITIZER_SONAME = re.compile(r"^lib(asan|ubsan|tsan|lsan|hwasan)\.so")
# Runtime packages allowed without a linked library behind them.
RUNTIME_EXTRAS = {"ca-certificates", "tzdata"}

BUILD_TOOLS = {"g++", "gcc", "cpp", "clang", "meson", "ninja-build", "pkg-config", "pkgconf",
               "make", "cmake", "build-essential", "binutils", "libc6-dev"}


def run(cmd, timeout=60, env=None) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, errors="replace",
                          timeout=timeout, env=env)


# --------------------------------------------------------------------------
# Dockerfile parsing
# --------------------------------------------------------------------------
def dockerfile_instructions(text: str):
    """[(lineno, KEYWORD, args)] with line continuations joined and comment
    lines dropped (Docker drops them inside continuations too)."""
    out, buf, start = [], [], None
    for no, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not buf and (not line or line.startswith("#")):
            continue
        if buf and line.startswith("#"):
            continue                      # comment inside a continued instruction
        if start is None:
            start = no
        if line.endswith("\\"):
            buf.append(line[:-1].strip())
            continue
        buf.append(line)
        joined = " ".join(p for p in buf if p)
        kw, _, args = joined.partition(" ")
        out.append((start, kw.upper(), args.strip()))
        buf, start = [], None
    if buf:
        raise ValueError("Dockerfile ends inside a line continuation")
    return out


def dockerfile_stages(text: str):
    """[{name, base, lineno, instructions}] in order."""
    stages = []
    for no, kw, args in dockerfile_instructions(text):
        if kw == "FROM":
            words = [w for w in args.split() if not w.startswith("--")]
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            stages.append({"name": name, "base": words[0], "lineno": no, "instructions": []})
        elif kw == "ARG" and not stages:
            continue                      # global ARG before the first FROM
        else:
            if not stages:
                raise ValueError("line %d: %s before the first FROM" % (no, kw))
            stages[-1]["instructions"].append((no, kw, args))
    return stages


def apt_packages(run_args: str):
    """Package names of every `apt-get install` / `apt install` in a RUN
    command (shell form): options skipped, /release and =version removed."""
    pkgs = []
    tokens = shlex.split(run_args, posix=True)
    # Split into simple commands at shell operators.
    cmds, cur = [], []
    for t in tokens:
        if t in ("&&", "||", ";", "|") or t.endswith(";"):
            if t.endswith(";") and t != ";":
                cur.append(t[:-1])
            cmds.append(cur)
            cur = []
        else:
            cur.append(t)
    cmds.append(cur)
    for c in cmds:
        words = [w for w in c if not re.match(r"^[A-Z_]+=", w)]   # VAR=value prefixes
        if not words or os.path.basename(words[0]) not in ("apt-get", "apt"):
            continue
        if "install" not in words:
            continue
        for w in words[words.index("install") + 1:]:
            if w.startswith("-"):
                continue
            pkgs.append(re.split(r"[=/]", w, maxsplit=1)[0])
    return pkgs


def stage_packages(stage):
    return [p for _, kw, args in stage["instructions"] if kw == "RUN" for p in apt_packages(args)]


def debian_release(image: str) -> str:
    """debian:trixie-20260803-slim -> trixie (the base must be a Debian codename
    tag, optionally dated: debian:<codename>[-YYYYMMDD][-slim])."""
    m = re.match(r"^(?:docker\.io/)?(?:library/)?debian:([a-z]+)(?:-\d{8})?(?:-slim)?"
                 r"(?:@sha256:[0-9a-f]+)?$", image)
    if not m:
        raise ValueError("base image %r is not debian:<codename>[-YYYYMMDD][-slim]" % image)
    return m.group(1)


# --------------------------------------------------------------------------
# Image references in examples/ and packaging/: pinned by version
# --------------------------------------------------------------------------
# Images this repository builds itself (compose.yaml's build:, the
# Kubernetes example's "build it and push it"): not pulled, any tag but latest.
LOCAL_IMAGES = {"fedproxy"}
# docker run / create options that take a value (the image is the first
# other word).
DOCKER_RUN_VALUE_OPTS = {
    "-v", "--volume", "-e", "--env", "-p", "--publish", "--name", "--mount", "-u", "--user",
    "-w", "--workdir", "--network", "--net", "--entrypoint", "--tmpfs", "--cap-drop",
    "--cap-add", "--security-opt", "--stop-timeout", "-h", "--hostname", "--env-file",
    "--label", "-l", "--platform", "--pull", "--restart", "--memory", "-m", "--cpus",
    "--health-cmd", "--user", "--group-add", "--ulimit", "--add-host", "--dns", "--device",
    "--log-driver", "--log-opt", "--pid", "--ipc", "--uts", "--cgroupns", "--shm-size",
    "--stop-signal", "--init-path", "--expose", "--volumes-from", "--link", "--runtime",
}


def image_unpinned_reason(ref: str) -> str | None:
    """Why an image reference is not pinned to a version, or None if it is.
    Pinned: a digest (@sha256:...), or a tag that names a version: x.y[.z]
    (3.13-slim-trixie, 0.28.4) or a dated build (trixie-20260803-slim).
    Not pinned: no tag, latest/stable/edge, a codename alone (trixie-slim) or
    a bare major version (3-slim)."""
    ref = ref.strip("'\"")
    m = re.match(r"^\$\{[A-Za-z_][A-Za-z0-9_]*:?-([^}]*)\}$", ref)
    if m:                                   # ${IMAGE:-default}: the default counts
        ref = m.group(1)
    if "@sha256:" in ref:
        return None
    last = ref.rsplit("/", 1)[-1]
    name, sep, tag = last.partition(":")
    repo = ref.rsplit(":", 1)[0] if sep else ref
    if not sep or not tag:
        return "no tag (means :latest)"
    if tag in ("latest", "stable", "edge", "testing", "unstable", "rolling", "current"):
        return "floating tag :%s" % tag
    if repo.rsplit("/", 1)[-1] in LOCAL_IMAGES:
        return None
    if re.search(r"(?<![\d.])\d+\.\d+", tag) or re.search(r"(?<!\d)(19|20)\d{6}(?!\d)", tag):
        return None
    return "tag :%s names no version (a bare major or a codename floats)" % tag


def image_references(text: str, filename: str):
    """[(lineno, image)] of FROM lines (Dockerfiles), `image:` keys (YAML, also
    in Markdown code blocks), `--image=`/`--image ` (kubectl run) and
    `docker run|create` commands (shell and Markdown; continuations joined)."""
    refs = []
    base = os.path.basename(filename)
    lines, joined, start = [], "", None
    for no, raw in enumerate(text.splitlines(), 1):
        if start is None:
            start = no
        if raw.rstrip().endswith("\\"):
            joined += raw.rstrip()[:-1] + " "
            continue
        lines.append((start, joined + raw))
        joined, start = "", None
    for no, line in lines:
        s = line.strip()
        if base.startswith("Dockerfile") or base.endswith(".Dockerfile"):
            m = re.match(r"^FROM\s+(?:--\S+\s+)*(\S+)", s, re.I)
            if m:
                refs.append((no, m.group(1)))
        m = re.match(r"^(?:-\s+)?image:\s*([^\s#]+)", s)
        if m:
            refs.append((no, m.group(1)))
        for m in re.finditer(r"--image[= ]([^\s'\"]+)", s):
            refs.append((no, m.group(1)))
        for m in re.finditer(r"\b(?:docker|podman)\s+(?:container\s+)?(?:run|create)\s+(.*)", s):
            try:
                words = shlex.split(m.group(1), comments=True)
            except ValueError:
                words = m.group(1).split()
            i = 0
            while i < len(words):
                w = words[i]
                if w in DOCKER_RUN_VALUE_OPTS:
                    i += 2
                    continue
                if w.startswith("-"):
                    i += 1
                    continue
                if w.startswith("$") and not w.startswith("${"):
                    break                   # "$image": a variable, checked where set
                refs.append((no, w))
                break
    return refs


def repo_image_references():
    """[(path relative to the repo, lineno, image)] under examples/ and packaging/."""
    out = []
    for top in ("examples", "packaging"):
        for d, dirs, files in os.walk(os.path.join(REPO_ROOT, top)):
            dirs[:] = [x for x in dirs if x not in ("run", "__pycache__") and not x.startswith(".")]
            for f in files:
                if not (f.endswith((".yaml", ".yml", ".sh", ".md", ".py"))
                        or f.startswith("Dockerfile")):
                    continue
                path = os.path.join(d, f)
                with open(path, errors="replace") as fh:
                    text = fh.read()
                rel = os.path.relpath(path, REPO_ROOT)
                out += [(rel, no, ref) for no, ref in image_references(text, f)]
    return out


class ImagePinTest(unittest.TestCase):
    """Every image the examples and the Dockerfile pull is pinned to a version."""

    def test_rule(self):
        # the check itself, so that it cannot pass vacuously
        for ref in ("python:3.13-slim-trixie", "smallstep/step-ca:0.28.4", "curlimages/curl:8.12.1",
                    "debian:trixie-20260803-slim", "debian:13.6", "fedproxy:local",
                    "docker.io/library/debian:trixie@sha256:" + "0" * 64,
                    "registry.example:5000/team/app:1.2.3", "${STEP_IMAGE:-smallstep/step-cli:0.28.7}"):
            with self.subTest(ref=ref):
                self.assertIsNone(image_unpinned_reason(ref))
        for ref in ("smallstep/step-ca", "python:3-slim", "python:3", "debian:trixie",
                    "debian:trixie-slim", "curlimages/curl:latest", "fedproxy:latest",
                    "registry.example:5000/team/app", "${STEP_IMAGE:-smallstep/step-cli}",
                    "node:lts", "alpine:edge"):
            with self.subTest(ref=ref):
                self.assertIsNotNone(image_unpinned_reason(ref))
        text = ("services:\n  a:\n    image: python:3-slim   # comment\n"
                "spec:\n  containers:\n    - image: curlimages/curl\n"
                "docker run --rm -v /a:/b:ro \\\n  -e X=1 --read-only smallstep/step-cli step version\n"
                "kubectl run c --image=busybox -- sh\n")
        self.assertEqual(image_references(text, "x.yaml"),
                         [(3, "python:3-slim"), (6, "curlimages/curl"),
                          (7, "smallstep/step-cli"), (9, "busybox")])
        self.assertEqual(image_references("# c\nFROM --platform=$X debian:trixie AS build\n",
                                          "Dockerfile"), [(2, "debian:trixie")])

    def test_examples_and_packaging_pin_every_image(self):
        refs = repo_image_references()
        files = {f for f, _, _ in refs}
        # the scan finds the files that pull images (else it checks nothing)
        for want in ("packaging/Dockerfile", "examples/docker-compose/compose.yaml",
                     "examples/kubernetes/deployment.yaml"):
            self.assertIn(want, files)
        bad = ["%s:%d: %s: %s" % (f, no, ref, image_unpinned_reason(ref))
               for f, no, ref in refs if image_unpinned_reason(ref)]
        self.assertEqual(bad, [], "unpinned image references:\n" + "\n".join(bad))


def exec_form(args: str):
    """The JSON array of an exec-form instruction, or None for shell form."""
    try:
        v = json.loads(args)
    except ValueError:
        return None
    return v if isinstance(v, list) and all(isinstance(x, str) for x in v) else None


# --------------------------------------------------------------------------
# apt / dpkg queries
# --------------------------------------------------------------------------
@functools.lru_cache(maxsize=None)
def apt_knows_release(release: str) -> bool:
    p = run(["apt-cache", "policy"])
    return p.returncode == 0 and ("n=%s," % release) in p.stdout


_MADISON: dict = {}


def madison_suites_many(pkgs) -> dict:
    """{pkg: {suite: [versions]}} as apt-cache madison lists them (one call
    for all names not asked before; a virtual-only or unknown name gets {})."""
    todo = [p for p in dict.fromkeys(pkgs) if p not in _MADISON]
    if todo:
        r = run(["apt-cache", "madison", *todo], timeout=120)
        found = {p: {} for p in todo}
        for line in r.stdout.splitlines():
            parts = [x.strip() for x in line.split("|")]
            if len(parts) < 3 or parts[0] not in found:
                continue
            src = parts[2].split()
            if len(src) >= 2 and "/" in src[1]:
                found[parts[0]].setdefault(src[1].split("/")[0], []).append(parts[1])
        _MADISON.update(found)
    return {p: _MADISON[p] for p in pkgs}


def madison_suites(pkg: str) -> dict:
    return madison_suites_many([pkg])[pkg]


def release_suites(release: str):
    # What the official debian:<release> images have in their sources.
    return {release, release + "-updates", release + "-security"}


def in_release(pkg: str, release: str) -> bool:
    return bool(set(madison_suites(pkg)) & release_suites(release))


def release_sources(pkgs, release: str) -> dict:
    """{pkg: source package in release} for names known to be in release."""
    pkgs = list(dict.fromkeys(pkgs))
    if not pkgs:
        return {}
    r = run(["apt-cache", "show", *("%s/%s" % (p, release) for p in pkgs)], timeout=120)
    out = {}
    for stanza in r.stdout.split("\n\n"):
        m = re.search(r"^Package: (\S+)", stanza, re.M)
        if not m or m.group(1) in out:
            continue
        s = re.search(r"^Source: (\S+)", stanza, re.M)
        out[m.group(1)] = s.group(1) if s else m.group(1)
    return out


def host_package_of(path: str) -> str | None:
    """The installed package that owns a library path (merged-/usr aware)."""
    cands = []
    for p in (path, os.path.realpath(path)):
        cands.append(p)
        if p.startswith("/usr/"):
            cands.append(p[4:])
        else:
            cands.append("/usr" + p)
    for c in dict.fromkeys(cands):
        r = run(["dpkg", "-S", c])
        if r.returncode == 0:
            for line in r.stdout.splitlines():
                if line.startswith("diversion by"):
                    continue
                owner = line.split(": ", 1)[0].split(",")[0].strip()
                return owner.split(":")[0]
    return None


def host_source_of(pkg: str) -> str:
    r = run(["dpkg-query", "-W", "-f", "${source:Package}", pkg])
    return r.stdout.strip() or pkg


def soname_package_names(soname: str):
    """Debian policy 8.1: libfoo.so.N -> libfooN, libfoo2.so.N -> libfoo2-N
    (plus the t64 variants of the 64-bit time_t transition)."""
    m = re.match(r"^(lib.+?)\.so\.(.+)$", soname)
    if not m:
        return []
    stem, ver = m.groups()
    base = stem + ("-" if stem[-1].isdigit() else "") + ver
    return [base, base + "t64"]


def same_source_other_soname(soname: str, source: str, release: str):
    """Library packages of `source` in `release` named after the soname's stem
    (libhiredis.so.0.14 -> libhiredis<digit>...), for a library that release
    ships only under another soname: hiredis is libhiredis.so.0.14 on Debian
    12 and libhiredis.so.1.1.0 on Debian 13, and fedproxy is built against
    each release's own (it uses only the API both have), so the image (built
    on trixie) installs trixie's."""
    m = re.match(r"^(lib.+?)\.so\.", soname)
    if not m:
        return []
    stem = m.group(1)
    names = [n for n in run(["apt-cache", "pkgnames", stem]).stdout.split()
             if re.match(re.escape(stem) + r"\d", n) and not n.endswith(("-dev", "-dbg", "-doc"))]
    madison_suites_many(names)
    present = [n for n in names if in_release(n, release)]
    sources = release_sources(present, release)
    return sorted(n for n in present if sources.get(n) == source)


def ldd(binary: str):
    """[(soname, path)] of the shared objects the binary resolves."""
    r = run(["ldd", binary])
    if r.returncode != 0:
        raise RuntimeError("ldd %s failed: %s" % (binary, r.stderr))
    libs = []
    for line in r.stdout.splitlines():
        m = re.match(r"^\s*(\S+)\s+=>\s+(/\S+)", line)
        if m:
            libs.append((m.group(1), m.group(2)))
    return libs


def fedproxy_binary() -> str | None:
    path = os.environ.get("FEDPROXY_BIN") or os.path.join(REPO_ROOT, "build", "proxy", "app",
                                                          "fedproxy")
    path = os.path.abspath(path)
    return path if os.path.isfile(path) and os.access(path, os.X_OK) else None


# --------------------------------------------------------------------------
class DockerfileTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        with open(DOCKERFILE) as f:
            cls.text = f.read()
        cls.stages = dockerfile_stages(cls.text)
        cls.final = cls.stages[-1]

    def final_instructions(self, kw):
        return [(no, args) for no, k, args in self.final["instructions"] if k == kw]

    # -- parser self-checks (so that the real checks cannot pass vacuously) --
    def test_parser_handles_continuations_and_comments(self):
        text = ("FROM debian:trixie AS build\n"
                "RUN apt-get update \\\n"
                "# a comment inside the continuation\n"
                " && apt-get install -y --no-install-recommends \\\n"
                "      g++ libuv1-dev/trixie \\\n"
                "      meson=1.7.0-1 \\\n"
                " && rm -rf /var/lib/apt/lists/*\n"
                "FROM debian:trixie-slim\n"
                "RUN DEBIAN_FRONTEND=noninteractive apt install -y libuv1t64; true\n")
        st = dockerfile_stages(text)
        self.assertEqual([s["base"] for s in st], ["debian:trixie", "debian:trixie-slim"])
        self.assertEqual(st[0]["name"], "build")
        self.assertEqual(stage_packages(st[0]), ["g++", "libuv1-dev", "meson"])
        self.assertEqual(stage_packages(st[1]), ["libuv1t64"])

    def test_checker_rejects_unknown_package(self):
        release = debian_release(self.final["base"])
        if not apt_knows_release(release):
            self.skipTest("apt on this host has no %s source (packaging/install-deps.sh adds it)"
                          % release)
        madison_suites_many(["fedproxy-no-such-package-x9", "base-files", "libuv1"])
        self.assertFalse(in_release("fedproxy-no-such-package-x9", release))
        self.assertTrue(in_release("base-files", release))
        # A package that exists, but under another name in this release
        # (t64 transition): the bookworm name must not pass for trixie.
        if release == "trixie":
            self.assertFalse(in_release("libuv1", release),
                             "libuv1 is bookworm's name; trixie has libuv1t64")

    def test_other_soname_maps_by_source(self):
        # hiredis: Debian 12 links libhiredis.so.0.14 (libhiredis0.14), which
        # trixie does not have; its library package there is libhiredis1.1.0
        release = debian_release(self.final["base"])
        if release != "trixie" or not apt_knows_release(release):
            self.skipTest("apt on this host has no trixie source (packaging/install-deps.sh adds it)")
        self.assertEqual(same_source_other_soname("libhiredis.so.0.14", "hiredis", release),
                         ["libhiredis1.1.0"])
        # only packages of the same source count, and never -dev
        self.assertEqual(same_source_other_soname("libhiredis.so.0.14", "libuv1", release), [])
        self.assertEqual(same_source_other_soname("libfedproxy-none.so.1", "hiredis", release), [])

    # -- structure -----------------------------------------------------------
    def test_multi_stage_final_not_from_build(self):
        self.assertGreaterEqual(len(self.stages), 2, "want a build stage and a runtime stage")
        names = {s["name"] for s in self.stages[:-1] if s["name"]}
        self.assertNotIn(self.final["base"], names, "the runtime stage is FROM the build stage")
        for s in self.stages[:-1]:
            self.assertNotEqual(self.final["base"], s["base"],
                                "the runtime stage uses the same base image as %s" % s["name"])
        self.assertTrue(self.final["base"].endswith("-slim"), self.final["base"])
        copies = self.final_instructions("COPY")
        self.assertTrue(copies, "the runtime stage copies nothing")
        for no, args in copies:
            self.assertIn("--from=", args, "line %d: runtime COPY from the build context" % no)

    def test_base_images_pinned_by_release_tag(self):
        for s in self.stages:
            with self.subTest(base=s["base"]):
                self.assertEqual(debian_release(s["base"]), "trixie")

    def test_non_root_user(self):
        users = self.final_instructions("USER")
        self.assertTrue(users, "no USER in the runtime stage")
        user = users[-1][1].split(":")[0]
        self.assertNotIn(user, ("root", "0", ""), "runtime USER is root")
        self.assertIn("useradd", self.text)
        m = re.search(r"FEDPROXY_UID=(\d+)", self.text)
        self.assertTrue(m and int(m.group(1)) >= 1000, "want a fixed uid >= 1000")

    def test_healthcheck_present(self):
        hc = self.final_instructions("HEALTHCHECK")
        self.assertTrue(hc, "no HEALTHCHECK in the runtime stage")
        self.assertNotEqual(hc[-1][1].strip().upper(), "NONE")
        self.assertIn("/healthz", hc[-1][1])

    def test_entrypoint_cmd_expose(self):
        ep = self.final_instructions("ENTRYPOINT")
        cmd = self.final_instructions("CMD")
        self.assertTrue(ep and cmd)
        self.assertEqual(exec_form(ep[-1][1]), IMAGE_ENTRYPOINT)
        self.assertEqual(exec_form(cmd[-1][1]), IMAGE_CMD)
        exposed = " ".join(a for _, a in self.final_instructions("EXPOSE"))
        self.assertRegex(exposed, r"\b%d(/tcp)?\b" % INGRESS_PORT)
        self.assertIn("COPY --from=build /out/usr/bin/fedproxy /usr/bin/fedproxy", self.text)

    def test_no_build_tools_in_runtime_stage(self):
        pkgs = stage_packages(self.final)
        self.assertTrue(pkgs, "the runtime stage installs no runtime libraries")
        for p in pkgs:
            with self.subTest(pkg=p):
                self.assertFalse(p.endswith("-dev"), "%s is a -dev package" % p)
                self.assertNotIn(p, BUILD_TOOLS)
                self.assertIsNone(re.match(r"^(g\+\+|gcc|clang|llvm)-", p), p)
        for no, kw, args in self.final["instructions"]:
            if kw == "RUN" and "install" in args and "apt" in args:
                self.assertIn("--no-install-recommends", args, "line %d" % no)

    def test_build_stage_builds_release_and_runs_unit_tests(self):
        build = self.stages[0]
        runs = " ".join(a for _, k, a in build["instructions"] if k == "RUN")
        self.assertIn("--buildtype=release", runs)
        self.assertIn("meson test", runs)
        self.assertIn("--suite unit", runs)
        for p in ("libmbedtls-dev", "libllhttp-dev", "libuv1-dev", "picojson-dev",
                  "libroaring-dev", "doctest-dev", "meson", "ninja-build", "g++", "pkg-config"):
            self.assertIn(p, stage_packages(build))

    # -- every package exists in the stage's release --------------------------
    def test_every_package_exists_in_its_release(self):
        checked = 0
        for s in self.stages:
            release = debian_release(s["base"])
            if not apt_knows_release(release):
                self.skipTest("apt on this host has no %s source: run packaging/install-deps.sh "
                              "(it adds trixie at pin 50 on Debian 12)" % release)
            madison_suites_many(stage_packages(s))
            for p in stage_packages(s):
                with self.subTest(stage=s["name"] or s["base"], pkg=p):
                    suites = madison_suites(p)
                    self.assertTrue(set(suites) & release_suites(release),
                                    "%s is not a package of %s (apt-cache madison: %s)"
                                    % (p, release, suites or "unknown name"))
                    checked += 1
        self.assertGreater(checked, 10)

    # -- runtime list == what the binary links --------------------------------
    def test_runtime_libraries_match_ldd(self):
        binary = fedproxy_binary()
        if binary is None:
            self.skipTest("no fedproxy binary (set FEDPROXY_BIN)")
        release = debian_release(self.final["base"])
        if not apt_knows_release(release):
            self.skipTest("apt on this host has no %s source" % release)
        runtime = set(stage_packages(self.final))
        linked = []                       # (soname, host package, source, candidates)
        for soname, path in ldd(binary):
            if SANITIZER_SONAME.match(soname):
                continue
            host_pkg = host_package_of(path)
            self.assertIsNotNone(host_pkg, "%s (%s) belongs to no Debian package" % (soname, path))
            if host_pkg in BASE_IMAGE_PACKAGES:
                continue
            cands = [host_pkg, host_pkg + "t64"]
            if host_pkg.endswith("t64"):
                cands.append(host_pkg[:-3])
            cands += soname_package_names(soname)
            linked.append((soname, host_pkg, host_source_of(host_pkg), list(dict.fromkeys(cands))))
        self.assertTrue(linked, "ldd found no library outside the base image")
        madison_suites_many([c for *_, cands in linked for c in cands])
        present = [c for *_, cands in linked for c in cands if in_release(c, release)]
        sources = release_sources(present, release)
        needed = set()
        for soname, host_pkg, source, cands in linked:
            matches = [c for c in cands if sources.get(c) == source]
            if not matches:  # the release ships the library under another soname
                matches = same_source_other_soname(soname, source, release)
            with self.subTest(soname=soname, host_package=host_pkg):
                self.assertTrue(matches, "no %s package of source %s ships %s (tried %s)"
                                % (release, source, soname, cands))
                self.assertTrue(set(matches) & runtime,
                                "the binary links %s (host package %s); the runtime stage "
                                "installs none of %s" % (soname, host_pkg, matches))
                needed |= set(matches)
        extra = runtime - needed - RUNTIME_EXTRAS
        self.assertFalse(extra, "runtime packages the binary does not link: %s" % sorted(extra))

    # -- the HEALTHCHECK command works against a live fedproxy ---------------
    def test_healthcheck_command_against_live_proxy(self):
        if fedproxy_binary() is None:
            self.skipTest("no fedproxy binary (set FEDPROXY_BIN)")
        hc = self.final_instructions("HEALTHCHECK")[-1][1]
        m = re.search(r"\bCMD\s+(\[.*\])\s*$", hc)
        self.assertTrue(m, "HEALTHCHECK is not in exec form: %s" % hc)
        argv = exec_form(m.group(1))
        self.assertTrue(argv, hc)
        if shutil.which(argv[0]) is None:
            self.skipTest("%s not on this host" % argv[0])
        self.assertIn("FEDPROXY_HEALTHCHECK_PORT", argv[-1])
        # with an admin token configured, as every deployment should: /healthz stays open
        tmp = tempfile.mkdtemp(prefix="fedtest-hc-")
        self.addCleanup(shutil.rmtree, tmp, True)
        token_file = os.path.join(tmp, "admin.token")
        write_admin_token(token_file)
        cfg = {"node": {"org": "acme-corp", "entity_uri": "spiffe://acme.example/nodes/a"},
               "ingress": {"listen": "127.0.0.1:0", "upstream": "127.0.0.1:%d" % free_port()},
               "egress": None, "admin": {"listen": "127.0.0.1:0", "token_file": token_file},
               "authenticate_only": True}
        env = dict(os.environ)
        with Proxy(cfg, env={"FEDPROXY_INSECURE": "1"}, wait_for=("ingress", "admin")) as p:
            env["FEDPROXY_HEALTHCHECK_PORT"] = str(p.ports["admin"])
            r = run(argv, timeout=10, env=env)
            self.assertEqual(r.returncode, 0, "healthcheck failed on a live proxy: %s" % r.stderr)
            self.assertEqual(admin_request(p.ports["admin"], "GET", "/status")[0], 401,
                             "the token is not enforced: this test proves nothing")
        r = run(argv, timeout=10, env=env)
        self.assertNotEqual(r.returncode, 0, "healthcheck passed with fedproxy stopped")

    # -- build context --------------------------------------------------------
    def test_dockerignore(self):
        with open(DOCKERIGNORE) as f:
            rules = {ln.strip() for ln in f if ln.strip() and not ln.startswith("#")}
        for want in (".git", "build*/", "**/__pycache__", "**/run/"):
            self.assertIn(want, rules)


# --------------------------------------------------------------------------
def parse_unit(text: str):
    """{section: {key: [values in order]}} (systemd allows repeated keys)."""
    out, section = {}, None
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if pending:
            line = pending + " " + line
            pending = ""
        if not line or line[0] in "#;":
            continue
        if line.endswith("\\"):
            pending = line[:-1].strip()
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            out.setdefault(section, {})
            continue
        key, _, value = line.partition("=")
        out.setdefault(section, {}).setdefault(key.strip(), []).append(value.strip())
    return out


def timespan_seconds(v: str) -> float:
    units = {"us": 1e-6, "ms": 1e-3, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "": 1}
    total = 0.0
    for num, unit in re.findall(r"(\d+(?:\.\d+)?)\s*([a-z]*)", v.strip()):
        total += float(num) * units[unit]
    return total


class SystemdUnitTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        with open(UNIT) as f:
            cls.text = f.read()
        cls.unit = parse_unit(cls.text)
        cls.svc = cls.unit.get("Service", {})

    def last(self, key):
        vals = self.svc.get(key)
        self.assertTrue(vals, "%s= is not set" % key)
        return vals[-1]

    def test_exec_lines(self):
        # notify: started = READY=1 = every listener bound (SPEC §10 systemd).
        self.assertEqual(self.last("Type"), "notify")
        self.assertEqual(self.last("NotifyAccess"), "main")
        self.assertEqual(self.last("ExecStart"),
                         "/usr/bin/fedproxy run --config /etc/fedproxy/fedproxy.json")
        # A reload that fails must fail `systemctl reload` (kill -HUP cannot).
        self.assertEqual(self.last("ExecReload"),
                         "/usr/bin/fedproxy reload --config /etc/fedproxy/fedproxy.json")
        self.assertEqual(self.last("User"), "fedproxy")
        self.assertEqual(self.last("Group"), "fedproxy")

    def test_stop_and_restart(self):
        self.assertEqual(self.last("Restart"), "on-failure")
        self.assertEqual(self.last("KillSignal"), "SIGTERM")
        self.assertGreater(timespan_seconds(self.last("TimeoutStopSec")), SHUTDOWN_GRACE_S,
                           "TimeoutStopSec must exceed shutdown_grace_ms, or systemd SIGKILLs "
                           "a draining proxy")

    def test_hardening(self):
        yes = ("NoNewPrivileges", "PrivateTmp", "PrivateDevices", "ProtectKernelTunables",
               "ProtectKernelModules", "ProtectKernelLogs", "ProtectControlGroups",
               "ProtectClock", "ProtectHostname", "RestrictNamespaces", "RestrictRealtime",
               "RestrictSUIDSGID", "LockPersonality", "MemoryDenyWriteExecute")
        for key in yes:
            with self.subTest(key=key):
                self.assertEqual(self.last(key), "yes")
        self.assertEqual(self.last("ProtectSystem"), "strict")
        self.assertIn(self.last("ProtectHome"), ("yes", "read-only", "tmpfs"))
        self.assertEqual(self.last("SystemCallArchitectures"), "native")
        self.assertEqual(self.last("UMask"), "0077")
        self.assertGreaterEqual(int(self.last("LimitNOFILE").split(":")[-1]), 16384)

    def test_paths(self):
        rw = [p.lstrip("-+") for v in self.svc.get("ReadWritePaths", []) for p in v.split()]
        self.assertIn(AUDIT_DIR, rw, "the audit log directory must be writable")
        ro = [p.lstrip("-+") for v in self.svc.get("ReadOnlyPaths", []) for p in v.split()]
        self.assertIn("/etc/fedproxy", ro)

    def test_capabilities(self):
        caps = self.last("CapabilityBoundingSet").split()
        self.assertTrue(set(caps) <= {"CAP_NET_BIND_SERVICE"},
                        "CapabilityBoundingSet=%s: want empty (or only CAP_NET_BIND_SERVICE)"
                        % " ".join(caps))
        # Every assignment counts (they accumulate): none may add more.
        for v in self.svc.get("CapabilityBoundingSet", []):
            self.assertTrue(set(v.split()) <= {"CAP_NET_BIND_SERVICE"}, v)

    def test_address_families_and_syscalls(self):
        fams = set(" ".join(self.svc.get("RestrictAddressFamilies", [])).split())
        self.assertEqual(fams, {"AF_INET", "AF_INET6", "AF_UNIX"})
        filters = self.svc.get("SystemCallFilter", [])
        allow = [f for f in filters if not f.startswith("~")]
        self.assertTrue(allow and allow[0].split()[0] == "@system-service",
                        "want SystemCallFilter=@system-service, got %s" % filters)
        # libuv >= 1.45 tries io_uring (outside @system-service): a refused call
        # must return an error, not kill the process.
        self.assertEqual(self.last("SystemCallErrorNumber"), "EPERM")

    def test_socket_unit(self):
        with open(SOCKET_UNIT) as f:
            unit = parse_unit(f.read())
        sock = unit.get("Socket", {})
        self.assertTrue(sock.get("ListenStream"), "no ListenStream=")
        self.assertEqual(sock.get("Service"), ["fedproxy.service"])
        # Names fedproxy knows (socket_activation.hpp), or none (matched by address).
        for name in sock.get("FileDescriptorName", []):
            self.assertIn(name, ("ingress", "egress", "admin"))
        self.assertNotEqual(sock.get("Accept", ["no"])[-1], "yes",
                            "Accept=yes hands over connections, not a listening socket")

    def test_systemd_analyze_verify(self):
        tool = shutil.which("systemd-analyze")
        if tool is None:
            print("\nnote: systemd-analyze not found; `systemd-analyze verify` skipped",
                  file=sys.stderr)
            self.skipTest("systemd-analyze not installed")
        text = self.text
        # verify insists that ExecStart's binary exists: point it at the one
        # under test when fedproxy is not installed on this machine.
        if not os.access("/usr/bin/fedproxy", os.X_OK):
            text = text.replace("/usr/bin/fedproxy", fedproxy_binary() or shutil.which("true"))
        d = tempfile.mkdtemp(prefix="fedtest-unit-")
        try:
            path = os.path.join(d, "fedproxy.service")
            with open(path, "w") as f:
                f.write(text)
            shutil.copy(SOCKET_UNIT, os.path.join(d, "fedproxy.socket"))
            r = run([tool, "verify", path, os.path.join(d, "fedproxy.socket")], timeout=120)
            out = r.stdout + r.stderr
            self.assertEqual(r.returncode, 0, out)
            mine = [ln for ln in out.splitlines() if "fedproxy.service" in ln or "fedproxy.socket" in ln]
            self.assertFalse(mine, "systemd-analyze verify complains:\n" + "\n".join(mine))
            r = run([tool, "security", "--offline=yes", path], timeout=120)
            m = re.search(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)", r.stdout + r.stderr)
            if m:
                self.assertLessEqual(float(m.group(1)), 2.0,
                                     "exposure level %s (systemd-analyze security)" % m.group(1))
        finally:
            shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
