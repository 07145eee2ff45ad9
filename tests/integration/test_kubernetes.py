"""examples/kubernetes: what a cluster would refuse or get wrong, without a cluster.

  * schema: every manifest is checked against the Kubernetes API types
    (tests/k8s-schema: kubernetes-types, generated from the official 1.30
    OpenAPI schema, and cert-manager's CRD types, type-checked by TypeScript:
    unknown fields, wrong types, missing required fields). Needs node and npm
    (npm's registry for the first `npm ci`, cached afterwards); skipped with
    the reason printed when they are missing.
  * the native sidecar: fedproxy is an init container with restartPolicy
    Always, its startupProbe does not wait for the app (which starts only
    after it), readiness is /readyz and liveness /healthz;
  * shutdown: terminationGracePeriodSeconds covers both preStop hooks and
    timeouts.shutdown_grace_ms;
  * the PodDisruptionBudget selects the pods and leaves one to evict;
  * the memory limit fits limits.max_connections by the formula of
    examples/kubernetes/README.md ("Sizing the memory limit").

    python3 tests/integration/test_kubernetes.py
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

try:
    import yaml
except ImportError:  # python3-yaml (packaging/install-deps.sh)
    print("test_kubernetes: python3-yaml is missing (packaging/install-deps.sh)", file=sys.stderr)
    raise

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fedtest.proxy import REPO_ROOT  # noqa: E402

K8S_DIR = os.path.join(REPO_ROOT, "examples", "kubernetes")
SCHEMA_DIR = os.path.join(REPO_ROOT, "tests", "k8s-schema")

# The sizing formula of examples/kubernetes/README.md, with the numbers
# tests/bench/conn_memory.py measured (KiB): heap of fedproxy before any
# connection, heap per connection in its worst state (a response stalled at a
# client that does not read), the headroom factor, and the kernel socket
# buffers of one streaming connection.
BASE_KIB = 6 * 1024
PER_CONNECTION_KIB = 64
HEADROOM = 1.25
SOCKET_BUFFERS_PER_STREAM_KIB = 330


def quantity_bytes(q) -> int:
    m = re.fullmatch(r"(\d+)(Ki|Mi|Gi)?", str(q))
    if not m:
        raise ValueError("unsupported memory quantity %r" % q)
    return int(m.group(1)) * {None: 1, "Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30}[m.group(2)]


def manifest_files() -> list[str]:
    out = []
    for root, _, names in os.walk(K8S_DIR):
        out += [os.path.join(root, n) for n in sorted(names) if n.endswith((".yaml", ".yml"))]
    return sorted(out)


def load_docs():
    docs = []
    for path in manifest_files():
        with open(path) as f:
            docs += [(path, d) for d in yaml.safe_load_all(f) if d]
    return docs


def cache_root() -> str:
    env = os.environ.get("FEDPROXY_CACHE_DIR")
    if env:
        return env
    if os.geteuid() == 0:
        return "/var/cache/fedproxy"
    return os.path.join(os.path.expanduser("~"), ".cache", "fedproxy")


class SchemaChecker:
    """tests/k8s-schema installed by `npm ci` into the cache (reinstalled when
    its package-lock.json changes), and run from there."""

    def __init__(self):
        self.dir = os.path.join(cache_root(), "k8s-schema")

    def prepare(self) -> str | None:
        """None when ready, else why the check cannot run."""
        node, npm = shutil.which("node"), shutil.which("npm")
        if not node or not npm:
            return "node and npm are needed (apt-get install nodejs npm)"
        with open(os.path.join(SCHEMA_DIR, "package-lock.json"), "rb") as f:
            lock = hashlib.sha256(f.read()).hexdigest()
        os.makedirs(self.dir, exist_ok=True)
        for name in ("package.json", "package-lock.json", "check-manifests.mjs"):
            shutil.copyfile(os.path.join(SCHEMA_DIR, name), os.path.join(self.dir, name))
        stamp = os.path.join(self.dir, "node_modules", ".fedproxy-lock-sha256")
        try:
            with open(stamp) as f:
                if f.read().strip() == lock:
                    return None
        except OSError:
            pass
        p = subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
                           cwd=self.dir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, timeout=600)
        if p.returncode != 0:
            return "npm ci failed in %s:\n%s" % (self.dir, p.stdout[-2000:])
        with open(stamp, "w") as f:
            f.write(lock + "\n")
        return None

    def run(self, files) -> subprocess.CompletedProcess:
        return subprocess.run(["node", "check-manifests.mjs", *files], cwd=self.dir,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              timeout=300)


class SchemaTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.checker = SchemaChecker()
        cls.not_ready = cls.checker.prepare()
        if cls.not_ready:
            print("SKIP: Kubernetes schema check: %s" % cls.not_ready, file=sys.stderr)

    def setUp(self):
        if self.not_ready:
            self.skipTest(self.not_ready)

    def test_every_manifest_checks(self):
        files = manifest_files()
        p = self.checker.run(files)
        self.assertEqual(p.returncode, 0, p.stdout)
        kinds = {d["kind"] for _, d in load_docs() if d["kind"] != "Kustomization"}
        n = len([d for _, d in load_docs() if d["kind"] != "Kustomization"])
        self.assertIn("%d document(s) checked, 0 problem(s)" % n, p.stdout)
        self.assertTrue({"Deployment", "PodDisruptionBudget", "Certificate"} <= kinds)

    def test_the_check_can_fail(self):
        with open(os.path.join(K8S_DIR, "deployment.yaml")) as f:
            good = yaml.safe_load(f)

        def sidecar(doc):
            return doc["spec"]["template"]["spec"]["initContainers"][0]

        cases = {
            "unknown field": ("periodSecond",
                              lambda d: sidecar(d)["startupProbe"].update(periodSecond=1)),
            "wrong type": ("boolean", lambda d: sidecar(d)["securityContext"].update(
                readOnlyRootFilesystem="yes")),
            "unknown apiVersion": ("no schema", lambda d: d.update(apiVersion="apps/v9")),
        }
        for name, (expect, mutate) in cases.items():
            with self.subTest(case=name):
                bad = json.loads(json.dumps(good))
                mutate(bad)
                with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
                    yaml.safe_dump(bad, f)
                try:
                    p = self.checker.run([f.name])
                finally:
                    os.unlink(f.name)
                self.assertEqual(p.returncode, 1, p.stdout)
                self.assertIn(expect, p.stdout)


class NativeSidecarTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        docs = load_docs()
        cls.deployment = next(d for _, d in docs if d["kind"] == "Deployment")
        cls.pod = cls.deployment["spec"]["template"]["spec"]
        cls.pdb = [d for _, d in docs if d["kind"] == "PodDisruptionBudget"]
        cm = next(d for _, d in docs if d["kind"] == "ConfigMap" and "fedproxy.json" in d["data"])
        cls.cfg = json.loads(cm["data"]["fedproxy.json"])
        cls.sidecar = next(c for c in cls.pod.get("initContainers", []) if c["name"] == "fedproxy")
        cls.apps = cls.pod["containers"]

    def test_fedproxy_is_a_native_sidecar(self):
        self.assertEqual(self.sidecar.get("restartPolicy"), "Always")
        self.assertNotIn("fedproxy", [c["name"] for c in self.apps])
        # a regular init container after it would wait for it forever
        inits = [c["name"] for c in self.pod["initContainers"]]
        for c in self.pod["initContainers"][inits.index("fedproxy") + 1:]:
            self.assertEqual(c.get("restartPolicy"), "Always", c["name"])
        self.assertNotIn(self.pod.get("restartPolicy", "Always"), ("Never",))

    def test_probes(self):
        # The app starts only after the sidecar's startupProbe passed: that
        # probe must not wait for the app (/readyz does: a deadlock).
        self.assertEqual(self.sidecar["startupProbe"]["httpGet"]["path"], "/healthz")
        self.assertEqual(self.sidecar["readinessProbe"]["httpGet"]["path"], "/readyz")
        self.assertEqual(self.sidecar["livenessProbe"]["httpGet"]["path"], "/healthz")
        sp = self.sidecar["startupProbe"]
        self.assertLessEqual(sp.get("periodSeconds", 10) * sp.get("failureThreshold", 3), 120)

    def pre_stop_seconds(self, container) -> int:
        hook = container.get("lifecycle", {}).get("preStop")
        if not hook:
            return 0
        if "sleep" in hook:
            return int(hook["sleep"]["seconds"])
        cmd = hook["exec"]["command"]
        self.assertEqual(cmd[0], "sleep", "only sleep hooks are understood here: %s" % cmd)
        return int(cmd[1])

    def test_grace_period_covers_the_drain(self):
        self.assertGreater(self.pre_stop_seconds(self.sidecar), 0, "fedproxy has no preStop")
        app_stop = max(self.pre_stop_seconds(c) for c in self.apps)
        drain_s = self.cfg.get("timeouts", {}).get("shutdown_grace_ms", 10000) / 1000
        needed = app_stop + self.pre_stop_seconds(self.sidecar) + drain_s + 5  # + margin
        self.assertGreaterEqual(self.pod["terminationGracePeriodSeconds"], needed)

    def test_pod_disruption_budget(self):
        self.assertEqual(len(self.pdb), 1)
        spec = self.pdb[0]["spec"]
        labels = self.deployment["spec"]["template"]["metadata"]["labels"]
        self.assertTrue(set(spec["selector"]["matchLabels"].items()) <= set(labels.items()))
        replicas = self.deployment["spec"].get("replicas", 1)
        if "minAvailable" in spec:
            self.assertLess(spec["minAvailable"], replicas, "a drain could never evict a pod")
            self.assertGreaterEqual(spec["minAvailable"], 1)
        else:
            self.assertGreaterEqual(spec["maxUnavailable"], 1)
        self.assertEqual(self.pdb[0]["metadata"]["namespace"],
                         self.deployment["metadata"]["namespace"])

    def test_memory_limit_fits_max_connections(self):
        limit_kib = quantity_bytes(self.sidecar["resources"]["limits"]["memory"]) / 1024
        max_conn = self.cfg.get("limits", {}).get("max_connections", 10000)
        heap = BASE_KIB + max_conn * PER_CONNECTION_KIB * HEADROOM
        self.assertGreaterEqual(limit_kib, heap,
                                "limit %d KiB < %d KiB for %d connections"
                                % (limit_kib, heap, max_conn))
        # and leaves room for the socket buffers of some streaming connections
        streams = (limit_kib - heap) / SOCKET_BUFFERS_PER_STREAM_KIB
        self.assertGreaterEqual(streams, 100, "room for only %d streaming connections" % streams)
        with open(os.path.join(K8S_DIR, "README.md")) as f:
            readme = f.read()
        for words in ("Sizing the memory limit", "tests/bench/conn_memory.py"):
            self.assertTrue(words in readme, "README.md lacks %r" % words)

    def test_rate_limits_account_for_replicas(self):
        # local rate limits count per pod: the README says the grant's rps is per pod
        replicas = self.deployment["spec"].get("replicas", 1)
        with open(os.path.join(K8S_DIR, "README.md")) as f:
            readme = f.read()
        if replicas > 1:
            self.assertTrue("Replicas and rate limits" in readme,
                            "README.md does not say that rate limits count per pod")


if __name__ == "__main__":
    unittest.main(verbosity=2)
