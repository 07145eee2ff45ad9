#!/usr/bin/env python3
"""The deployment examples (examples/docker-compose, examples/kubernetes) are
valid and consistent with what fedproxy really accepts.

- compose.yaml, read with PyYAML (anchors, profiles, short syntax expanded as
  compose does), has the shape README.md promises under every profile it
  defines (sidecar in the app's network namespace, read-only certificates,
  the bind-mounted files exist). Where a compose v2 CLI is installed,
  `docker compose config` (no engine needed) accepts it under every profile
  and renders the same; without one that test is skipped with the reason
  (FEDTEST_NO_COMPOSE=1 forces that).
- The Kubernetes manifests parse and carry what fedproxy needs: the cert-manager
  Certificate (URI SAN, usages, 24h/8h, ECDSA P-256), the Secret mounted
  read-only with mode 0440, probes on the admin port, a hardened
  securityContext, a Service on the ingress port, and mount paths that match
  fedproxy.json in the ConfigMap.
- Every example fedproxy.json passes `fedproxy check` with the real binary,
  against a PKI made by examples/docker-compose/make-pki.sh at test time.
- Each organisation has its own CA and every example names each peer's CA as
  that peer's trust anchor (peers[].ca_bundle, trust_domain): make-pki.sh
  makes one CA per organisation and hands each node its peers' CAs.
- The compose example's two nodes, run as plain processes on 127.0.0.1 with that
  PKI, federate: each app calls the other through its own egress and the peer's
  ingress, a call outside the grant is refused, a certificate for partner-labs'
  URI from acme-corp's own CA is refused (403 untrusted_issuer), and
  `make-pki.sh renew` rotates a node certificate under the running proxy.
- Every example configures an admin token (SPEC §10): compose makes one per
  node (make-admin-tokens.sh) into a volume mounted read-only where
  admin.token_file points, Kubernetes mounts a Secret (0440) there; `fedproxy
  check` gives no admin warning, and the running nodes refuse /status without it.

Run: FEDPROXY_BIN=build/proxy/app/fedproxy python3 tests/integration/test_examples.py
Needs PyYAML (python3-yaml): packaging/install-deps.sh.
"""

import copy
import hashlib
import http.client
import json
import os
import re
import shlex
import shutil
import ssl
import stat
import subprocess
import sys
import tempfile
import time
import unittest

try:
    import yaml
except ImportError:  # e.g. a python3 from a venv without PyYAML: retry with Debian's
    if (os.path.exists("/usr/bin/python3") and os.path.realpath(sys.executable)
            != os.path.realpath("/usr/bin/python3")
            and not os.environ.get("FEDTEST_EXAMPLES_REEXEC")):
        os.environ["FEDTEST_EXAMPLES_REEXEC"] = "1"
        os.execv("/usr/bin/python3", ["/usr/bin/python3", os.path.abspath(__file__)]
                 + sys.argv[1:])
    sys.exit("test_examples: PyYAML is missing (Debian package python3-yaml); "
             "run packaging/install-deps.sh")

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
if os.environ.get("FEDPROXY_BIN"):  # fedtest.Proxy runs fedproxy in its own directory
    os.environ["FEDPROXY_BIN"] = os.path.abspath(os.environ["FEDPROXY_BIN"])

from fedtest.backend import Backend  # noqa: E402
from fedtest.proxy import REPO_ROOT, Proxy, free_port, run_cli  # noqa: E402
from fedtest.reload import admin_request, admin_status  # noqa: E402

COMPOSE_DIR = os.path.join(REPO_ROOT, "examples", "docker-compose")
COMPOSE_FILE = os.path.join(COMPOSE_DIR, "compose.yaml")
K8S_DIR = os.path.join(REPO_ROOT, "examples", "kubernetes")
MAKE_PKI = os.path.join(COMPOSE_DIR, "make-pki.sh")
MAKE_ADMIN_TOKENS = os.path.join(COMPOSE_DIR, "make-admin-tokens.sh")

# The nodes of the compose example: org -> (entity_uri, app service, the peer).
NODES = {
    "acme-corp": "spiffe://acme.example/nodes/a",
    "partner-labs": "spiffe://partner-labs.example/nodes/primary",
}
# Profiles compose.yaml defines, and the services each one must add.
PROFILES = {
    "openssl": {"pki-openssl"},
    "step-ca": {"acme-corp-step-ca", "partner-labs-step-ca", "pki-step", "acme-corp-renewer",
                "partner-labs-renewer"},
    "tools": {"acme-corp-curl", "acme-corp-2-curl", "partner-labs-curl"},
}
BASE_SERVICES = {"acme-corp", "acme-corp-fedproxy", "partner-labs", "partner-labs-fedproxy",
                 "admin-tokens", "acme-corp-2", "acme-corp-2-fedproxy", "valkey"}
# acme-corp's node runs as two replicas (app service names) sharing limits in valkey.
ACME_REPLICAS = ("acme-corp", "acme-corp-2")
FEDPROXY_UID = "10001:10001"


def run(cmd, timeout=60, env=None, cwd=None):
    return subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, errors="replace",
                          timeout=timeout, env=env, cwd=cwd)


def trust_domain_of(uri: str) -> str:
    assert uri.startswith("spiffe://"), uri
    return uri[len("spiffe://"):].split("/", 1)[0]


def localize_certs(cfg: dict, certs: str) -> None:
    """Point an example config's certificate paths at make-pki.sh's output for
    one node: tls.* at DIR/<org>/, each peer's CA at DIR/<org>/peer-cas/<peer>.crt."""
    cfg["tls"].update(cert=os.path.join(certs, "tls.crt"), key=os.path.join(certs, "tls.key"),
                      ca_bundle=os.path.join(certs, "ca.crt"))
    for p in cfg.get("peers", []):
        if p.get("ca_bundle"):
            p["ca_bundle"] = os.path.join(certs, "peer-cas", p["org"] + ".crt")


def make_pki(directory: str, *args: str) -> None:
    p = run(["bash", MAKE_PKI, directory, *args], timeout=60)
    if p.returncode != 0:
        raise AssertionError("make-pki.sh %s failed (%d):\n%s%s"
                             % (" ".join(args), p.returncode, p.stdout, p.stderr))


def make_admin_tokens(directory: str, *args: str) -> None:
    p = run(["bash", MAKE_ADMIN_TOKENS, directory, *args], timeout=60)
    if p.returncode != 0:
        raise AssertionError("make-admin-tokens.sh %s failed (%d):\n%s%s"
                             % (" ".join(args), p.returncode, p.stdout, p.stderr))


def read_token(path: str) -> str:
    with open(path) as f:
        return f.read().strip()


# --- compose -----------------------------------------------------------------

def compose_command():
    """The compose v2 CLI: `docker compose`, else the plugin binary run directly
    (`docker-compose -f FILE config` works without the docker CLI). None if absent,
    or if FEDTEST_NO_COMPOSE=1 (to run the tests as on a machine without it)."""
    if os.environ.get("FEDTEST_NO_COMPOSE") == "1":
        return None
    docker = shutil.which("docker")
    if docker:
        try:
            if run([docker, "compose", "version"], timeout=30).returncode == 0:
                return [docker, "compose"]
        except (OSError, subprocess.TimeoutExpired):
            pass
    candidates = [
        os.path.expanduser("~/.docker/cli-plugins/docker-compose"),
        "/usr/local/lib/docker/cli-plugins/docker-compose",
        "/usr/local/libexec/docker/cli-plugins/docker-compose",
        "/usr/lib/docker/cli-plugins/docker-compose",
        "/usr/libexec/docker/cli-plugins/docker-compose",
    ]
    standalone = shutil.which("docker-compose")
    if standalone:
        candidates.append(standalone)
    for c in candidates:
        if os.path.isfile(c) and os.access(c, os.X_OK):
            p = run([c, "version"], timeout=30)
            # v1 (the Python docker-compose) knows neither profiles' `required` nor v2 output
            if p.returncode == 0 and "v1." not in p.stdout and "version 1." not in p.stdout:
                return [c]
    return None


def _dotenv(path: str) -> dict:
    out = {}
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                line = line.strip()
                if line and not line.startswith("#") and "=" in line:
                    k, _, v = line.partition("=")
                    out[k.strip()] = v.strip().strip("'\"")
    return out


def _interpolate(value, env: dict):
    """${VAR}, ${VAR:-default} and $$ in strings, as compose does."""
    if isinstance(value, str):
        def sub(m):
            if m.group(0) == "$$":
                return "$"
            name, default = m.group(1), m.group(3)
            v = env.get(name)
            return v if v else (default or "")
        return re.sub(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(:?-([^}]*))?\}", sub, value)
    if isinstance(value, list):
        return [_interpolate(v, env) for v in value]
    if isinstance(value, dict):
        return {k: _interpolate(v, env) for k, v in value.items()}
    return value


def _short_volume(spec: str) -> dict:
    parts = spec.split(":")
    if len(parts) == 1:
        return {"type": "volume", "target": parts[0]}
    source, target = parts[0], parts[1]
    opts = parts[2].split(",") if len(parts) > 2 else []
    kind = "bind" if source.startswith((".", "/", "~")) else "volume"
    v = {"type": kind, "source": source, "target": target}
    if "ro" in opts:
        v["read_only"] = True
    return v


def _short_port(spec) -> dict:
    parts = str(spec).split(":")
    target = parts[-1].split("/")[0]
    p = {"target": int(target)}
    if len(parts) == 3:
        p["host_ip"], p["published"] = parts[0], parts[1]
    elif len(parts) == 2:
        p["published"] = parts[0]
    return p


def compose_model(*profiles: str) -> dict:
    """compose.yaml read with PyYAML and normalised the way `docker compose config
    --format json` prints what these tests look at (no compose binary needed):
    anchors and merge keys resolved, ${VAR:-default} interpolated, services
    filtered by profile (COMPOSE_PROFILES from .env when none is given), short
    volume/port/depends_on/environment syntax expanded, relative paths made
    absolute from the compose file's directory."""
    with open(COMPOSE_FILE) as f:
        raw = yaml.safe_load(f)
    env = _dotenv(os.path.join(COMPOSE_DIR, ".env"))
    active = set(profiles) if profiles else {
        p for p in env.get("COMPOSE_PROFILES", "").split(",") if p}
    services = {}
    for name, svc in raw["services"].items():
        svc = _interpolate(copy.deepcopy(svc), env)
        if svc.get("profiles") and not set(svc["profiles"]) & active:
            continue
        vols = []
        for v in svc.get("volumes", []):
            v = _short_volume(v) if isinstance(v, str) else dict(v)
            if v["type"] == "bind":
                v["source"] = os.path.normpath(os.path.join(COMPOSE_DIR,
                                                            os.path.expanduser(v["source"])))
            vols.append(v)
        if "volumes" in svc:
            svc["volumes"] = vols
        if "ports" in svc:
            svc["ports"] = [_short_port(p) if not isinstance(p, dict) else p for p in svc["ports"]]
        deps = svc.get("depends_on")
        if isinstance(deps, list):
            svc["depends_on"] = {d: {"condition": "service_started"} for d in deps}
        envs = svc.get("environment")
        if isinstance(envs, list):
            svc["environment"] = dict(e.split("=", 1) if "=" in e else (e, None) for e in envs)
        if isinstance(svc.get("build"), dict) and "context" in svc["build"]:
            svc["build"]["context"] = os.path.normpath(os.path.join(COMPOSE_DIR,
                                                                    svc["build"]["context"]))
        for key in ("command", "entrypoint"):
            if isinstance(svc.get(key), str):
                svc[key] = shlex.split(svc[key])
        services[name] = svc
    # network_mode: service:X implies depends_on X (started), as compose renders it
    for svc in services.values():
        mode = svc.get("network_mode", "")
        if mode.startswith("service:"):
            svc.setdefault("depends_on", {}).setdefault(
                mode.split(":", 1)[1], {"condition": "service_started"})
    return {"name": raw.get("name"), "services": services, "volumes": raw.get("volumes", {})}


class ComposeConfigTest(unittest.TestCase):
    """examples/docker-compose/compose.yaml, read with PyYAML (always), and
    `docker compose config` on it where a compose v2 CLI is installed."""

    @classmethod
    def setUpClass(cls):
        cls.compose = compose_command()
        # compose reads COMPOSE_* from the environment before .env: drop ours
        cls.env = {k: v for k, v in os.environ.items() if not k.startswith("COMPOSE_")}

    def config(self, *profiles: str) -> dict:
        return compose_model(*profiles)

    def compose_config(self, *profiles: str) -> dict:
        """`docker compose config` on compose.yaml with these profiles."""
        args = [*self.compose, "-f", COMPOSE_FILE]
        for p in profiles:
            args += ["--profile", p]
        args += ["config", "--format", "json"]
        p = run(args, env=self.env, cwd=REPO_ROOT)
        self.assertEqual(p.returncode, 0, "%s\nstderr:\n%s" % (" ".join(args), p.stderr))
        return json.loads(p.stdout)

    def test_docker_compose_config_agrees(self):
        # compose itself accepts the file under every profile set, and what it
        # renders agrees with the PyYAML reading the other tests check
        if self.compose is None:
            self.skipTest("no docker compose v2 CLI (neither `docker compose` nor a "
                          "docker-compose plugin binary; Debian 12 does not ship one): "
                          "compose.yaml was checked by parsing it, not by compose itself")
        def facts(model):
            out = {}
            for name, svc in model["services"].items():
                out[name] = {
                    "image": svc.get("image"),
                    "user": svc.get("user"),
                    "network_mode": svc.get("network_mode"),
                    "read_only": bool(svc.get("read_only")),
                    "volumes": sorted((v["type"], v.get("source"), v["target"],
                                       bool(v.get("read_only"))) for v in svc.get("volumes", [])),
                    "ports": sorted((int(p["target"]), p.get("host_ip"), str(p.get("published")))
                                    for p in svc.get("ports", [])),
                    "depends_on": {d: (c.get("condition"), c.get("required", True))
                                   for d, c in svc.get("depends_on", {}).items()},
                    "environment": svc.get("environment") or {},
                    "entrypoint": svc.get("entrypoint"),
                    "command": svc.get("command"),
                }
            return out

        for profiles in ((), *((p,) for p in PROFILES), tuple(PROFILES)):
            with self.subTest(profiles=profiles):
                self.assertEqual(facts(self.compose_config(*profiles)),
                                 facts(self.config(*profiles)))

    def test_every_profile_renders(self):
        # no --profile: the default profile from .env (make-pki.sh)
        default = self.config()
        self.assertEqual(set(default["services"]), BASE_SERVICES | PROFILES["openssl"])
        for profile, extra in PROFILES.items():
            with self.subTest(profile=profile):
                model = self.config(profile)
                self.assertEqual(set(model["services"]), BASE_SERVICES | extra)
        everything = self.config(*PROFILES)
        self.assertEqual(set(everything["services"]),
                         BASE_SERVICES.union(*PROFILES.values()))

    def test_sidecars(self):
        model = self.config(*PROFILES)
        services = model["services"]
        for org in NODES:
            with self.subTest(node=org):
                app = services[org]
                fp = services[org + "-fedproxy"]
                # the sidecar shares the app's network namespace (loopback upstream
                # and loopback-only egress), so the app publishes the ingress port
                self.assertEqual(fp.get("network_mode"), "service:" + org)
                self.assertNotIn("ports", fp)
                self.assertIn(8443, [int(p["target"]) for p in app.get("ports", [])])
                for p in app["ports"]:
                    self.assertEqual(p.get("host_ip"), "127.0.0.1", "publish on host loopback")
                self.assertEqual(fp["image"], "fedproxy:local")
                self.assertEqual(fp["build"]["dockerfile"], "packaging/Dockerfile")
                self.assertEqual(os.path.realpath(fp["build"]["context"]),
                                 os.path.realpath(REPO_ROOT))
                self.assertEqual(fp["user"], FEDPROXY_UID)
                self.assertTrue(fp.get("read_only"))
                self.assertIn("ALL", fp.get("cap_drop", []))
                self.assertEqual(fp["command"],
                                 ["run", "--config", "/etc/fedproxy/config/fedproxy.json"])
                mounts = {v["target"]: v for v in fp["volumes"]}
                certs = mounts["/etc/fedproxy/certs"]
                self.assertEqual(certs["type"], "volume")
                self.assertEqual(certs["source"], org + "-certs")
                self.assertTrue(certs.get("read_only"))
                cfg = mounts["/etc/fedproxy/config"]
                self.assertEqual(cfg["type"], "bind")
                self.assertTrue(cfg.get("read_only"))
                self.assertEqual(os.path.realpath(cfg["source"]),
                                 os.path.realpath(os.path.join(COMPOSE_DIR, org)))
                with open(os.path.join(cfg["source"], "fedproxy.json")) as f:
                    node_cfg = json.load(f)
                # the audit log goes to a writable volume (the root filesystem is read-only)
                audit = mounts[os.path.dirname(node_cfg["audit"]["path"])]
                self.assertEqual(audit["type"], "volume")
                self.assertFalse(audit.get("read_only"))
                # certificates are read from the certs volume, config paths from the bind mount
                for key in ("cert", "key", "ca_bundle"):
                    self.assertEqual(os.path.dirname(node_cfg["tls"][key]), "/etc/fedproxy/certs")
                # the image's HEALTHCHECK probes 127.0.0.1:9901 inside the container
                self.assertEqual(node_cfg["admin"]["listen"], "127.0.0.1:9901")
                # the admin API needs a token: admin-tokens writes it into the
                # node's admin volume, mounted read-only where token_file points
                token_file = node_cfg["admin"]["token_file"]
                admin = mounts[os.path.dirname(token_file)]
                self.assertEqual(admin["type"], "volume")
                self.assertEqual(admin["source"], org + "-admin")
                self.assertTrue(admin.get("read_only"))
                self.assertEqual(os.path.basename(token_file), "admin.token")
                maker = services["admin-tokens"]
                self.assertEqual(maker["environment"]["TOKEN_OWNER"], FEDPROXY_UID)
                self.assertIn("/scripts/make-admin-tokens.sh", maker["entrypoint"])
                targets = {v["source"]: v["target"] for v in maker["volumes"] if v["type"] == "volume"}
                self.assertEqual(targets.get(org + "-admin"), "/tokens/" + org)
                self.assertEqual(fp["depends_on"]["admin-tokens"]["condition"],
                                 "service_completed_successfully")
                self.assertTrue(fp["depends_on"]["admin-tokens"].get("required", True))
                # the curl tool gets the token read-only to call the admin API
                tool = {v["target"]: v for v in services[org + "-curl"]["volumes"]}
                self.assertEqual(tool["/admin"]["source"], org + "-admin")
                self.assertTrue(tool["/admin"].get("read_only"))
                self.assertTrue(node_cfg["egress"]["listen"].startswith("127."))
                # the PKI services write into the volume the sidecar reads
                for pki in ("pki-openssl", "pki-step"):
                    targets = {v["source"]: v["target"] for v in services[pki]["volumes"]
                               if v["type"] == "volume"}
                    self.assertEqual(targets.get(org + "-certs"), "/pki/" + org)
                    self.assertEqual(services[pki]["environment"]["PKI_OWNER"], FEDPROXY_UID)
                    self.assertIn(pki, fp["depends_on"])
                    self.assertFalse(fp["depends_on"][pki].get("required", True))

    def test_bind_mounted_files_exist(self):
        model = self.config(*PROFILES)
        for name, svc in model["services"].items():
            for v in svc.get("volumes", []):
                if v["type"] == "bind":
                    with self.subTest(service=name, source=v["source"]):
                        self.assertTrue(os.path.exists(v["source"]),
                                        "%s bind-mounts %s, which does not exist"
                                        % (name, v["source"]))
        # the example app is local-demo's, reused, not copied
        app_mounts = {v["target"]: v["source"] for v in model["services"]["acme-corp"]["volumes"]}
        self.assertEqual(os.path.realpath(app_mounts["/app/app.py"]),
                         os.path.realpath(os.path.join(REPO_ROOT, "examples", "local-demo",
                                                       "app.py")))

    def test_replicas_share_limits_through_valkey(self):
        # acme-corp's node is two app + fedproxy pairs with one identity and one
        # config; rate_limits.replicas counts them and redis_url names valkey
        model = self.config(*PROFILES)
        services = model["services"]
        cfg, _ = compose_node("acme-corp")
        rl = cfg["rate_limits"]
        self.assertEqual(rl["backend"], "redis")
        readers = sorted(n for n, svc in services.items()
                         if any(v["type"] == "bind" and v["target"] == "/etc/fedproxy/config"
                                and os.path.realpath(v["source"])
                                == os.path.realpath(os.path.join(COMPOSE_DIR, "acme-corp"))
                                for v in svc.get("volumes", [])))
        self.assertEqual(readers, sorted(r + "-fedproxy" for r in ACME_REPLICAS))
        self.assertEqual(rl["replicas"], len(ACME_REPLICAS))
        m = re.fullmatch(r"redis://([a-z0-9-]+):(\d+)/(\d+)", rl["redis_url"])
        self.assertTrue(m, rl["redis_url"])
        valkey = services[m.group(1)]
        self.assertEqual(int(m.group(2)), 6379)
        self.assertTrue(valkey["image"].startswith("valkey/valkey:"), valkey["image"])
        cmd = valkey["command"]
        self.assertEqual(cmd[cmd.index("--save") + 1], "", "no snapshots")
        self.assertEqual(cmd[cmd.index("--appendonly") + 1], "no")
        self.assertIn("valkey-cli", valkey["healthcheck"]["test"])
        self.assertIn("ping", valkey["healthcheck"]["test"])
        self.assertNotIn("ports", valkey, "valkey is for acme-corp's fedproxies only")
        grant = cfg["grants"][0]
        self.assertIn("rate_limit", grant)
        self.assertIn("quota", grant)
        audits = set()
        for replica in ACME_REPLICAS:
            with self.subTest(replica=replica):
                fp = services[replica + "-fedproxy"]
                self.assertEqual(fp["network_mode"], "service:" + replica)
                self.assertIn(m.group(1), fp["depends_on"])
                mounts = {v["target"]: v for v in fp["volumes"]}
                self.assertEqual(mounts["/etc/fedproxy/certs"]["source"], "acme-corp-certs")
                self.assertEqual(mounts["/etc/fedproxy/admin"]["source"], "acme-corp-admin")
                self.assertTrue(mounts["/etc/fedproxy/certs"].get("read_only"))
                # one audit file is one hash chain, written by one process
                audits.add(mounts[os.path.dirname(cfg["audit"]["path"])]["source"])
                tool = {v["target"]: v["source"] for v in services[replica + "-curl"]["volumes"]}
                self.assertEqual(tool["/admin"], "acme-corp-admin")
        self.assertEqual(len(audits), len(ACME_REPLICAS), audits)
        # peers may reach either replica: both are endpoints of acme-corp's manifest
        want = ["https://%s:8443" % r for r in ACME_REPLICAS]
        self.assertEqual(cfg["node"]["endpoints"], want)
        _, pl_manifests = compose_node("partner-labs")
        self.assertEqual(json.loads(pl_manifests["acme-corp.json"])["endpoints"], want)

    def test_dockerfile_matches(self):
        path = os.path.join(REPO_ROOT, "packaging", "Dockerfile")
        self.assertTrue(os.path.isfile(path),
                        "compose.yaml builds fedproxy:local from packaging/Dockerfile")
        with open(path) as f:
            text = f.read()
        # the examples give the key files to uid/gid 10001: the image's user must be it
        for arg in ("FEDPROXY_UID", "FEDPROXY_GID"):
            m = re.search(r"^ARG %s=(\d+)" % arg, text, re.M)
            if m:
                self.assertEqual(m.group(1), FEDPROXY_UID.split(":")[0], arg)


# --- kubernetes ----------------------------------------------------------------

def load_k8s():
    """All documents of examples/kubernetes/*.yaml as (file, doc)."""
    docs = []
    for name in sorted(os.listdir(K8S_DIR)):
        if name.endswith((".yaml", ".yml")):
            with open(os.path.join(K8S_DIR, name)) as f:
                for d in yaml.safe_load_all(f):
                    if d is not None:
                        docs.append((name, d))
    return docs


def listen_port(addr: str) -> int:
    return int(addr.rsplit(":", 1)[1])


class KubernetesManifestTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.docs = load_k8s()
        cls.by_kind = {}
        for _, d in cls.docs:
            cls.by_kind.setdefault(d["kind"], []).append(d)
        # the node's Deployment (valkey.yaml has one too: the shared rate-limit store)
        cls.deployment = next(
            d for d in cls.by_kind["Deployment"]
            if any(c["name"] == "fedproxy"
                   for c in d["spec"]["template"]["spec"].get("initContainers", [])))
        cls.pod = cls.deployment["spec"]["template"]["spec"]
        # fedproxy is a native sidecar: an init container with restartPolicy
        # Always (tests/integration/test_kubernetes.py checks what that needs)
        cls.fedproxy = next(c for c in cls.pod["initContainers"] if c["name"] == "fedproxy")
        cls.mounts = {m["name"]: m for m in cls.fedproxy["volumeMounts"]}
        cls.volumes = {v["name"]: v for v in cls.pod["volumes"]}
        cls.config_map = next(c for c in cls.by_kind["ConfigMap"] if "fedproxy.json" in c["data"])
        cls.cfg = json.loads(cls.config_map["data"]["fedproxy.json"])

    @classmethod
    def one(cls, kind):
        items = cls.by_kind.get(kind, [])
        assert len(items) == 1, "want one %s, got %d" % (kind, len(items))
        return items[0]

    def selecting(self, kind, labels):
        """The one object of kind whose selector matches these pod labels."""
        def selector(d):
            spec = d["spec"]
            return spec.get("selector") if kind == "Service" else spec["podSelector"]["matchLabels"]
        items = [d for d in self.by_kind.get(kind, [])
                 if set(selector(d).items()) <= set(labels.items())]
        self.assertEqual(len(items), 1, "want one %s for %s" % (kind, labels))
        return items[0]

    def node_labels(self):
        return self.deployment["spec"]["template"]["metadata"]["labels"]

    def mount_of_volume(self, predicate):
        """The fedproxy container's mount of the one volume matching predicate."""
        names = [n for n, v in self.volumes.items() if predicate(v)]
        self.assertEqual(len(names), 1, names)
        self.assertIn(names[0], self.mounts)
        return self.volumes[names[0]], self.mounts[names[0]]

    def test_kustomization_lists_every_file(self):
        kust = [d for f, d in self.docs if d["kind"] == "Kustomization"]
        self.assertEqual(len(kust), 1)
        files = {f for f, d in self.docs if d["kind"] != "Kustomization"}
        self.assertEqual(set(kust[0]["resources"]), files)
        kubectl = shutil.which("kubectl")
        if kubectl:  # optional: kustomize renders it (no cluster needed)
            p = run([kubectl, "kustomize", K8S_DIR], timeout=60)
            self.assertEqual(p.returncode, 0, p.stderr)

    def test_certificate(self):
        certs = [c for c in self.by_kind["Certificate"] if not c["spec"].get("isCA")]
        self.assertEqual(len(certs), 1)
        spec = certs[0]["spec"]
        self.assertEqual(spec["uris"], [self.cfg["node"]["entity_uri"]])
        self.assertEqual(set(spec["usages"]), {"client auth", "server auth", "digital signature"})
        self.assertEqual(spec["duration"], "24h")
        self.assertEqual(spec["renewBefore"], "8h")
        self.assertEqual(spec["privateKey"]["algorithm"], "ECDSA")
        self.assertEqual(spec["privateKey"]["size"], 256)
        issuer = spec["issuerRef"]
        self.assertIn(issuer.get("kind", "Issuer"), ("Issuer", "ClusterIssuer"))
        kind = issuer.get("kind", "Issuer")
        issuers = {d["metadata"]["name"] for d in self.by_kind.get(kind, [])}
        self.assertIn(issuer["name"], issuers, "issuerRef names an issuer defined here")
        # the Deployment mounts the Secret this Certificate writes
        self.mount_of_volume(lambda v: v.get("secret", {}).get("secretName") == spec["secretName"])

    def secret_mounted_at(self, directory: str):
        """The Secret volume (and its mount) of the fedproxy container at directory."""
        names = [n for n, m in self.mounts.items() if m["mountPath"] == directory]
        self.assertEqual(len(names), 1, "nothing mounted at %s" % directory)
        vol = self.volumes[names[0]]
        self.assertIn("secret", vol, "%s is not a Secret mount" % directory)
        return vol, self.mounts[names[0]]

    def test_secret_mount_and_paths(self):
        vol, mount = self.secret_mounted_at(os.path.dirname(self.cfg["tls"]["cert"]))
        self.assertEqual(vol["secret"].get("defaultMode"), 0o440,
                         "Secret files default to 0644: fedproxy refuses a world-readable key")
        self.assertTrue(mount.get("readOnly"))
        self.assertNotIn("subPath", mount, "subPath mounts never receive Secret updates")
        tls = self.cfg["tls"]
        for key, name in (("cert", "tls.crt"), ("key", "tls.key"), ("ca_bundle", "ca.crt")):
            self.assertEqual(tls[key], os.path.join(mount["mountPath"], name), key)
        # the non-root container can read a 0440 file: it runs in fsGroup
        sc = self.pod["securityContext"]
        self.assertIsInstance(sc.get("fsGroup"), int)
        self.assertEqual(sc.get("runAsGroup", sc["fsGroup"]), sc["fsGroup"])

    def test_admin_token_secret(self):
        # the admin listener is on the pod IP (probes): it must have a token, from
        # a Secret mounted read-only, 0440, as a directory (rotation reaches it)
        token_file = self.cfg["admin"]["token_file"]
        vol, mount = self.secret_mounted_at(os.path.dirname(token_file))
        self.assertEqual(vol["secret"].get("defaultMode"), 0o440,
                         "fedproxy refuses a world-readable token file")
        self.assertTrue(mount.get("readOnly"))
        self.assertNotIn("subPath", mount, "subPath mounts never receive Secret updates")
        self.assertNotIn("items", vol["secret"])  # the key is "token", the file's name
        self.assertEqual(os.path.basename(token_file), "token")
        # the token is made by hand (README), never committed with the manifests
        self.assertFalse(self.by_kind.get("Secret"), "a committed Secret")
        with open(os.path.join(K8S_DIR, "README.md")) as f:
            readme = f.read()
        self.assertIn("create secret generic %s" % vol["secret"]["secretName"], readme)
        self.assertIn("--from-literal=token=", readme)

    def test_config_and_manifest_mounts(self):
        args = self.fedproxy.get("args") or self.fedproxy.get("command")
        config_path = args[args.index("--config") + 1]
        vol, mount = self.mount_of_volume(
            lambda v: v.get("configMap", {}).get("name") == self.config_map["metadata"]["name"])
        self.assertEqual(os.path.join(mount["mountPath"], "fedproxy.json"), config_path)
        self.assertNotIn("subPath", mount, "subPath mounts never receive ConfigMap updates")
        # manifests_dir is the mount of the peers ConfigMap, whose manifests name configured peers
        peers_dir = self.cfg["manifests_dir"]
        peer_vols = [n for n, m in self.mounts.items() if m["mountPath"] == peers_dir]
        self.assertEqual(len(peer_vols), 1, "nothing mounted at manifests_dir %s" % peers_dir)
        cm_name = self.volumes[peer_vols[0]]["configMap"]["name"]
        cm = next(c for c in self.by_kind["ConfigMap"] if c["metadata"]["name"] == cm_name)
        orgs = {p["org"] for p in self.cfg["peers"]}
        for fname, text in cm["data"].items():
            self.assertTrue(fname.endswith(".json"), fname)
            self.assertIn(json.loads(text)["org"], orgs)
        # the audit log goes to a writable volume (the root filesystem is read-only)
        audit_dir = os.path.dirname(self.cfg["audit"]["path"])
        writable = [m for m in self.mounts.values()
                    if m["mountPath"] == audit_dir and not m.get("readOnly")]
        self.assertEqual(len(writable), 1, "no writable mount at %s" % audit_dir)

    def test_probes_on_admin_port(self):
        admin = self.cfg["admin"]["listen"]
        # kubelet probes come from the node: the admin listener cannot be loopback
        self.assertFalse(admin.startswith("127.") or admin.startswith("localhost"), admin)
        ports = {p["name"]: p["containerPort"] for p in self.fedproxy["ports"]}

        def port_of(probe):
            p = probe["httpGet"]["port"]
            return ports[p] if isinstance(p, str) else p

        live = self.fedproxy["livenessProbe"]
        ready = self.fedproxy["readinessProbe"]
        self.assertEqual(live["httpGet"]["path"], "/healthz")
        self.assertEqual(ready["httpGet"]["path"], "/readyz")
        self.assertEqual(port_of(live), listen_port(admin))
        self.assertEqual(port_of(ready), listen_port(admin))
        # egress stays on loopback: only the app in the pod may use it
        self.assertTrue(self.cfg["egress"]["listen"].startswith("127."))

    def test_security_context(self):
        pod_sc = self.pod["securityContext"]
        self.assertTrue(pod_sc["runAsNonRoot"])
        self.assertGreater(pod_sc["runAsUser"], 0)
        for c in self.pod["initContainers"] + self.pod["containers"]:
            with self.subTest(container=c["name"]):
                sc = c["securityContext"]
                self.assertIs(sc["allowPrivilegeEscalation"], False)
                self.assertIs(sc["readOnlyRootFilesystem"], True)
                self.assertEqual(sc["capabilities"]["drop"], ["ALL"])
                self.assertTrue(sc.get("runAsNonRoot", pod_sc["runAsNonRoot"]))
                self.assertIn("limits", c["resources"])
                self.assertIn("requests", c["resources"])
        self.assertGreater(self.pod["terminationGracePeriodSeconds"] * 1000,
                           self.cfg["timeouts"]["shutdown_grace_ms"])

    def test_service_on_ingress_port(self):
        svc = self.selecting("Service", self.node_labels())
        ingress = listen_port(self.cfg["ingress"]["listen"])
        ports = {p["name"]: p["containerPort"] for p in self.fedproxy["ports"]}
        labels = self.deployment["spec"]["template"]["metadata"]["labels"]
        self.assertTrue(set(svc["spec"]["selector"].items()) <= set(labels.items()))
        self.assertEqual(len(svc["spec"]["ports"]), 1, "only the federation port is a Service")
        sp = svc["spec"]["ports"][0]
        self.assertEqual(sp["port"], ingress)
        target = sp.get("targetPort", sp["port"])
        self.assertEqual(ports[target] if isinstance(target, str) else target, ingress)

    def test_network_policy(self):
        np = self.selecting("NetworkPolicy", self.node_labels())
        labels = self.deployment["spec"]["template"]["metadata"]["labels"]
        sel = np["spec"]["podSelector"]["matchLabels"]
        self.assertTrue(set(sel.items()) <= set(labels.items()))
        admin = listen_port(self.cfg["admin"]["listen"])
        ingress = listen_port(self.cfg["ingress"]["listen"])
        rules = np["spec"]["ingress"]
        admin_rules = [r for r in rules if admin in [p["port"] for p in r.get("ports", [])]]
        self.assertTrue(admin_rules, "no rule for the admin port")
        for r in admin_rules:
            self.assertTrue(r.get("from"), "the admin port must be restricted to some sources")
        self.assertTrue(any(ingress in [p["port"] for p in r.get("ports", [])] for r in rules))

    def test_valkey_shares_the_limits(self):
        # every pod of the Deployment shares limits through valkey.yaml's Valkey,
        # which only those pods may reach
        rl = self.cfg["rate_limits"]
        self.assertEqual(rl["backend"], "redis")
        self.assertEqual(rl["replicas"], self.deployment["spec"]["replicas"])
        self.assertGreater(rl["replicas"], 1)
        m = re.fullmatch(r"redis://([a-z0-9-]+)\.([a-z0-9-]+)\.svc:(\d+)/(\d+)", rl["redis_url"])
        self.assertTrue(m, rl["redis_url"])
        svc = next(s for s in self.by_kind["Service"] if s["metadata"]["name"] == m.group(1))
        self.assertEqual(svc["metadata"]["namespace"], m.group(2))
        self.assertIn(int(m.group(3)), [p["port"] for p in svc["spec"]["ports"]])
        store = [d for d in self.by_kind["Deployment"] if d is not self.deployment]
        self.assertEqual(len(store), 1)
        store = store[0]
        labels = store["spec"]["template"]["metadata"]["labels"]
        self.assertTrue(set(svc["spec"]["selector"].items()) <= set(labels.items()))
        self.assertEqual(store["spec"]["replicas"], 1)
        self.assertEqual(store["spec"]["strategy"]["type"], "Recreate",
                         "never two stores with two sets of counters")
        pod = store["spec"]["template"]["spec"]
        (c,) = pod["containers"]
        self.assertTrue(c["image"].startswith("valkey/valkey:"), c["image"])
        cmd = c["command"] + c.get("args", [])
        self.assertEqual(cmd[cmd.index("--save") + 1], "")
        self.assertEqual(cmd[cmd.index("--appendonly") + 1], "no")
        self.assertTrue(pod["securityContext"]["runAsNonRoot"])
        self.assertIs(c["securityContext"]["readOnlyRootFilesystem"], True)
        self.assertEqual(c["securityContext"]["capabilities"]["drop"], ["ALL"])
        np = self.selecting("NetworkPolicy", labels)
        (rule,) = np["spec"]["ingress"]
        self.assertEqual([p["port"] for p in rule["ports"]], [int(m.group(3))])
        (source,) = rule["from"]
        self.assertEqual(set(source), {"podSelector"}, "only pods of this namespace")
        self.assertTrue(set(source["podSelector"]["matchLabels"].items())
                        <= set(self.node_labels().items()))

    def test_each_peer_names_its_own_ca(self):
        # Each organisation has its own CA: the peer's anchor comes from the
        # peer-CA ConfigMap (what the peer handed over), not from this node's
        # Secret, whose ca.crt is this node's own CA.
        _, secret_mount = self.secret_mounted_at(os.path.dirname(self.cfg["tls"]["cert"]))
        manifests = {json.loads(t)["org"]: json.loads(t) for c in self.by_kind["ConfigMap"]
                     if c is not self.config_map for t in c["data"].values()}
        self.assertTrue(self.cfg["peers"])
        for peer in self.cfg["peers"]:
            with self.subTest(peer=peer["org"]):
                anchor = peer.get("ca_bundle")
                self.assertTrue(anchor, "peers[] must name the peer's own CA (ca_bundle)")
                self.assertFalse(anchor.startswith(secret_mount["mountPath"] + "/"))
                self.assertEqual(os.path.basename(anchor), peer["org"] + ".crt")
                mounts = [n for n, m in self.mounts.items() if m["mountPath"] == os.path.dirname(anchor)]
                self.assertEqual(len(mounts), 1, "nothing mounted at %s" % os.path.dirname(anchor))
                vol = self.volumes[mounts[0]]
                self.assertIn("configMap", vol)
                self.assertNotIn("optional", vol["configMap"], "a missing anchor must stop the pod")
                self.assertEqual(peer.get("trust_domain"),
                                 trust_domain_of(manifests[peer["org"]]["entity_uri"]))

    def test_demo_client(self):
        # demo/partner-labs-client.yaml: a stand-in peer whose certificate carries
        # the entity_uri of the peer manifest, so acme-corp's fedproxy accepts it
        with open(os.path.join(K8S_DIR, "demo", "partner-labs-client.yaml")) as f:
            docs = [d for d in yaml.safe_load_all(f) if d]
        cert = next(d for d in docs if d["kind"] == "Certificate" and not d["spec"].get("isCA"))
        pod = next(d for d in docs if d["kind"] == "Pod")
        peers_cm = [c for c in self.by_kind["ConfigMap"] if c is not self.config_map]
        manifests = [json.loads(t) for c in peers_cm for t in c["data"].values()]
        self.assertIn(cert["spec"]["uris"], [[m["entity_uri"]] for m in manifests])
        self.assertIn("client auth", cert["spec"]["usages"])
        # the stand-in partner-labs has its own CA, not acme-corp's issuer
        node_issuer = next(c for c in self.by_kind["Certificate"]
                           if not c["spec"].get("isCA"))["spec"]["issuerRef"]["name"]
        self.assertNotEqual(cert["spec"]["issuerRef"]["name"], node_issuer)
        self.assertIn(cert["spec"]["issuerRef"]["name"],
                      [d["metadata"]["name"] for d in docs if d["kind"] == "ClusterIssuer"])
        vol = next(v for v in pod["spec"]["volumes"] if "secret" in v)
        self.assertEqual(vol["secret"]["secretName"], cert["spec"]["secretName"])
        self.assertEqual(vol["secret"]["defaultMode"], 0o440)
        svc = self.selecting("Service", self.node_labels())
        # README's curl names the Service: the server certificate must carry that name
        name = "%s.%s.svc" % (svc["metadata"]["name"], svc["metadata"]["namespace"])
        node_cert = next(c for c in self.by_kind["Certificate"] if not c["spec"].get("isCA"))
        self.assertIn(name, node_cert["spec"]["dnsNames"])


# --- examples/local-demo ----------------------------------------------------------

class LocalDemoScriptTest(unittest.TestCase):
    """examples/local-demo/run.sh is run by hand (it builds and starts four
    processes); here: every node it configures has an admin token, written
    with a random value and no access for others before fedproxy reads it."""

    def test_every_node_has_an_admin_token(self):
        with open(os.path.join(REPO_ROOT, "examples", "local-demo", "run.sh")) as f:
            script = f.read()
        bodies = re.findall(r"<<JSON\n(.*?)\nJSON\n", script, re.S)
        self.assertGreaterEqual(len(bodies), 2, "no fedproxy configs found in run.sh")
        made = re.search(r'for node in ([a-z ]+); do \(umask 077; openssl rand -hex 32 > '
                         r'"\$work/\$node-admin\.token"\); done', script)
        self.assertTrue(made, "run.sh does not make the admin tokens (umask 077, openssl rand)")
        token_files = {n + "-admin.token" for n in made.group(1).split()}
        for body in bodies:
            # the shell expansions in the heredocs are port numbers
            cfg = json.loads(re.sub(r"\$[a-z_]+", "1", re.sub(r"\$\([^)]*\)", "1", body)))
            with self.subTest(node=cfg["node"]["org"]):
                self.assertIn(cfg["admin"].get("token_file"), token_files)
                self.assertLess(script.index("umask 077; openssl rand"), script.index(body))


# --- the real binary ---------------------------------------------------------------

class ComposeTrustAnchorsTest(unittest.TestCase):
    """Every compose node names each peer's own CA, from the peer-CA files that
    both PKI options (make-pki.sh, step-issue.sh) write into its certs volume."""

    def test_each_peer_names_its_own_ca(self):
        for org in NODES:
            cfg, manifests = compose_node(org)
            self.assertEqual(cfg["tls"]["ca_bundle"], "/etc/fedproxy/certs/ca.crt")
            peers = {p["org"]: p for p in cfg["peers"]}
            self.assertEqual(set(peers), set(NODES) - {org})
            for peer, p in peers.items():
                with self.subTest(node=org, peer=peer):
                    self.assertEqual(p.get("ca_bundle"), "/etc/fedproxy/certs/peer-cas/%s.crt" % peer)
                    self.assertEqual(p.get("trust_domain"), trust_domain_of(NODES[peer]))
        for script in ("make-pki.sh", "step-issue.sh"):
            with open(os.path.join(COMPOSE_DIR, script)) as f:
                self.assertIn("peer-cas", f.read(), script + " writes the peers' CAs")


class PkiAndCheckTest(unittest.TestCase):
    """make-pki.sh makes a PKI fedproxy accepts, and every example config passes
    `fedproxy check` when pointed at it."""

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="fedtest-examples-")
        cls.pki = os.path.join(cls.dir, "pki")
        make_pki(cls.pki)
        cls.tokens = os.path.join(cls.dir, "tokens")
        make_admin_tokens(cls.tokens)

    @classmethod
    def tearDownClass(cls):
        if not os.environ.get("FEDTEST_KEEP"):
            shutil.rmtree(cls.dir, ignore_errors=True)

    def test_make_pki_output(self):
        cas = {org: os.path.join(self.pki, "ca", org, "ca.crt") for org in NODES}
        pems = set()
        for org, ca in cas.items():
            self.assertEqual(stat.S_IMODE(os.stat(os.path.join(os.path.dirname(ca), "ca.key")).st_mode),
                             0o600)
            with open(ca) as f:
                pems.add(f.read())
            self.assertIn("O = %s" % org, run(["openssl", "x509", "-in", ca, "-noout", "-subject"]).stdout)
        self.assertEqual(len(pems), len(NODES), "each organisation has its own CA")
        for org, uri in NODES.items():
            with self.subTest(node=org):
                ca = cas[org]
                d = os.path.join(self.pki, org)
                key_mode = stat.S_IMODE(os.stat(os.path.join(d, "tls.key")).st_mode)
                self.assertEqual(key_mode & 0o007, 0, "key is accessible to others: %o" % key_mode)
                self.assertEqual(key_mode, 0o640)
                crt = os.path.join(d, "tls.crt")
                p = run(["openssl", "verify", "-CAfile", ca, "-purpose", "sslclient", crt])
                self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
                p = run(["openssl", "verify", "-CAfile", ca, "-purpose", "sslserver", crt])
                self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
                text = run(["openssl", "x509", "-in", crt, "-noout", "-text"]).stdout
                self.assertIn("URI:" + uri, text)
                self.assertIn("prime256v1", text)
                self.assertIn("Digital Signature", text)
                self.assertIn("TLS Web Server Authentication", text)
                self.assertIn("TLS Web Client Authentication", text)
                with open(os.path.join(d, "ca.crt")) as a, open(ca) as b:
                    self.assertEqual(a.read(), b.read())
                for peer in NODES:
                    if peer == org:
                        continue
                    # the node's certificate is its own CA's: the peer's CA cannot vouch for it
                    p = run(["openssl", "verify", "-CAfile", cas[peer], crt])
                    self.assertNotEqual(p.returncode, 0, "%s's CA verifies %s's certificate" % (peer, org))
                    with open(os.path.join(d, "peer-cas", peer + ".crt")) as a, open(cas[peer]) as b:
                        self.assertEqual(a.read(), b.read(), "peer-cas/%s.crt is %s's CA" % (peer, peer))

    def test_make_admin_tokens_output(self):
        for org in NODES:
            with self.subTest(node=org):
                path = os.path.join(self.tokens, org, "admin.token")
                self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o400)
                self.assertRegex(read_token(path), r"^[0-9a-f]{64}$")
        d = os.path.join(self.dir, "tokens-again")
        make_admin_tokens(d)
        before = {org: read_token(os.path.join(d, org, "admin.token")) for org in NODES}
        self.assertNotEqual(before["acme-corp"], before["partner-labs"])
        make_admin_tokens(d)  # kept
        self.assertEqual({org: read_token(os.path.join(d, org, "admin.token")) for org in NODES}, before)
        make_admin_tokens(d, "rotate", "acme-corp")
        self.assertNotEqual(read_token(os.path.join(d, "acme-corp", "admin.token")), before["acme-corp"])
        self.assertEqual(read_token(os.path.join(d, "partner-labs", "admin.token")), before["partner-labs"])

    def check(self, cfg: dict, manifests: dict, certs: str,
              name: str) -> subprocess.CompletedProcess:
        """Write cfg with its paths rewritten (tls.* to the directory certs,
        admin.token_file to a token of make-admin-tokens.sh, manifests_dir and
        audit to a temp dir holding the manifests), then run `fedproxy check` on it."""
        d = tempfile.mkdtemp(prefix=name + "-", dir=self.dir)
        cfg = copy.deepcopy(cfg)
        localize_certs(cfg, certs)
        self.assertTrue(cfg["admin"].get("token_file"), "%s: no admin token configured" % name)
        cfg["admin"]["token_file"] = os.path.join(self.tokens, cfg["node"]["org"], "admin.token")
        if cfg.get("audit"):
            cfg["audit"]["path"] = os.path.join(d, "audit.jsonl")
        peers = os.path.join(d, "peers")
        os.mkdir(peers)
        for fname, text in manifests.items():
            with open(os.path.join(peers, fname), "w") as f:
                f.write(text)
        cfg["manifests_dir"] = peers
        path = os.path.join(d, "fedproxy.json")
        with open(path, "w") as f:
            json.dump(cfg, f, indent=2)
        return run_cli(["check", "--config", path])

    def assert_check_ok(self, p, what):
        self.assertEqual(p.returncode, 0, "%s: fedproxy check failed:\n%s%s"
                         % (what, p.stdout, p.stderr))
        self.assertIn("OK", p.stdout)
        self.assertNotIn("warning: admin.", p.stdout, what)
        # every peer names its own CA: no shared-bundle warning (a 30-day demo
        # certificate may still warn that it expires within 30 days)
        self.assertNotIn("without trust anchors of their own", p.stdout, what)

    def test_compose_configs_pass_check(self):
        for org in NODES:
            with self.subTest(node=org):
                cfg, manifests = compose_node(org)
                self.assertEqual(cfg["tls"]["cert"], "/etc/fedproxy/certs/tls.crt")
                self.assert_check_ok(self.check(cfg, manifests, os.path.join(self.pki, org),
                                                "compose-" + org),
                                     "examples/docker-compose/%s/fedproxy.json" % org)

    def test_kubernetes_config_passes_check(self):
        docs = [d for _, d in load_k8s()]
        cms = [d for d in docs if d["kind"] == "ConfigMap"]
        cfg_cm = next(c for c in cms if "fedproxy.json" in c["data"])
        cfg = json.loads(cfg_cm["data"]["fedproxy.json"])
        manifests = {}
        for c in cms:
            if c is not cfg_cm:
                manifests.update(c["data"])
        node = cfg["node"]["org"]
        self.assertIn(node, NODES)
        self.assert_check_ok(self.check(cfg, manifests, os.path.join(self.pki, node), "k8s"),
                             "the fedproxy.json of examples/kubernetes/configmap.yaml")

    def test_world_readable_key_fails_check(self):
        # why the keys are 0640 here and the Secret is mounted 0440: a 0644 key
        # (a Kubernetes Secret's default mode) is refused
        d = os.path.join(self.dir, "open-key")
        shutil.copytree(os.path.join(self.pki, "acme-corp"), d)
        os.chmod(os.path.join(d, "tls.key"), 0o644)
        cfg, manifests = compose_node("acme-corp")
        p = self.check(cfg, manifests, d, "open-key")
        self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
        self.assertIn("world-readable", p.stdout + p.stderr)


def compose_node(org: str):
    """(fedproxy.json as a dict, {manifest file name: text}) of a compose node."""
    d = os.path.join(COMPOSE_DIR, org)
    with open(os.path.join(d, "fedproxy.json")) as f:
        cfg = json.load(f)
    manifests = {}
    peers = os.path.join(d, cfg["manifests_dir"])
    for name in sorted(os.listdir(peers)):
        with open(os.path.join(peers, name)) as f:
            manifests[name] = f.read()
    return cfg, manifests


# --- the compose example's two nodes, run for real on loopback ----------------------

def http_via_egress(egress_port: int, peer: str, target: str, method: str = "GET"):
    """The app's call to a peer: plain HTTP to its fedproxy's egress, Host = peer slug."""
    c = http.client.HTTPConnection("127.0.0.1", egress_port, timeout=20)
    try:
        c.request(method, target, headers={"Host": peer, "Connection": "close"})
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


class ComposeFederationTest(unittest.TestCase):
    """The compose example's configs and manifests, with only addresses and paths
    rewritten for 127.0.0.1, and the PKI from make-pki.sh: the two nodes federate."""

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="fedtest-compose-run-")
        cls.pki = os.path.join(cls.dir, "pki")
        make_pki(cls.pki)
        tokens = os.path.join(cls.dir, "tokens")
        make_admin_tokens(tokens)
        cls.tokens = {org: read_token(os.path.join(tokens, org, "admin.token")) for org in NODES}
        ingress = {org: free_port() for org in NODES}
        cls.backends, cls.proxies = {}, {}
        try:
            for org in NODES:
                cls.backends[org] = Backend().start()
            for org in NODES:
                cfg, manifests = compose_node(org)
                node_dir = os.path.join(cls.dir, org)
                peers = os.path.join(node_dir, "peers")
                os.makedirs(peers)
                # manifests: the compose service names become 127.0.0.1:<port>
                for name, text in manifests.items():
                    m = json.loads(text)
                    m["endpoints"] = ["https://127.0.0.1:%d" % ingress[m["org"]]]
                    with open(os.path.join(peers, name), "w") as f:
                        json.dump(m, f)
                localize_certs(cfg, os.path.join(cls.pki, org))
                cfg["node"]["endpoints"] = ["https://127.0.0.1:%d" % ingress[org]]
                cfg["ingress"].update(listen="127.0.0.1:%d" % ingress[org],
                                      upstream=cls.backends[org].address)
                cfg["egress"]["listen"] = "127.0.0.1:0"
                cfg["egress"]["heartbeat_interval_ms"] = 500
                cfg["admin"]["listen"] = "127.0.0.1:0"
                cfg["admin"]["token_file"] = os.path.join(tokens, org, "admin.token")
                cfg["manifests_dir"] = peers
                cfg["audit"]["path"] = os.path.join(node_dir, "audit.jsonl")
                if cfg.get("rate_limits", {}).get("backend") == "redis":
                    # no valkey here: a port nothing listens on, so the node
                    # runs on its local fallback buckets (rps / replicas)
                    cfg["rate_limits"]["redis_url"] = "redis://127.0.0.1:%d/0" % free_port()
                cls.proxies[org] = Proxy(cfg, wait_for=("ingress", "egress", "admin")).start()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        for p in cls.proxies.values():
            p.stop()
        for b in cls.backends.values():
            b.stop()
        if not os.environ.get("FEDTEST_KEEP"):
            shutil.rmtree(cls.dir, ignore_errors=True)

    def egress(self, org):
        return self.proxies[org].ports["egress"]

    def last_request(self, org, path_prefix):
        reqs = self.backends[org].wait_for(
            lambda rs: [r for r in rs if r.target.startswith(path_prefix)], timeout=5)
        self.assertTrue(reqs, "%s's app got no request for %s" % (org, path_prefix))
        return reqs[-1]

    def test_partner_labs_calls_acme_corp(self):
        status, body = http_via_egress(self.egress("partner-labs"), "acme-corp",
                                       "/api/v1/tasks?limit=100000")
        self.assertEqual(status, 200, body[:300])
        req = self.last_request("acme-corp", "/api/v1/tasks")
        self.assertEqual(req.header("x-federation-peer"), "partner-labs")
        self.assertEqual(req.header("x-federation-entity"), NODES["partner-labs"])
        self.assertEqual(req.header("x-federation-grant"), "7d0c6a8e-3f7b-4e55-9a51-2b7f4c1d9e21")
        self.assertEqual(req.header("x-federation-resource"), "tasks")
        self.assertEqual(req.target, "/api/v1/tasks?limit=100", "limit cut to max_rows_per_query")

    def test_acme_corp_calls_partner_labs(self):
        status, body = http_via_egress(self.egress("acme-corp"), "partner-labs", "/api/v1/datasets")
        self.assertEqual(status, 200, body[:300])
        req = self.last_request("partner-labs", "/api/v1/datasets")
        self.assertEqual(req.header("x-federation-peer"), "acme-corp")
        self.assertEqual(req.header("x-federation-entity"), NODES["acme-corp"])

    def test_denials(self):
        for org, peer, method, target, status, code in (
                ("partner-labs", "acme-corp", "GET", "/api/v1/credentials", 403,
                 "resource_not_granted"),
                ("partner-labs", "acme-corp", "DELETE", "/api/v1/tasks/1", 403,
                 "method_not_allowed"),
                ("acme-corp", "partner-labs", "GET", "/api/v1/admin", 403,
                 "resource_not_granted"),
                ("acme-corp", "partner-labs", "GET", "/elsewhere", 403, "no_route")):
            with self.subTest(caller=org, target=target, method=method):
                got, body = http_via_egress(self.egress(org), peer, target, method)
                self.assertEqual(got, status, body[:300])
                self.assertEqual(json.loads(body)["error"], code)
        for org in NODES:
            self.assertFalse([r for r in self.backends[org].snapshot()
                              if r.target.startswith(("/api/v1/credentials", "/api/v1/admin",
                                                      "/elsewhere"))
                              or r.method == "DELETE"],
                             "a refused request reached %s's app" % org)

    def test_own_ca_cannot_speak_for_the_peer(self):
        # acme-corp's own CA is in acme-corp's trust store, but partner-labs'
        # anchor is partner-labs' CA: a certificate with partner-labs' URI
        # from acme-corp's CA is not partner-labs.
        ca = os.path.join(self.pki, "ca", "acme-corp")
        d = tempfile.mkdtemp(dir=self.dir)
        key, csr, crt, ext = (os.path.join(d, n) for n in ("k.pem", "r.csr", "c.pem", "ext"))
        with open(ext, "w") as f:
            f.write("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
                    "extendedKeyUsage=clientAuth\nsubjectAltName=URI:%s\n" % NODES["partner-labs"])
        for cmd in (["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                     "-nodes", "-keyout", key, "-out", csr, "-subj", "/CN=not partner-labs"],
                    ["openssl", "x509", "-req", "-in", csr, "-CA", os.path.join(ca, "ca.crt"),
                     "-CAkey", os.path.join(ca, "ca.key"), "-set_serial", "7", "-days", "1",
                     "-extfile", ext, "-out", crt]):
            p = run(cmd)
            self.assertEqual(p.returncode, 0, p.stderr)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        ctx.load_verify_locations(os.path.join(ca, "ca.crt"))
        ctx.load_cert_chain(crt, key)
        port = int(self.proxies["acme-corp"].config["ingress"]["listen"].rsplit(":", 1)[1])
        c = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=20)
        try:
            c.request("GET", "/api/v1/tasks?impostor=1")
            r = c.getresponse()
            body = r.read()
        finally:
            c.close()
        self.assertEqual(r.status, 403, body[:300])
        self.assertEqual(json.loads(body)["error"], "untrusted_issuer")
        self.assertFalse([q for q in self.backends["acme-corp"].snapshot() if "impostor" in q.target])

    def test_peers_become_active(self):
        for org in NODES:
            deadline = time.monotonic() + 15
            while True:
                peers = admin_status(self.proxies[org].admin_port, self.tokens[org])["peers"]
                states = {p["org"]: p.get("state") for p in peers}
                if states and all(s == "active" for s in states.values()):
                    break
                self.assertLess(time.monotonic(), deadline, "%s sees peers %s" % (org, states))
                time.sleep(0.2)

    def test_admin_api_needs_the_node_token(self):
        for org in NODES:
            with self.subTest(node=org):
                port = self.proxies[org].admin_port
                self.assertEqual(admin_request(port, "GET", "/status")[0], 401)
                self.assertEqual(admin_request(port, "POST", "/reload")[0], 401)
                other = self.tokens["partner-labs" if org == "acme-corp" else "acme-corp"]
                self.assertEqual(admin_request(port, "GET", "/status", token=other)[0], 401)
                self.assertEqual(admin_request(port, "GET", "/status", token=self.tokens[org])[0], 200)
                self.assertEqual(admin_request(port, "GET", "/healthz")[0], 200)

    def test_zz_make_pki_renew_rotates_under_the_running_proxy(self):
        admin = self.proxies["acme-corp"].admin_port
        token = self.tokens["acme-corp"]
        before = admin_status(admin, token)["certificate"]["fingerprint_sha256"]
        make_pki(self.pki, "renew", "acme-corp")
        with open(os.path.join(self.pki, "acme-corp", "tls.crt")) as f:
            pem = f.read()
        der = ssl.PEM_cert_to_DER_cert(pem)
        want = hashlib.sha256(der).hexdigest()
        self.assertNotEqual(want, before)
        deadline = time.monotonic() + 20  # watch_interval_ms 2000 + debounce
        while True:
            now = admin_status(admin, token)
            if now["certificate"]["fingerprint_sha256"] == want:
                break
            self.assertLess(time.monotonic(), deadline, "no reload: %s" % now.get("last_reload"))
            time.sleep(0.2)
        self.assertTrue(now["last_reload"]["ok"], now["last_reload"])
        # the federation keeps working with the new certificate, both ways
        status, body = http_via_egress(self.egress("partner-labs"), "acme-corp", "/api/v1/notes")
        self.assertEqual(status, 200, body[:300])
        status, body = http_via_egress(self.egress("acme-corp"), "partner-labs", "/api/v1/datasets")
        self.assertEqual(status, 200, body[:300])


if __name__ == "__main__":
    unittest.main(verbosity=2)
