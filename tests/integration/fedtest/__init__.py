"""fedtest: the integration-test harness of fedproxy (stdlib only).

pki      - certificates generated at test time with the openssl CLI
backend  - an in-process HTTP/1.1 test backend that records what it received
proxy    - start/stop fedproxy, read its JSON logs, mTLS clients, raw HTTP I/O
"""
