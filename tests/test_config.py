"""Topology validation: shipped configs load; bad ones list every problem with file and field."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from mpc.cli import cli
from mpc.config import ConfigError, load_topology

CONFIGS = Path(__file__).resolve().parent.parent / "configs"

GOOD = """
name: t
parties:
  - {name: bank_a, role: compute, host: 127.0.0.1, port: 7001}
  - {name: bank_b, role: compute, host: 127.0.0.1, port: 7002}
  - {name: helper, role: helper, host: 127.0.0.1, port: 7003}
"""


@pytest.mark.parametrize("name", ["local-2banks-helper", "wan-2banks-helper", "local-3banks-helper"])
def test_shipped_configs_load(name: str) -> None:
    topo = load_topology(CONFIGS / f"{name}.yaml")
    assert topo.helper is not None and topo.helper.name == "helper"
    assert len(topo.compute_parties) >= 2


def test_wan_config_has_latency_and_bandwidth() -> None:
    topo = load_topology(CONFIGS / "wan-2banks-helper.yaml")
    link = topo.link("bank_a", "bank_b")
    assert link.latency_ms == 25 and link.bandwidth_mbps == 100


def test_per_link_override_and_cli_override() -> None:
    topo = load_topology(CONFIGS / "local-3banks-helper.yaml")
    assert topo.link("bank_c", "bank_a").latency_ms == 5
    assert topo.link("bank_a", "bank_b").latency_ms == 0
    over = topo.with_network(latency_ms=12, bandwidth_mbps=50)
    assert over.link("bank_a", "bank_c").latency_ms == 12
    assert over.link("bank_a", "bank_b").bandwidth_mbps == 50


BAD = {
    "unknown party in link": (
        GOOD + "network:\n  links:\n    - {between: [bank_a, bank_z], latency_ms: 3}\n",
        "network.links[0].between: unknown party 'bank_z'",
    ),
    "duplicate name": (GOOD.replace("name: bank_b", "name: bank_a"), "parties[1].name: duplicate party name"),
    "duplicate port": (GOOD.replace("7002", "7001"), "parties[1] (bank_b).port: 127.0.0.1:7001 is already used"),
    "no compute party": (GOOD.replace("role: compute", "role: helper"), "no party has role 'compute'"),
    "two helpers": (GOOD.replace("bank_b, role: compute", "bank_b, role: helper"), "at most one helper"),
    "negative latency": (GOOD + "network: {latency_ms: -5}\n", "network.latency_ms: Input should be greater"),
    "port out of range": (GOOD.replace("7003", "70000"), "parties[2] (helper).port: Input should be less"),
    "frac_bits too large": (GOOD + "frac_bits: 99\n", "frac_bits: Input should be less than or equal to 40"),
    "zero bandwidth": (GOOD + "network: {bandwidth_mbps: 0}\n", "network.bandwidth_mbps: Input should be greater"),
    "unknown role": (GOOD.replace("role: helper", "role: dealer"), "parties[2] (helper).role: Input should be"),
    "unknown field": (GOOD + "latency: 5\n", "latency: unknown field"),
    "yaml syntax": (GOOD + "network: {latency_ms: 5\n", "YAML syntax error at line"),
    "not a mapping": ("- just\n- a list\n", "expected a mapping"),
    "missing parties": ("name: t\n", "parties: Field required"),
    "bad party name": (GOOD.replace("name: bank_a", "name: 'bank a'"), "parties[0] (bank a).name: String should match"),
    "timeout not a number": (GOOD + "timeout_s: soon\n", "timeout_s: Input should be a valid number"),
    "missing public key file": (
        GOOD.replace("port: 7001}", "port: 7001, public_key: keys/bank_a.key}")
            .replace("port: 7002}", "port: 7002, public_key: keys/bank_b.key}")
            .replace("port: 7003}", "port: 7003, public_key: keys/helper.key}"),
        "parties[0] (bank_a).public_key: no such file",
    ),
    "dcf with three parties": (
        GOOD.replace("  - {name: helper", "  - {name: bank_c, role: compute, port: 7004}\n  - {name: helper")
        + "comparison: dcf\n",
        "comparison: 'dcf' works with exactly two compute parties",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_config_names_file_and_field(case: str, tmp_path: Path) -> None:
    text, expected = BAD[case]
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_topology(path)
    message = str(info.value)
    assert expected in message
    assert all(line.startswith(str(path)) for line in message.splitlines())


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(GOOD.replace("7003", "70000").replace("role: compute", "role: banker", 1) + "frac_bits: -1\n")
    with pytest.raises(ConfigError) as info:
        load_topology(path)
    assert len(info.value.problems) == 3


def test_yaml_error_gives_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("name: t\nparties:\n  - {name: a, role: compute, port: 1\n")
    with pytest.raises(ConfigError, match="line 4"):
        load_topology(path)


def test_missing_file() -> None:
    with pytest.raises(ConfigError, match="cannot read file"):
        load_topology("/nonexistent/topology.yaml")


def test_cli_check_good_and_bad(tmp_path: Path) -> None:
    runner = CliRunner()
    ok = runner.invoke(cli, ["check", str(CONFIGS / "local-2banks-helper.yaml")])
    assert ok.exit_code == 0, ok.output
    assert "is valid" in ok.output and "bank_a" in ok.output
    bad = tmp_path / "bad.yaml"
    bad.write_text(GOOD.replace("7002", "7001") + "frac_bits: 99\n")
    res = runner.invoke(cli, ["check", str(bad)])
    assert res.exit_code == 2
    assert f"{bad}: frac_bits" in res.output
    assert "Traceback" not in res.output
