#!/usr/bin/env python3
"""Command line and startup errors (SPEC §8 "at start", §10 CLI, §11 config).

Run: FEDPROXY_BIN=build/proxy/app/fedproxy python3 tests/integration/test_cli.py
"""

import os
import re
import shutil
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from fedtest.case import main, shared_pki  # noqa: E402
from fedtest.proxy import base_config, free_port, run_cli, write_config  # noqa: E402


def lines(text: str):
    return [ln for ln in text.splitlines() if ln.strip()]


class CliTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.pki = shared_pki()
        cls.dir = tempfile.mkdtemp(prefix="fedtest-cli-")
        cls.upstream = "127.0.0.1:%d" % free_port()

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir, ignore_errors=True)

    def config(self, name: str, **over) -> str:
        return write_config(base_config(self.pki, self.upstream, **over), self.dir,
                            name + ".json")

    def run_fails_at_start(self, cfg_path: str, *must_contain: str):
        """`run` must exit 2 with exactly one stderr line naming the file."""
        p = run_cli(["run", "--config", cfg_path], timeout=15)
        err = lines(p.stderr)
        self.assertEqual(p.returncode, 2, "stderr: %s" % p.stderr)
        self.assertEqual(len(err), 1, "want one line on stderr, got:\n%s" % p.stderr)
        for s in must_contain:
            self.assertIn(s.lower(), err[0].lower())
        return err[0]

    # -- informational -------------------------------------------------------
    def test_version(self):
        p = run_cli(["version"])
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertRegex(p.stdout, r"\d+\.\d+\.\d+")

    def test_help(self):
        for args in (["--help"], ["run", "--help"], ["check", "--help"]):
            with self.subTest(args=args):
                p = run_cli(args)
                self.assertEqual(p.returncode, 0, p.stderr)
                out = p.stdout + p.stderr
                self.assertIn("--config" if args[0] != "--help" else "run", out)
        out = run_cli(["--help"]).stdout + run_cli(["--help"]).stderr
        for word in ("run", "check", "version"):
            self.assertIn(word, out)

    def test_unknown_subcommand_fails(self):
        p = run_cli(["frobnicate"])
        self.assertEqual(p.returncode, 2)
        self.assertIn("frobnicate", p.stdout + p.stderr)
        self.assertEqual(run_cli([]).returncode, 2)

    # -- usage errors: exit 2 and the usage line, never ignored (issue 15) -----
    def test_unknown_option_or_extra_argument_is_exit_2(self):
        good = self.config("usage-good")
        cases = [
            (["run", "--confg", good], "run"),              # the typo of the issue
            (["run", "--config", good, "extra"], "run"),
            (["run", "--config"], "run"),                   # missing value
            (["run", "--config", good, "--config", good], "run"),
            (["check", "--config", good, "--verbose"], "check"),
            (["check", "--config", good, good], "check"),
            (["version", "--short"], "version"),
            (["audit", "verify", good, "--fast"], "audit verify"),
            (["audit", "verify"], "audit verify"),
            (["cert", "inspect", self.pki.server.crt, "--pem"], "cert inspect"),
            (["manifest", "fetch", "peer", "--endpoint", "https://x:1", "--config", good, "--insecure"],
             "manifest fetch"),
            (["manifest", "fetch", "peer", "--config", good], "manifest fetch"),
            (["reload", "--config", good, "--now"], "reload"),
        ]
        for args, usage in cases:
            with self.subTest(args=args):
                p = run_cli(args, timeout=15)
                self.assertEqual(p.returncode, 2, p.stdout + p.stderr)
                self.assertIn("Usage: fedproxy " + usage, p.stderr)
                self.assertNotIn('"listening"', p.stderr)
        # the option named in the message
        self.assertIn("--confg", run_cli(["run", "--confg", good]).stderr)

    def test_equals_form_and_short_alias(self):
        good = self.config("usage-forms")
        for args in (["check", "--config=" + good], ["check", "-c", good]):
            with self.subTest(args=args):
                p = run_cli(args)
                self.assertEqual(p.returncode, 0, p.stdout + p.stderr)

    def test_help_states_the_usage_exit_code(self):
        for cmd in (["run"], ["check"], ["version"], ["audit"], ["cert"], ["manifest"], ["reload"]):
            with self.subTest(cmd=cmd):
                p = run_cli(cmd + ["--help"])
                self.assertEqual(p.returncode, 0)
                self.assertRegex(p.stdout, r"2[^\n]*usage error|usage error[^\n]*2|2\s+usage error")

    def test_check_good_config_exit_0(self):
        p = run_cli(["check", "--config", self.config("good")])
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)

    # -- startup errors: exit 2, one line naming the file ----------------------
    def test_missing_cert_file(self):
        missing = os.path.join(self.dir, "no-such-node.crt")
        self.run_fails_at_start(self.config("missing-cert", tls={"cert": missing}), missing)

    def test_missing_key_file(self):
        missing = os.path.join(self.dir, "no-such-node.key")
        self.run_fails_at_start(self.config("missing-key", tls={"key": missing}), missing)

    def test_invalid_ca_bundle(self):
        bad = os.path.join(self.dir, "garbage-ca.pem")
        with open(bad, "w") as f:
            f.write("this is not a certificate\n")
        self.run_fails_at_start(self.config("bad-ca", tls={"ca_bundle": bad}), bad)

    def test_key_not_matching_cert(self):
        line = self.run_fails_at_start(self.config("mismatch", tls={"key": self.pki.client.key}))
        self.assertTrue(self.pki.client.key in line or self.pki.server.crt in line, line)
        self.assertIn("match", line.lower())

    def test_ed25519_key_refused(self):
        line = self.run_fails_at_start(self.config(
            "ed25519", tls={"cert": self.pki.ed25519.crt, "key": self.pki.ed25519.key}),
            "ed25519")
        self.assertTrue(self.pki.ed25519.crt in line or self.pki.ed25519.key in line, line)

    def test_unknown_config_key(self):
        cfg = self.config("unknown-key", lisen="127.0.0.1:1")
        self.run_fails_at_start(cfg, "lisen")
        p = run_cli(["check", "--config", cfg])
        self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
        self.assertIn("lisen", p.stdout + p.stderr)

    def test_unknown_nested_config_key(self):
        cfg = self.config("unknown-nested", tls={"certfile": "x"})
        self.run_fails_at_start(cfg, "certfile")

    def test_invalid_json_config(self):
        path = os.path.join(self.dir, "broken.json")
        with open(path, "w") as f:
            f.write('{"node": {"org": "acme-corp",,}')
        self.run_fails_at_start(path, path)

    def test_missing_config_file(self):
        path = os.path.join(self.dir, "nope.json")
        self.run_fails_at_start(path, path)

    # -- check lists every problem -------------------------------------------
    def test_check_lists_every_problem(self):
        cfg = self.config("many-problems", bogus_key=1,
                          ingress={"listen": "127.0.0.1:notaport"},
                          timeouts={"header_ms": "soon"})
        p = run_cli(["check", "--config", cfg])
        out = p.stdout + p.stderr
        self.assertEqual(p.returncode, 1, out)
        self.assertIn("bogus_key", out)
        self.assertTrue("ingress.listen" in out or "notaport" in out, out)
        self.assertIn("header_ms", out)
        self.assertGreaterEqual(len(lines(out)), 3, "one line per problem expected:\n" + out)

    def test_check_reports_missing_cert(self):
        missing = os.path.join(self.dir, "check-missing.crt")
        p = run_cli(["check", "--config", self.config("check-missing", tls={"cert": missing})])
        self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
        self.assertIn(missing, p.stdout + p.stderr)

    def test_check_does_not_bind(self):
        # check must validate, not serve: it exits promptly with no listener
        p = run_cli(["check", "--config", self.config("check-nobind")], timeout=10)
        self.assertEqual(p.returncode, 0)
        self.assertNotRegex(p.stdout + p.stderr, re.compile(r'"msg"\s*:\s*"listening"'))


if __name__ == "__main__":
    main()
