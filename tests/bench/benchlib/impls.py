"""The three implementations of the same topology, and the shared backend:

    wrk -> [egress] -> TLS 1.3 mTLS (ECDSA P-256) -> [ingress] -> backend nginx

Every implementation runs one egress process and one ingress process, each with
one worker (fedproxy: "workers": N, default 1; nginx: master_process off, so
one process; HAProxy: nbthread 1), pinned with taskset. Modes:

    keepalive   egress keeps idle mTLS connections to the ingress (pools of 256)
    hs_full     a new egress->ingress connection per request, no resumption
    hs_resumed  a new egress->ingress connection per request, TLS 1.3 resumption

The ingress always keeps its backend connections alive. Configs, PEM files,
logs and pid files live in temp dirs removed by cleanup().
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile

from .common import (INTEGRATION, Service, check_affinity, free_port, taskset_prefix, wait_port)

if INTEGRATION not in sys.path:
    sys.path.insert(0, INTEGRATION)

from fedtest.pki import NODE_URI, PARTNER_URI, Pki  # noqa: E402
from fedtest.policy import grant, new_id, peer  # noqa: E402
from fedtest.proxy import Proxy, base_config, clean_env, fedproxy_bin, write_config  # noqa: E402

BODY = "x" * 63 + "\n"        # 64 bytes
BIG_BYTES = 1 << 20           # 1 MiB
ROUTE = "/api/v1/tasks"
BIG_PATH = ROUTE + "/big"
HOST = "partner-labs"         # the Host header wrk sends (fedproxy picks the peer by it)
POOL = 256                    # idle egress->ingress / ingress->backend connections kept
SUITES = "TLS_AES_256_GCM_SHA384:TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256"
MODES = ("keepalive", "hs_full", "hs_resumed")


class BenchPki:
    """The openssl-made test PKI (ECDSA P-256 everywhere) plus the combined
    cert+key PEM files HAProxy wants. ingress = partner-labs' node certificate
    (URI SAN partner-labs, DNS localhost); egress = acme-corp's (pki.server)."""

    def __init__(self):
        self.pki = Pki.create()
        p = self.pki
        self.ca = p.ca.crt
        b = p.issue_client("bench-ingress", PARTNER_URI, dns=("localhost",), server=True)
        self.ingress_crt, self.ingress_key = b.crt, b.key
        self.ingress_issued = b
        self.egress_crt, self.egress_key = p.server.crt, p.server.key
        self.ingress_pem = p.path("ingress-combined.pem")
        self.egress_pem = p.path("egress-combined.pem")
        for out, parts in ((self.ingress_pem, (b.crt, b.key)), (self.egress_pem, (p.server.crt, p.server.key))):
            with open(out, "w") as f:
                for part in parts:
                    with open(part) as g:
                        f.write(g.read())
            os.chmod(out, 0o600)

    def cleanup(self):
        self.pki.cleanup()


def _nginx_bin() -> str:
    return shutil.which("nginx") or "/usr/sbin/nginx"


def _haproxy_bin() -> str:
    return shutil.which("haproxy") or "/usr/sbin/haproxy"


def _nginx_common(d: str) -> str:
    return ("pid %s/nginx.pid;\nerror_log %s/error.log warn;\n"
            "events { worker_connections 8192; }\n" % (d, d))


def _nginx_http_common(d: str) -> str:
    return ("  access_log off;\n"
            "  client_body_temp_path %s/client_body; proxy_temp_path %s/proxy;\n"
            "  fastcgi_temp_path %s/fastcgi; uwsgi_temp_path %s/uwsgi; scgi_temp_path %s/scgi;\n"
            % (d, d, d, d, d))


class NginxProcess(Service):
    """nginx in the foreground as one process (`master_process off`): one worker,
    and the PID we started is the one that serves."""

    def __init__(self, name: str, conf_text_fn, cpus: str | None):
        d = tempfile.mkdtemp(prefix="fedbench-%s-" % name)
        self.conf = os.path.join(d, "nginx.conf")
        with open(self.conf, "w") as f:
            f.write(conf_text_fn(d))
        super().__init__(name, [_nginx_bin(), "-p", d, "-e", os.path.join(d, "error.log"), "-c", self.conf,
                                "-g", "daemon off; master_process off;"], cpus, workdir=d)


class Backend:
    """The local app behind every ingress: nginx, one process, 64-byte body on
    every path and a 1 MiB static file on BIG_PATH (sendfile)."""

    def __init__(self, cpus: str | None):
        self.port = free_port()
        port = self.port

        def conf(d):
            www = os.path.join(d, "www", BIG_PATH.lstrip("/"))
            os.makedirs(os.path.dirname(www), exist_ok=True)
            with open(www, "wb") as f:
                f.write(os.urandom(BIG_BYTES))
            return _nginx_common(d) + """http {
%s  sendfile on; tcp_nopush on;
  server {
    listen 127.0.0.1:%d backlog=4096;
    keepalive_requests 1000000; keepalive_timeout 120s;
    location %s { root %s/www; default_type application/octet-stream; }
    location / { default_type text/plain; return 200 "%s"; }
  }
}
""" % (_nginx_http_common(d), port, BIG_PATH, d, BODY.replace("\n", "\\n"))

        self.svc = NginxProcess("backend", conf, cpus)

    def start(self) -> "Backend":
        self.svc.start()
        if not wait_port(self.port, 10, self.svc.proc):
            raise RuntimeError("backend nginx did not start: %s" % self.svc.log_tail())
        return self

    def stop(self):
        self.svc.stop()
        self.svc.cleanup()


class Endpoint:
    """A started egress or ingress: its port, its PID (for RSS/affinity) and stop()."""

    def __init__(self, port: int, pid: int, stopper, cpus: str | None, log_fn=None, admin_port: int | None = None):
        self.port = port
        self.pid = pid
        self.admin_port = admin_port  # fedproxy only: /status
        self._stop = stopper
        self.cpus = cpus
        self._log_fn = log_fn

    def affinity_problems(self) -> list[str]:
        return check_affinity(self.pid, self.cpus) if self.cpus else []

    def log_tail(self) -> str:
        return self._log_fn() if self._log_fn else ""

    def stop(self):
        if self._stop:
            self._stop()
            self._stop = None


@contextlib.contextmanager
def running_pair(impl: "Implementation", mode: str = "keepalive"):
    """Ingress, then egress pointed at it; both stopped (by PID) on the way out."""
    ing = impl.start_ingress()
    eg = None
    try:
        eg = impl.start_egress(mode, ing.port)
        yield eg, ing
    finally:
        if eg:
            eg.stop()
        ing.stop()


class Implementation:
    name = "?"
    tls_library = "?"

    def __init__(self, pki: BenchPki, backend_port: int, cpu_egress: str | None, cpu_ingress: str | None):
        self.pki = pki
        self.backend_port = backend_port
        self.cpu_egress = cpu_egress
        self.cpu_ingress = cpu_ingress

    def tools(self) -> list[str]:
        return []

    def version(self) -> str:
        return "?"

    def start_ingress(self) -> Endpoint:
        raise NotImplementedError

    def start_egress(self, mode: str, ingress_port: int) -> Endpoint:
        raise NotImplementedError

    def describe(self, mode: str) -> str:
        return ""


# --- fedproxy ----------------------------------------------------------------------------

class PinnedProxy(Proxy):
    """fedtest.proxy.Proxy started under `taskset -c CPUS` (so every thread it
    creates inherits the placement)."""

    def __init__(self, config: dict, cpus: str | None, **kw):
        super().__init__(config, **kw)
        self.cpus = cpus

    def start(self) -> "PinnedProxy":
        import threading
        self.config_path = write_config(self.config, self.dir)
        self.proc = subprocess.Popen(
            taskset_prefix(self.cpus) + [fedproxy_bin(), "run", "--config", self.config_path],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=clean_env(self.env), cwd=self.dir)
        for stream, fn in ((self.proc.stderr, self._on_stderr), (self.proc.stdout, self._on_stdout)):
            t = threading.Thread(target=self._pump, args=(stream, fn), daemon=True)
            t.start()
            self._threads.append(t)
        for name in self.wait_for:
            self.wait_listening(name, self.start_timeout)
        return self


class Fedproxy(Implementation):
    name = "fedproxy"
    tls_library = "mbedTLS"

    def __init__(self, *a, workers: int = 1, **kw):
        super().__init__(*a, **kw)
        self.workers = workers

    def tools(self):
        return []

    def version(self):
        try:
            return subprocess.run([fedproxy_bin(), "version"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.TimeoutExpired, RuntimeError):
            return "?"

    def _timeouts(self) -> dict:
        # Idle connections held open for the RSS figure must outlive their
        # phase: the same 60 s as nginx's and HAProxy's defaults here.
        return {"handshake_ms": 10000, "header_ms": 60000, "idle_ms": 60000,
                "upstream_connect_ms": 5000, "upstream_response_ms": 60000}

    def ingress_grant(self) -> dict:
        """The one grant of the ingress (a benchmark may add limits to it)."""
        g = grant(new_id(), "acme-corp", ["tasks"], methods=["GET", "HEAD"])
        g.pop("rate_limit", None)  # no rate limit
        return g

    def ingress_config(self) -> dict:
        p = self.pki
        cfg = base_config(p.pki, "127.0.0.1:%d" % self.backend_port,
                          node={"org": "partner-labs", "entity_uri": PARTNER_URI},
                          tls={"cert": p.ingress_crt, "key": p.ingress_key})
        cfg["peers"] = [peer("acme-corp", NODE_URI)]
        cfg["grants"] = [self.ingress_grant()]
        cfg["routes"] = [{"prefix": ROUTE, "resource": "tasks"}]
        cfg.pop("authenticate_only", None)
        cfg["workers"] = self.workers
        cfg["log_requests"] = False  # like the anchors' access_log off / no log
        cfg["timeouts"] = self._timeouts()
        cfg["ingress"]["upstream_pool_max_idle"] = POOL
        return cfg

    def start_ingress(self) -> Endpoint:
        cfg = self.ingress_config()
        px = PinnedProxy(cfg, self.cpu_ingress, wait_for=("ingress", "admin")).start()
        return Endpoint(px.ingress_port, px.pid, px.stop, self.cpu_ingress, lambda: px.tail(3000), px.admin_port)

    def start_egress(self, mode: str, ingress_port: int) -> Endpoint:
        p = self.pki
        cfg = base_config(p.pki, "127.0.0.1:%d" % free_port(), egress={"listen": "127.0.0.1:0"})
        cfg["peers"] = [peer("partner-labs", PARTNER_URI, endpoints=["https://127.0.0.1:%d" % ingress_port])]
        cfg["grants"] = []
        cfg["routes"] = [{"prefix": ROUTE, "resource": "tasks"}]
        cfg.pop("authenticate_only", None)
        cfg["workers"] = self.workers
        cfg["log_requests"] = False  # like the anchors' access_log off / no log
        cfg["timeouts"] = self._timeouts()
        # ingress.upstream_pool_max_idle also sizes the egress pools (one per
        # peer endpoint): 0 = close after every response, a new mTLS
        # connection per request.
        cfg["ingress"]["upstream_pool_max_idle"] = POOL if mode == "keepalive" else 0
        if mode == "hs_full":
            cfg["tls"]["session_tickets"] = False  # the egress neither keeps nor offers tickets
        px = PinnedProxy(cfg, self.cpu_egress, wait_for=("ingress", "egress", "admin")).start()
        return Endpoint(px.ports["egress"], px.pid, px.stop, self.cpu_egress, lambda: px.tail(3000), px.admin_port)

    def describe(self, mode):
        return {"keepalive": "egress pool: ingress.upstream_pool_max_idle=%d" % POOL,
                "hs_full": "ingress.upstream_pool_max_idle=0 on the egress, tls.session_tickets=false on the egress",
                "hs_resumed": "ingress.upstream_pool_max_idle=0 on the egress, tickets on (default)"}[mode]


# --- nginx ------------------------------------------------------------------------------

class Nginx(Implementation):
    name = "nginx"
    tls_library = "OpenSSL"

    def tools(self):
        return ["nginx"]

    def version(self):
        return "nginx " + _first_match([_nginx_bin(), "-v"], r"nginx/\S+")

    def start_ingress(self) -> Endpoint:
        p = self.pki
        port = free_port()

        def conf(d):
            return _nginx_common(d) + """http {
%s  upstream app { server 127.0.0.1:%d; keepalive %d; keepalive_requests 1000000; keepalive_timeout 120s; }
  server {
    listen 127.0.0.1:%d ssl backlog=4096;
    ssl_certificate %s; ssl_certificate_key %s;
    ssl_client_certificate %s; ssl_verify_client on; ssl_verify_depth 2;
    ssl_protocols TLSv1.3;
    ssl_conf_command Ciphersuites %s;
    ssl_session_tickets on;
    keepalive_requests 1000000; keepalive_timeout 120s;
    location / {
      proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection "";
      proxy_buffering on; proxy_buffer_size 16k; proxy_buffers 16 16k; proxy_max_temp_file_size 0;
    }
  }
}
""" % (_nginx_http_common(d), self.backend_port, POOL, port, p.ingress_crt, p.ingress_key, p.ca, SUITES)

        svc = NginxProcess("nginx-ingress", conf, self.cpu_ingress).start()
        return self._endpoint(svc, port)

    def start_egress(self, mode: str, ingress_port: int) -> Endpoint:
        p = self.pki
        port = free_port()
        keep = ("keepalive %d; keepalive_requests 1000000; keepalive_timeout 120s;" % POOL
                if mode == "keepalive" else "")
        reuse = "off" if mode == "hs_full" else "on"

        def conf(d):
            return _nginx_common(d) + """http {
%s  upstream peer { server 127.0.0.1:%d; %s }
  server {
    listen 127.0.0.1:%d backlog=4096;
    keepalive_requests 1000000; keepalive_timeout 120s;
    location / {
      proxy_pass https://peer; proxy_http_version 1.1; proxy_set_header Connection "";
      proxy_ssl_certificate %s; proxy_ssl_certificate_key %s;
      proxy_ssl_trusted_certificate %s; proxy_ssl_verify on; proxy_ssl_verify_depth 2;
      proxy_ssl_name localhost; proxy_ssl_protocols TLSv1.3;
      proxy_ssl_conf_command Ciphersuites %s;
      proxy_ssl_session_reuse %s;
      proxy_buffering on; proxy_buffer_size 16k; proxy_buffers 16 16k; proxy_max_temp_file_size 0;
    }
  }
}
""" % (_nginx_http_common(d), ingress_port, keep, port, p.egress_crt, p.egress_key, p.ca, SUITES, reuse)

        svc = NginxProcess("nginx-egress", conf, self.cpu_egress).start()
        return self._endpoint(svc, port)

    def _endpoint(self, svc: Service, port: int) -> Endpoint:
        if not wait_port(port, 10, svc.proc):
            tail = svc.log_tail() + _read(os.path.join(svc.dir, "error.log"))
            svc.stop()
            svc.cleanup()
            raise RuntimeError("%s did not start: %s" % (svc.name, tail))

        def stop():
            svc.stop()
            svc.cleanup()
        return Endpoint(port, svc.pid, stop, svc.cpus,
                        lambda: svc.log_tail() + _read(os.path.join(svc.dir, "error.log")))

    def describe(self, mode):
        return {"keepalive": "upstream keepalive %d, proxy_ssl_session_reuse on" % POOL,
                "hs_full": "no upstream keepalive, proxy_ssl_session_reuse off",
                "hs_resumed": "no upstream keepalive, proxy_ssl_session_reuse on"}[mode]


# --- HAProxy ----------------------------------------------------------------------------

class Haproxy(Implementation):
    name = "haproxy"
    tls_library = "OpenSSL"

    def tools(self):
        return ["haproxy"]

    def version(self):
        return "HAProxy " + _first_match([_haproxy_bin(), "-v"], r"(?<=version )\S+")

    def _global(self, d: str) -> str:
        return """global
  nbthread 1
  maxconn 4096
  pidfile %s/haproxy.pid
  ssl-default-bind-ciphersuites %s
  ssl-default-server-ciphersuites %s
  ssl-default-bind-options ssl-min-ver TLSv1.3
  ssl-default-server-options ssl-min-ver TLSv1.3
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  timeout http-request 60s
  timeout http-keep-alive 60s
  option http-keep-alive
""" % (d, SUITES, SUITES)

    def start_ingress(self) -> Endpoint:
        p = self.pki
        port = free_port()
        d = tempfile.mkdtemp(prefix="fedbench-haproxy-ingress-")
        cfg = os.path.join(d, "haproxy.cfg")
        with open(cfg, "w") as f:
            f.write(self._global(d) + """frontend ingress
  bind 127.0.0.1:%d ssl crt %s ca-file %s verify required ssl-min-ver TLSv1.3
  default_backend app
backend app
  http-reuse always
  server app 127.0.0.1:%d
""" % (port, p.ingress_pem, p.ca, self.backend_port))
        svc = Service("haproxy-ingress", [_haproxy_bin(), "-f", cfg, "-db"], self.cpu_ingress, workdir=d).start()
        return self._endpoint(svc, port)

    def start_egress(self, mode: str, ingress_port: int) -> Endpoint:
        p = self.pki
        port = free_port()
        d = tempfile.mkdtemp(prefix="fedbench-haproxy-egress-")
        cfg = os.path.join(d, "haproxy.cfg")
        if mode == "keepalive":
            reuse = "  http-reuse always\n"
        else:
            reuse = "  http-reuse never\n  option http-server-close\n"
        server_opts = "no-ssl-reuse" if mode == "hs_full" else ""
        with open(cfg, "w") as f:
            f.write(self._global(d) + """frontend egress
  bind 127.0.0.1:%d
  default_backend peer
backend peer
%s  server ingress 127.0.0.1:%d ssl crt %s ca-file %s verify required verifyhost localhost ssl-min-ver TLSv1.3 %s
""" % (port, reuse, ingress_port, p.egress_pem, p.ca, server_opts))
        svc = Service("haproxy-egress", [_haproxy_bin(), "-f", cfg, "-db"], self.cpu_egress, workdir=d).start()
        return self._endpoint(svc, port)

    def _endpoint(self, svc: Service, port: int) -> Endpoint:
        if not wait_port(port, 10, svc.proc):
            tail = svc.log_tail()
            svc.stop()
            svc.cleanup()
            raise RuntimeError("%s did not start: %s" % (svc.name, tail))

        def stop():
            svc.stop()
            svc.cleanup()
        return Endpoint(port, svc.pid, stop, svc.cpus, svc.log_tail)

    def describe(self, mode):
        return {"keepalive": "http-reuse always",
                "hs_full": "http-reuse never, option http-server-close, no-ssl-reuse",
                "hs_resumed": "http-reuse never, option http-server-close, SSL session reuse (default)"}[mode]


IMPLEMENTATIONS = {"fedproxy": Fedproxy, "nginx": Nginx, "haproxy": Haproxy}


def _first_match(argv, pattern):
    import re
    try:
        out = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    m = re.search(pattern, out)
    return m.group(0) if m else "?"


def _read(path: str, n: int = 3000) -> str:
    try:
        with open(path, "rb") as f:
            return f.read()[-n:].decode(errors="replace")
    except OSError:
        return ""
