#!/usr/bin/env python3
"""A tiny example "local app": answers every request with JSON that shows what
fedproxy handed over (method, path, the identity headers it added, and the
body size). Usage: app.py PORT_FILE  (binds 127.0.0.1:0 and writes the port)."""
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        seen = {k: v for k, v in self.headers.items()
                if k.lower().startswith(("x-federation-", "x-forwarded-client-cert", "x-request-id"))}
        out = json.dumps({"app": "example-app", "method": self.command, "path": self.path,
                          "identity_headers": seen, "body_bytes": len(body)}, indent=2).encode() + b"\n"
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(out)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _answer

    def log_message(self, fmt, *args):
        sys.stderr.write("example-app: " + (fmt % args) + "\n")


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    with open(sys.argv[1], "w") as f:
        f.write(str(server.server_address[1]))
    server.serve_forever()


if __name__ == "__main__":
    main()
