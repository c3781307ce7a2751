"""`mpc serve`: the fraud demo's scoring as a long-running service (docs/serve.md).

- `source.py`: where a bank's features come from (the demo's CSV directory, or a SQLite table by URL),
  read again on reload.
- `session.py`: what the parties run inside one session: the banks' batch streams and the helper's pools
  of material dealt ahead.
- `service.py`: a bank's requests, micro-batches and session loop (a new session when a peer comes back);
  `transport.py`: links whose hello exchange survives a peer's restart.
- `http.py`: the HTTP API (aiohttp) and its OpenAPI description; `metrics.py`: Prometheus' text format.
- `commands.py`: `mpc serve` and `mpc demo serve`; `main.py`: one serving process (signals, logs);
  `demo.py`: the local demo; `local.py`: three serving processes for the tests and the benchmark.
"""
