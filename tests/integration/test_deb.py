"""packaging/build-deb.sh: the Debian package, built from the binary under test.

The package is built and its contents checked: control fields, Depends covering every shared library
the binary links, the file list and modes, the conffile, the unit identical
to packaging/fedproxy.service, the maintainer scripts (shell syntax, and
postinst run for real against a scratch root when `unshare` is available),
the packaged binary's version, and the example config passing `fedproxy
check` once a PKI is put where it points. Installing and running it under a
real systemd is packaging/systemd-check/run.sh (systemd-nspawn), which
packaging/test-all.sh runs on the release build's package.

    FEDPROXY_BIN=build/proxy/app/fedproxy python3 tests/integration/test_deb.py
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fedtest.pki import CertAuthority  # noqa: E402
from fedtest.proxy import REPO_ROOT, fedproxy_bin  # noqa: E402

BUILD_DEB = os.path.join(REPO_ROOT, "packaging", "build-deb.sh")
NODE_URI = "spiffe://example-org.example/nodes/node-1"


def run(args, **kw) -> subprocess.CompletedProcess:
    kw.setdefault("timeout", 600)
    return subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def project_version() -> str:
    with open(os.path.join(REPO_ROOT, "meson.build")) as f:
        return re.search(r"version:\s*'([^']+)'", f.read()).group(1)


def build_dir_of(binary: str) -> str:
    # FEDPROXY_BIN is <build>/proxy/app/fedproxy
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(binary))))


def make_pki(etc: str) -> None:
    """The files the example config names, under etc (as /etc/fedproxy)."""
    work = tempfile.mkdtemp(prefix="fedtest-deb-pki-")
    try:
        own = CertAuthority(os.path.join(work, "own"), "example-org CA")
        partner = CertAuthority(os.path.join(work, "partner"), "partner-example CA")
        node = own.issue(work, "node", server=True,
                         sans=["DNS:localhost", "IP:127.0.0.1", "URI:" + NODE_URI])
        for d in ("certs", "peer-cas", "peers"):
            os.makedirs(os.path.join(etc, d), exist_ok=True)
        shutil.copyfile(node.crt, os.path.join(etc, "certs", "tls.crt"))
        shutil.copyfile(node.key, os.path.join(etc, "certs", "tls.key"))
        os.chmod(os.path.join(etc, "certs", "tls.key"), 0o640)
        shutil.copyfile(own.crt, os.path.join(etc, "certs", "ca.crt"))
        shutil.copyfile(partner.crt, os.path.join(etc, "peer-cas", "partner-example.crt"))
    finally:
        shutil.rmtree(work, ignore_errors=True)


class DebPackage:
    """Built once per run, into a temporary directory."""
    _path = None
    _dir = None

    @classmethod
    def get(cls) -> str:
        if cls._path is None:
            cls._dir = tempfile.mkdtemp(prefix="fedtest-deb-")
            env = dict(os.environ, FEDPROXY_DEB_BUILDDIR=build_dir_of(fedproxy_bin()))
            p = run([BUILD_DEB, cls._dir], env=env, timeout=900)
            if p.returncode != 0:
                raise AssertionError("build-deb.sh failed:\n" + p.stdout + p.stderr)
            debs = [f for f in os.listdir(cls._dir) if f.endswith(".deb")]
            assert len(debs) == 1, debs
            cls._path = os.path.join(cls._dir, debs[0])
        return cls._path

    @classmethod
    def cleanup(cls):
        if cls._dir:
            shutil.rmtree(cls._dir, ignore_errors=True)


def field(info: str, name: str) -> str:
    m = re.search(r"^ %s: (.*)$" % re.escape(name), info, re.M)
    return m.group(1) if m else ""


class DebContentsTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        if not shutil.which("dpkg-deb") or not shutil.which("dpkg-shlibdeps"):
            raise unittest.SkipTest("dpkg-deb/dpkg-shlibdeps missing (apt-get install dpkg-dev)")
        cls.deb = DebPackage.get()
        cls.info = run(["dpkg-deb", "-I", cls.deb]).stdout
        cls.x = tempfile.mkdtemp(prefix="fedtest-deb-x-")
        p = run(["dpkg-deb", "-R", cls.deb, cls.x])
        assert p.returncode == 0, p.stderr

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.x, ignore_errors=True)

    def test_name_and_control(self):
        arch = run(["dpkg", "--print-architecture"]).stdout.strip()
        version = project_version()
        self.assertEqual(os.path.basename(self.deb), "fedproxy_%s_%s.deb" % (version, arch))
        self.assertEqual(field(self.info, "Package"), "fedproxy")
        self.assertEqual(field(self.info, "Version"), version)
        self.assertEqual(field(self.info, "Architecture"), arch)
        self.assertTrue(field(self.info, "Maintainer"))
        self.assertTrue(field(self.info, "Description"))

    def test_depends_cover_every_linked_library(self):
        depends = {d.strip().split(" ")[0] for d in field(self.info, "Depends").split(",")}
        ldd = run(["ldd", fedproxy_bin()]).stdout
        libs = re.findall(r"=> (/\S+) \(", ldd)
        self.assertTrue(libs)
        for lib in libs:
            with self.subTest(lib=lib):
                owner = run(["dpkg", "-S", os.path.realpath(lib)])
                if owner.returncode != 0:  # merged /usr: dpkg knows the /lib path
                    owner = run(["dpkg", "-S", lib])
                self.assertEqual(owner.returncode, 0, owner.stderr)
                pkg = owner.stdout.split(":")[0]
                self.assertIn(pkg, depends, "%s (from %s) not in Depends" % (pkg, lib))
        self.assertTrue({"libmbedtls21", "libllhttp9.2"} <= depends, depends)

    def test_files_and_modes(self):
        listing = run(["dpkg-deb", "-c", self.deb]).stdout
        files = {}
        for line in listing.splitlines():
            parts = line.split()
            files[parts[5].lstrip(".")] = (parts[0], parts[1])
        want = {
            "/usr/bin/fedproxy": "-rwxr-xr-x",
            "/usr/lib/systemd/system/fedproxy.service": "-rw-r--r--",
            "/etc/fedproxy/fedproxy.json": "-rw-r-----",
            "/usr/share/doc/fedproxy/README.Debian": "-rw-r--r--",
            "/usr/share/doc/fedproxy/copyright": "-rw-r--r--",
        }
        for path, mode in want.items():
            with self.subTest(path=path):
                self.assertIn(path, files)
                self.assertEqual(files[path], (mode, "root/root"))
        regular = {p for p, (m, _) in files.items() if m.startswith("-")}
        self.assertEqual(regular, set(want), "unexpected files in the package")
        with open(os.path.join(self.x, "DEBIAN", "conffiles")) as f:
            self.assertEqual(f.read().split(), ["/etc/fedproxy/fedproxy.json"])

    def test_unit_is_the_repository_unit(self):
        with open(os.path.join(REPO_ROOT, "packaging", "fedproxy.service")) as a, \
             open(os.path.join(self.x, "usr/lib/systemd/system/fedproxy.service")) as b:
            self.assertEqual(a.read(), b.read())

    def test_binary_runs(self):
        p = run([os.path.join(self.x, "usr", "bin", "fedproxy"), "version"])
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertTrue(p.stdout.startswith("fedproxy %s " % project_version()), p.stdout)
        self.assertNotIn("debug_info", run(["file", "-L", os.path.join(
            self.x, "usr", "bin", "fedproxy")]).stdout if shutil.which("file") else "")

    def test_example_config_checks_once_certificates_exist(self):
        etc = tempfile.mkdtemp(prefix="fedtest-deb-etc-")
        try:
            shutil.copyfile(os.path.join(self.x, "etc", "fedproxy", "fedproxy.json"),
                            os.path.join(etc, "fedproxy.json"))
            binary = os.path.join(self.x, "usr", "bin", "fedproxy")
            cfg = os.path.join(etc, "fedproxy.json")
            # as installed, before the operator added certificates: names the file
            p = run([binary, "check", "--config", cfg])
            self.assertEqual(p.returncode, 1)
            self.assertIn("tls.crt", p.stdout + p.stderr)
            make_pki(etc)
            with open(os.path.join(etc, "admin.token"), "w") as f:
                f.write("a" * 64 + "\n")
            os.chmod(os.path.join(etc, "admin.token"), 0o640)
            with open(cfg) as f:
                c = json.load(f)
            # the audit log: only the path outside /etc/fedproxy is moved
            c["audit"]["path"] = os.path.join(etc, "audit.jsonl")
            with open(cfg, "w") as f:
                json.dump(c, f)
            p = run([binary, "check", "--config", cfg])
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        finally:
            shutil.rmtree(etc, ignore_errors=True)

    def test_maintainer_scripts(self):
        for s in ("postinst", "prerm", "postrm"):
            with self.subTest(script=s):
                path = os.path.join(self.x, "DEBIAN", s)
                self.assertTrue(os.stat(path).st_mode & stat.S_IXUSR)
                p = run(["sh", "-n", path])
                self.assertEqual(p.returncode, 0, p.stderr)
                if shutil.which("checkbashisms"):
                    self.assertEqual(run(["checkbashisms", path]).returncode, 0)

    def test_postinst_in_a_scratch_root(self):
        """postinst configure, run for real in a private mount namespace whose
        /etc and /var/log are scratch copies: the user and group, the modes
        of /etc/fedproxy, the admin token, the audit directory; run twice
        (an upgrade keeps the token)."""
        if os.geteuid() != 0 or not shutil.which("unshare"):
            self.skipTest("needs root and unshare (a private mount namespace)")
        if run(["unshare", "--mount", "true"]).returncode != 0:
            self.skipTest("unshare --mount is not permitted here")
        scratch = tempfile.mkdtemp(prefix="fedtest-deb-root-")
        try:
            script = r"""
set -e
cp -a /etc "$S/etc"; mkdir -p "$S/log"
mount --bind "$S/etc" /etc; mount --bind "$S/log" /var/log
rm -rf /var/log/fedproxy
mkdir -p /etc/fedproxy && cp "$X/etc/fedproxy/fedproxy.json" /etc/fedproxy/
sh "$X/DEBIAN/postinst" configure
first=$(cat /etc/fedproxy/admin.token)
sh "$X/DEBIAN/postinst" configure 0.0.9
[ "$first" = "$(cat /etc/fedproxy/admin.token)" ] || { echo "token changed on upgrade"; exit 1; }
getent passwd fedproxy | cut -d: -f1,6,7
getent group fedproxy | cut -d: -f1
stat -c '%n %a %U:%G' /etc/fedproxy /etc/fedproxy/certs /etc/fedproxy/peer-cas \
  /etc/fedproxy/peers /etc/fedproxy/fedproxy.json /etc/fedproxy/admin.token /var/log/fedproxy
wc -c < /etc/fedproxy/admin.token
sh "$X/DEBIAN/postrm" purge
[ ! -e /etc/fedproxy/admin.token ] || { echo "purge kept the token"; exit 1; }
[ -d /var/log/fedproxy ] || { echo "purge removed the audit log directory"; exit 1; }
"""
            p = run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                    env=dict(os.environ, S=scratch, X=self.x))
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
            out = p.stdout
            self.assertIn("fedproxy:/nonexistent:/usr/sbin/nologin", out)
            for line in ("/etc/fedproxy 750 root:fedproxy", "/etc/fedproxy/certs 750 root:fedproxy",
                         "/etc/fedproxy/fedproxy.json 640 root:fedproxy",
                         "/etc/fedproxy/admin.token 640 root:fedproxy",
                         "/var/log/fedproxy 750 fedproxy:fedproxy"):
                self.assertIn(line, out)
            self.assertRegex(out, r"(?m)^64$")
        finally:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    try:
        unittest.main(verbosity=2)
    finally:
        DebPackage.cleanup()
