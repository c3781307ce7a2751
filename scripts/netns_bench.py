#!/usr/bin/env python
"""Real-network check of the latency emulation: the same ops over real delayed links, beside the emulation.

Real network: every party in its own Linux network namespace, joined by veth links to a bridge; in each
namespace a userspace TCP delay proxy (scripts/delay_proxy.py; this kernel has no `tc netem`) sits in
front of the party's socket and delays what reaches it by L ms one way; optionally `tc tbf` limits each
namespace's bandwidth. The runtime's own emulation is off there. Then the same ops run with the emulation
on (--latency-ms L) on loopback, and the two wall times are printed side by side.

Where namespaces cannot be made (not root, no `ip netns`), the proxies run on loopback instead and the
output says so. Every namespace, bridge, qdisc and proxy made is removed at the end, also on failure or
Ctrl-C.

Usage: sudo python scripts/netns_bench.py [--op mul,lt,relu] [--n 1000] [--latency-ms 25]
       [--method auto|dcf|compact|bits] [--repeat 3] [--bandwidth-mbps B] [--loopback] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mpc.config import Topology, localhost_topology  # noqa: E402
from mpc.localhost import default_topology, free_ports  # noqa: E402
from parties.bench_driver import run_bench  # noqa: E402

PROXY = Path(__file__).resolve().parent / "delay_proxy.py"
SUBNET = "10.213.{}.{}"


def _ip(*args: str, ns: str | None = None) -> None:
    cmd = (["ip", "netns", "exec", ns] if ns else []) + list(args)
    subprocess.run(cmd, check=True, capture_output=True, text=True)


class Network:
    """The namespaces, bridge, qdiscs and proxies of one run; `close()` removes everything it made."""

    def __init__(self, names: list[str], latency_ms: float, bandwidth_mbps: float | None, loopback: bool):
        self.names = names
        self.latency_ms = latency_ms
        self.bandwidth_mbps = bandwidth_mbps
        self.tag = f"{os.getpid() % 100000:05d}"
        self.namespaces: list[str] = []
        self.bridge: str | None = None
        self.proxies: list[subprocess.Popen[bytes]] = []
        self.keydir = tempfile.TemporaryDirectory(prefix="mpc-netns-keys-")
        self.mode = "loopback" if loopback else "namespaces"
        self.reason = "requested with --loopback" if loopback else ""

    def build(self) -> tuple[Topology, dict[str, list[str]]]:
        if self.mode == "namespaces":
            why = self._namespaces_possible()
            if why:
                self.mode, self.reason = "loopback", why
            else:
                try:
                    return self._build_namespaces()
                except (subprocess.CalledProcessError, OSError) as exc:
                    err = getattr(exc, "stderr", "") or str(exc)
                    self.close()
                    self.mode, self.reason = "loopback", f"namespace setup failed: {err.strip()}"
        return self._build_loopback()

    @staticmethod
    def _namespaces_possible() -> str:
        if os.geteuid() != 0:
            return "not root"
        if shutil.which("ip") is None:
            return "no `ip` command"
        return ""

    def _build_namespaces(self) -> tuple[Topology, dict[str, list[str]]]:
        subnet = int(self.tag) % 200 + 20
        self.bridge = f"mpcbr{self.tag}"
        _ip("ip", "link", "add", "name", self.bridge, "type", "bridge")
        _ip("ip", "link", "set", self.bridge, "up")
        specs, prefixes = [], {}
        for i, name in enumerate(self.names):
            ns = f"mpcbench{self.tag}{i}"
            _ip("ip", "netns", "add", ns)
            self.namespaces.append(ns)
            outer, inner = f"mpcv{self.tag}{i}", f"mpcp{self.tag}{i}"
            _ip("ip", "link", "add", outer, "type", "veth", "peer", "name", inner)
            _ip("ip", "link", "set", inner, "netns", ns)
            _ip("ip", "link", "set", outer, "master", self.bridge)
            _ip("ip", "link", "set", outer, "up")
            address = SUBNET.format(subnet, i + 1)
            _ip("ip", "addr", "add", f"{address}/24", "dev", inner, ns=ns)
            _ip("ip", "link", "set", inner, "up", ns=ns)
            _ip("ip", "link", "set", "lo", "up", ns=ns)
            if self.bandwidth_mbps:
                _ip("tc", "qdisc", "add", "dev", inner, "root", "tbf", "rate", f"{self.bandwidth_mbps}mbit",
                    "burst", "256kb", "latency", "500ms", ns=ns)
            port, inner_port = 7000 + i, 17000 + i
            self._proxy(f"{address}:{port}", f"127.0.0.1:{inner_port}", ns)
            role = "helper" if name == "helper" else "compute"
            specs.append({"name": name, "role": role, "host": address, "port": port,
                          "bind": f"127.0.0.1:{inner_port}"})
            prefixes[name] = ["ip", "netns", "exec", ns]
        return self._topology(specs), prefixes

    def _build_loopback(self) -> tuple[Topology, dict[str, list[str]]]:
        ports = free_ports(2 * len(self.names))
        specs = []
        for i, name in enumerate(self.names):
            port, inner = ports[2 * i], ports[2 * i + 1]
            self._proxy(f"127.0.0.1:{port}", f"127.0.0.1:{inner}", None)
            specs.append({"name": name, "role": "helper" if name == "helper" else "compute", "host": "127.0.0.1",
                          "port": port, "bind": f"127.0.0.1:{inner}"})
        return self._topology(specs), {}

    def _topology(self, specs: list[dict[str, object]]) -> Topology:
        """The parties on their test hosts, with fresh CURVE keys (links encrypted, as in a deployment)."""
        from mpc.config import build_topology
        from mpc.keys import generate

        paths = generate(self.keydir.name, [str(s["name"]) for s in specs])
        for spec in specs:
            spec["public_key"], spec["secret_key"] = (str(p) for p in paths[str(spec["name"])])
        return build_topology(specs, name="netns-bench", source="<netns bench>", session={"timeout_s": 120})

    def _proxy(self, listen: str, target: str, ns: str | None) -> None:
        cmd = [sys.executable, str(PROXY), "--listen", listen, "--to", target, "--delay-ms", str(self.latency_ms)]
        if ns:
            cmd = ["ip", "netns", "exec", ns, *cmd]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.proxies.append(proc)
        assert proc.stdout is not None
        line = proc.stdout.readline()  # the proxy prints once it listens
        if not line:
            raise OSError(f"delay proxy {listen} did not start: {proc.stderr.read().decode() if proc.stderr else ''}")

    def close(self) -> None:
        for proc in self.proxies:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.proxies:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.proxies.clear()
        self.keydir.cleanup()
        for ns in self.namespaces:  # deleting a namespace deletes its veth end, hence the pair, and qdiscs
            subprocess.run(["ip", "netns", "pids", ns], capture_output=True)
            with contextlib.suppress(subprocess.CalledProcessError):
                _ip("ip", "netns", "del", ns)
        self.namespaces.clear()
        if self.bridge:
            with contextlib.suppress(subprocess.CalledProcessError):
                _ip("ip", "link", "del", self.bridge)
            self.bridge = None


@contextlib.contextmanager
def network(names: list[str], latency_ms: float, bandwidth_mbps: float | None, loopback: bool) -> Iterator[Network]:
    net = Network(names, latency_ms, bandwidth_mbps, loopback)
    previous = signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        yield net
    finally:
        net.close()
        signal.signal(signal.SIGTERM, previous)


def compare(ops: list[str], n: int, latency_ms: float, method: str, repeat: int, bandwidth_mbps: float | None,
            loopback: bool) -> dict[str, object]:
    names = [p.name for p in localhost_topology(2).parties]
    with network(names, latency_ms, bandwidth_mbps, loopback) as net:
        topo, prefixes = net.build()
        t0 = time.perf_counter()
        real = run_bench(topo, ops, n, repeat, [None], None, method, prefixes=prefixes)
        real_s = time.perf_counter() - t0
        mode, reason = net.mode, net.reason
    emulated = run_bench(default_topology(), ops, n, repeat, [latency_ms], bandwidth_mbps, method)
    rows = []
    for r, e in zip(real, emulated, strict=True):
        rows.append({"op": r["op"], "method": r["method"], "rounds": r["rounds"], "rounds_emulated": e["rounds"],
                     "n": n, "latency_ms": latency_ms, "real_wall_s": r["wall_s"], "emulated_wall_s": e["wall_s"],
                     "difference": (r["wall_s"] - e["wall_s"]) / e["wall_s"] if e["wall_s"] else None,
                     "correct": r["correct"] and e["correct"]})
    return {"mode": mode, "fallback_reason": reason, "bench_s": real_s, "rows": rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--op", default="mul,lt,relu")
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--latency-ms", type=float, default=25.0)
    ap.add_argument("--method", default="auto", choices=["auto", "dcf", "compact", "bits"])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--bandwidth-mbps", type=float, default=None)
    ap.add_argument("--loopback", action="store_true", help="delay proxies on loopback, no namespaces")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    try:
        result = compare(args.op.split(","), args.n, args.latency_ms, args.method, args.repeat, args.bandwidth_mbps,
                         args.loopback)
    except KeyboardInterrupt:
        print("interrupted; everything made was removed", file=sys.stderr)
        sys.exit(130)
    if args.json:
        print(json.dumps(result))
        return
    where = ("each party in its own network namespace (veth + bridge)" if result["mode"] == "namespaces"
             else f"delay proxies on loopback ({result['fallback_reason']})")
    print(f"real links: {where}; {args.latency_ms:g} ms one-way; n = {args.n:,}; medians over {args.repeat}")
    print(f"{'op':<6} {'method':<7} {'rounds':>6} {'emulated s':>11} {'real s':>9} {'real vs emulated':>17}")
    for r in result["rows"]:
        print(f"{r['op']:<6} {r['method']:<7} {r['rounds']:>6} {r['emulated_wall_s']:>11.4f} {r['real_wall_s']:>9.4f}"
              f" {r['difference']:>+16.1%}")


if __name__ == "__main__":
    main()
