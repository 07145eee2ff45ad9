#!/usr/bin/env python3
"""Fails when an #include crosses the module directions of docs/design.md:
config/ and certwatch/ depend on nothing of ours but proxy/base/; policy/
on config/ and proxy/base/ (policy may use mbedTLS's hash functions, never
TLS or X.509); only proxy/net/ (and
certwatch's timer) include <uv.h>; the HTTP codec sees neither libuv nor
mbedTLS; the TLS engine never sees libuv."""
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INCLUDE = re.compile(r'^\s*#\s*include\s*[<"]([^>"]+)[>"]', re.M)

# directory -> list of (forbidden include prefix, why)
# policy/ and certwatch/ may include proxy/base/ (and nothing else of proxy/):
# Result/Errc there is the one error vocabulary of every module, and base
# itself depends on nothing (its own rule below), so no cycle can form.
ALLOWED = {"config/": ("proxy/base/",), "policy/": ("proxy/base/", "config/"),
           "certwatch/": ("proxy/base/",)}
RULES = {
    "config/": [("proxy/", "config is below proxy"), ("policy/", "config is below policy"),
                ("certwatch/", "config is below certwatch"), ("uv.h", "no event loop in config"),
                ("mbedtls/ssl", "no TLS in config"), ("mbedtls/x509", "no X.509 in config"),
                ("mbedtls/net", "no network I/O in config"), ("psa/", "no TLS in config"),
                ("llhttp.h", "no HTTP parsing in config")],
    "policy/": [("proxy/", "policy is pure"), ("certwatch/", "policy is pure"),
                ("uv.h", "no I/O in policy"), ("mbedtls/ssl", "no TLS in policy"),
                ("mbedtls/x509", "no TLS in policy"), ("mbedtls/net", "no I/O in policy"),
                ("psa/", "no TLS in policy"), ("llhttp.h", "no HTTP parsing in policy")],
    "certwatch/": [("proxy/", "certwatch must not depend on proxy"),
                   ("policy/", "certwatch must not depend on policy"),
                   ("config/", "certwatch must not depend on config")],
    "proxy/base/": [("proxy/", "base is the bottom layer"), ("uv.h", "base does no I/O"),
                    ("mbedtls/", "base does no TLS")],
    "proxy/http1/": [("uv.h", "the codec does no I/O"), ("mbedtls/", "the codec knows no TLS"),
                     ("proxy/net/", "the codec does no I/O"), ("proxy/core/", "lower layer"),
                     ("proxy/tls/", "the codec knows no TLS")],
    "proxy/tls/": [("uv.h", "the TLS engine does no I/O"), ("proxy/net/", "the TLS engine does no I/O"),
                   ("proxy/core/", "lower layer"), ("proxy/http1/", "TLS knows no HTTP")],
    "proxy/net/": [("proxy/core/", "net is below core"), ("proxy/app/", "net is below app")],
    "proxy/core/": [("uv.h", "only proxy/net includes uv.h"), ("proxy/app/", "core is below app")],
    "proxy/app/": [("uv.h", "only proxy/net includes uv.h (app uses net wrappers)")],
}
# The Redis protocol client (hiredis and its libuv adapter) is I/O: proxy/net's.
for _prefix, _rules in RULES.items():
    if _prefix != "proxy/net/":
        _rules.append(("hiredis/", "only proxy/net talks to Redis"))
# Narrow, documented exceptions: file -> allowed includes.
EXCEPTIONS: dict = {}


def main():
    problems = []
    checked = 0
    for top in ("config", "policy", "certwatch", "proxy"):
        for dirpath, _, files in os.walk(os.path.join(ROOT, top)):
            for name in files:
                if not name.endswith((".cpp", ".hpp", ".h")):
                    continue
                path = os.path.join(dirpath, name)
                rel = os.path.relpath(path, ROOT)
                with open(path, encoding="utf-8") as f:
                    includes = INCLUDE.findall(f.read())
                checked += 1
                for prefix, rules in RULES.items():
                    if not rel.startswith(prefix):
                        continue
                    for inc in includes:
                        for bad, why in rules:
                            if inc.startswith(bad) and not inc.startswith(prefix) \
                                    and not inc.startswith(ALLOWED.get(prefix, ())) \
                                    and inc not in EXCEPTIONS.get(rel, set()):
                                problems.append(f"{rel}: includes {inc} ({why})")
    for p in problems:
        print(p)
    print(f"layering: {checked} files checked, {len(problems)} violations")
    print(f"{1 if not problems else 0} passed, {len(problems) and 1 or 0} failed")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
