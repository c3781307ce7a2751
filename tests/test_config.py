"""Topology validation: shipped configs load; bad ones list every problem with file and field."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from mpc.config import ConfigError, load_topology
from parties.cli import cli

CONFIGS = Path(__file__).resolve().parent.parent / "configs"

GOOD = """
name: t
deployment:
  parties:
    - {name: bank_a, role: compute, host: 127.0.0.1, port: 7001}
    - {name: bank_b, role: compute, host: 127.0.0.1, port: 7002}
    - {name: helper, role: helper, host: 127.0.0.1, port: 7003}
"""
P = "deployment.parties"


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


def test_dealer_workers_default_to_the_cpus_this_process_may_use(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(GOOD)
    assert load_topology(path).dealer_worker_count() == len(os.sched_getaffinity(0))
    path.write_text(GOOD + "  dealer_workers: 1\n")
    assert load_topology(path).dealer_worker_count() == 1


BAD = {
    "unknown party in link": (
        GOOD + "network_emulation:\n  links:\n    - {between: [bank_a, bank_z], latency_ms: 3}\n",
        "network_emulation.links[0].between: unknown party 'bank_z'",
    ),
    "duplicate name": (GOOD.replace("name: bank_b", "name: bank_a"), f"{P}[1].name: duplicate party name"),
    "duplicate port": (GOOD.replace("7002", "7001"), f"{P}[1] (bank_b).port: 127.0.0.1:7001 is already used"),
    "no compute party": (GOOD.replace("role: compute", "role: helper"), "no party has role 'compute'"),
    "two helpers": (GOOD.replace("bank_b, role: compute", "bank_b, role: helper"), "at most one helper"),
    "negative latency": (GOOD + "network_emulation: {latency_ms: -5}\n",
                         "network_emulation.latency_ms: Input should be greater"),
    "port out of range": (GOOD.replace("7003", "70000"), f"{P}[2] (helper).port: Input should be less"),
    "frac_bits too large": (GOOD + "session: {frac_bits: 40}\n", "session.frac_bits: Input should be less than or "
                            "equal to 16 (every shipped function supports 10 to 16 fractional bits)"),
    "frac_bits too small": (GOOD + "session: {frac_bits: 4}\n", "session.frac_bits: Input should be greater"),
    "timeout nan": (GOOD + "session: {timeout_s: .nan}\n", "session.timeout_s: Input should be a finite number"),
    "timeout infinite": (GOOD + "session: {timeout_s: .inf}\n", "session.timeout_s: Input should be a finite number"),
    "message limit below a piece": (GOOD + "session: {max_message_mb: 0.0001}\n",
                                    "session.max_message_mb: Input should be greater than or equal to 1 (large "
                                    "frames travel in pieces of 1 MiB"),
    "buffer below the message limit": (GOOD + "session: {max_message_mb: 64, max_buffered_mb: 8}\n",
                                       "session.max_buffered_mb: 8 MB is below max_message_mb (64 MB)"),
    "input limit zero": (GOOD + "session: {max_input_elements: 0}\n", "session.max_input_elements: Input should"),
    "emulated latency to a remote host": (
        GOOD.replace("bank_b, role: compute, host: 127.0.0.1", "bank_b, role: compute, host: 10.0.0.2")
        + "  insecure: true\nnetwork_emulation: {latency_ms: 5}\n",
        "network_emulation.latency_ms: emulated delay needs every party on this host (loopback), but bank_b "
        "(10.0.0.2) is not"),
    "emulated link to a remote host": (
        GOOD.replace("bank_b, role: compute, host: 127.0.0.1", "bank_b, role: compute, host: 10.0.0.2")
        + "  insecure: true\nnetwork_emulation:\n  links:\n    - {between: [bank_a, bank_b], bandwidth_mbps: 5}\n",
        "network_emulation.links[0]: emulated delay needs every party on this host"),
    "cost model bandwidth alone": (GOOD + "cost_model: {bandwidth_mbps: 100}\n",
                                   "cost_model.bandwidth_mbps: declared without latency_ms"),
    "cost model unknown party": (GOOD + "cost_model:\n  links:\n    - {between: [bank_a, bank_q], latency_ms: 3}\n",
                                 "cost_model.links[0].between: unknown party 'bank_q'"),
    "zero bandwidth": (GOOD + "network_emulation: {bandwidth_mbps: 0}\n",
                       "network_emulation.bandwidth_mbps: Input should be greater"),
    "unknown role": (GOOD.replace("role: helper", "role: dealer"), f"{P}[2] (helper).role: Input should be"),
    "unknown field": (GOOD + "latency: 5\n", "latency: unknown field"),
    "yaml syntax": (GOOD + "network_emulation: {latency_ms: 5\n", "YAML syntax error at line"),
    "not a mapping": ("- just\n- a list\n", "expected a mapping"),
    "missing deployment": ("name: t\n", "deployment: Field required"),
    "missing parties": ("name: t\ndeployment: {insecure: false}\n", "deployment.parties: Field required"),
    "bad party name": (GOOD.replace("name: bank_a", "name: 'bank a'"), f"{P}[0] (bank a).name: String should match"),
    "timeout not a number": (GOOD + "session: {timeout_s: soon}\n",
                             "session.timeout_s: Input should be a valid number"),
    "missing public key file": (
        GOOD.replace("port: 7001}", "port: 7001, public_key: keys/bank_a.key}")
            .replace("port: 7002}", "port: 7002, public_key: keys/bank_b.key}")
            .replace("port: 7003}", "port: 7003, public_key: keys/helper.key}"),
        f"{P}[0] (bank_a).public_key: no such file",
    ),
    # YAML and type loopholes: a repeated key silently replaced the first, `true` became port 1
    "duplicate key in a party": (GOOD.replace("port: 7001}", "port: 7001, port: 7009}"),
                                 f"{P}[0] (bank_a).port: given twice (lines 5 and 5)"),
    "duplicate key in a section": (GOOD + "session:\n  timeout_s: 5\n  timeout_s: 50\n",
                                   "session.timeout_s: given twice (lines 9 and 10)"),
    "duplicate section": (GOOD + "session: {}\nsession: {}\n", "session: given twice (lines 8 and 9)"),
    "port true": (GOOD.replace("port: 7001", "port: true"),
                  f"{P}[0] (bank_a).port: Input should be a valid integer"),
    "port as text": (GOOD.replace("port: 7001", "port: '7001'"), f"{P}[0] (bank_a).port: Input should be a valid"),
    "timeout true": (GOOD + "session: {timeout_s: true}\n", "session.timeout_s: Input should be a valid number"),
    "insecure as text": (GOOD + "  insecure: 'no'\n", "deployment.insecure: Input should be a valid boolean"),
    "dealer_workers zero": (GOOD + "  dealer_workers: 0\n",
                            "deployment.dealer_workers: Input should be greater than or equal to 1"),
    "dealer_workers as text": (GOOD + "  dealer_workers: all\n",
                               "deployment.dealer_workers: Input should be a valid integer"),
    "dealer_workers true": (GOOD + "  dealer_workers: true\n",
                            "deployment.dealer_workers: Input should be a valid integer"),
    # hosts the transport cannot use
    "ipv6 host": (GOOD.replace("host: 127.0.0.1, port: 7001", "host: '::1', port: 7001"), "'::1' is an IPv6 address"),
    "host with a port": (GOOD.replace("host: 127.0.0.1, port: 7001", "host: '127.0.0.1:6631', port: 7001"),
                         f"{P}[0] (bank_a).host: Value error, '127.0.0.1:6631' includes a port"),
    "wildcard host": (GOOD.replace("host: 127.0.0.1, port: 7001", "host: 0.0.0.0, port: 7001"),
                      "'0.0.0.0' is an address to listen on"),
    "host with a scheme": (GOOD.replace("host: 127.0.0.1, port: 7001", "host: 'tcp://a', port: 7001"),
                           "is not an IPv4 address or a hostname"),
    "ipv6 bind": (GOOD.replace("port: 7001}", "port: 7001, bind: '[::1]:7001'}"), "'[::1]' is an IPv6 address"),
    "same bind twice": (GOOD.replace("port: 7001}", "port: 7001, bind: '0.0.0.0:7100'}")
                        .replace("port: 7002}", "port: 7002, bind: '0.0.0.0:7100'}"),
                        f"{P}[1] (bank_b).bind: listens on 0.0.0.0:7100, where bank_a listens too"),
    "bind on another party's port": (GOOD.replace("port: 7001}", "port: 7001, bind: '127.0.0.1:7002'}"),
                                     f"{P}[1] (bank_b).port: listens on 127.0.0.1:7002, where bank_a listens"),
    "latency above the timeout": (GOOD + "session: {timeout_s: 1}\nnetwork_emulation: {latency_ms: 1500}\n",
                                  "network_emulation.latency_ms: 1500 ms one-way is not below the timeout (1 s)"),
    "link latency above the timeout": (
        GOOD + "session: {timeout_s: 2}\nnetwork_emulation:\n  links:\n"
               "    - {between: [bank_a, helper], latency_ms: 2000}\n",
        "network_emulation.links[0].latency_ms: 2000 ms one-way is not below the timeout (2 s)"),
    "dcf with three parties": (
        GOOD.replace("    - {name: helper", "    - {name: bank_c, role: compute, port: 7004}\n    - {name: helper")
        + "session: {comparison: dcf}\n",
        "session.comparison: 'dcf' works with exactly two compute parties",
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
    path.write_text(GOOD.replace("7003", "70000").replace("role: compute", "role: banker", 1)
                    + "session: {frac_bits: -1}\n")
    with pytest.raises(ConfigError) as info:
        load_topology(path)
    assert len(info.value.problems) == 3


def test_yaml_error_gives_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("name: t\ndeployment:\n  parties:\n    - {name: a, role: compute, port: 1\n")
    with pytest.raises(ConfigError, match="line 5"):
        load_topology(path)


def test_missing_file() -> None:
    with pytest.raises(ConfigError, match="cannot read file"):
        load_topology("/nonexistent/topology.yaml")


def test_cli_check_good_and_bad(tmp_path: Path) -> None:
    runner = CliRunner()
    ok = runner.invoke(cli, ["check", str(CONFIGS / "local-2banks-helper.yaml")])
    assert ok.exit_code == 0, ok.output
    assert "is valid" in ok.output and "bank_a" in ok.output
    assert "session: frac_bits=16" in ok.output
    assert "auto measures bank_a-bank_b, helper-bank_b at the hello" in ok.output
    bad = tmp_path / "bad.yaml"
    bad.write_text(GOOD.replace("7002", "7001") + "session: {frac_bits: 99}\n")
    res = runner.invoke(cli, ["check", str(bad)])
    assert res.exit_code == 2
    assert f"{bad}: session.frac_bits" in res.output
    assert "Traceback" not in res.output


def test_same_wildcard_bind_on_different_hosts_is_fine(tmp_path: Path) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text("deployment:\n  insecure: true\n  parties:\n"
                    "    - {name: bank_a, role: compute, host: 10.0.0.1, port: 5601, bind: '0.0.0.0:5601'}\n"
                    "    - {name: bank_b, role: compute, host: 10.0.0.2, port: 5601, bind: '0.0.0.0:5601'}\n"
                    "    - {name: helper, role: helper, host: helper.example.org, port: 5601}\n")
    assert load_topology(path).party("bank_b").listen_address == ("0.0.0.0", 5601)
    path.write_text(path.read_text().replace("0.0.0.0", "127.0.0.1"))  # each host's own loopback
    assert load_topology(path).party("bank_b").listen_address == ("127.0.0.1", 5601)
    path.write_text(path.read_text().replace("127.0.0.1:5601", "10.0.0.9:5601"))  # one address: one machine
    with pytest.raises(ConfigError, match=r"deployment.parties\[1\] \(bank_b\).bind: listens on 10.0.0.9:5601"):
        load_topology(path)


def test_not_utf8_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(GOOD.replace("name: t", "name: caf\xe9").encode("latin-1"))
    res = CliRunner().invoke(cli, ["check", str(path)])
    assert res.exit_code == 2
    assert f"{path}: (file): not UTF-8 text (byte 0xe9 on line 2)" in res.output
    bom = tmp_path / "bom.yaml"  # a byte-order mark is UTF-8 all the same
    bom.write_bytes(b"\xef\xbb\xbf" + GOOD.encode())
    assert load_topology(bom).name == "t"
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing yet\n")
    with pytest.raises(ConfigError, match="the file is empty"):
        load_topology(empty)


def _keyed(tmp_path: Path, files: dict[str, str]) -> Path:
    """GOOD with a public_key per party, each file written with the given content."""
    text = GOOD
    for name, port in (("bank_a", 7001), ("bank_b", 7002), ("helper", 7003)):
        text = text.replace(f"port: {port}}}", f"port: {port}, public_key: {name}.key}}")
    path = tmp_path / "keyed.yaml"
    path.write_text(text)
    for name, content in files.items():
        (tmp_path / f"{name}.key").write_text(content)
    return path


def test_key_files_must_be_curve_public_keys(tmp_path: Path) -> None:
    from mpc.keys import generate

    generate(tmp_path / "k", ["bank_a", "bank_b", "helper"])
    good = {n: (tmp_path / "k" / f"{n}.key").read_text() for n in ("bank_a", "bank_b", "helper")}
    assert load_topology(_keyed(tmp_path, good)).party("bank_a").public_key
    cases = {
        "bank_b": ("-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n",
                   "is not a CURVE public key file"),
        "helper": ('curve\n    public-key = "short"\n', "is not a CURVE public key file"),
        "bank_a": ((tmp_path / "k" / "bank_a.key_secret").read_text(), "holds a secret key"),
    }
    for name, (content, expected) in cases.items():
        path = _keyed(tmp_path, {**good, name: content})
        with pytest.raises(ConfigError) as info:
            load_topology(path)
        index = ["bank_a", "bank_b", "helper"].index(name)
        assert f"{path}: {P}[{index}] ({name}).public_key: " in str(info.value) and expected in str(info.value)
    with pytest.raises(ConfigError, match=r"parties\[1\] \(bank_b\).public_key: .* the same key as bank_a's"):
        load_topology(_keyed(tmp_path, {**good, "bank_b": good["bank_a"]}))


@pytest.mark.parametrize(("parties", "warning"), [
    ("    - {name: bank_a, role: compute, port: 7001}\n    - {name: helper, role: helper, port: 7003}\n",
     f"{P}: only one compute party (bank_a)"),
    ("    - {name: bank_a, role: compute, port: 7001}\n    - {name: bank_b, role: compute, port: 7002}\n",
     f"{P}: no helper"),
])
def test_check_warns_of_topologies_no_secure_program_runs_on(tmp_path: Path, parties: str, warning: str) -> None:
    path = tmp_path / "thin.yaml"
    path.write_text("deployment:\n  parties:\n" + parties)
    res = CliRunner().invoke(cli, ["check", str(path)])
    assert res.exit_code == 0 and f"warning: {path}: {warning}" in res.output
    strict = CliRunner().invoke(cli, ["check", "--strict", str(path)])
    assert strict.exit_code == 2 and f"error: {path}: {warning}" in strict.output
    good = CliRunner().invoke(cli, ["check", "--strict", str(CONFIGS / "local-2banks-helper.yaml")])
    assert good.exit_code == 0 and "warning" not in good.output


def test_latency_override_above_the_timeout_is_refused_before_start() -> None:
    config = str(CONFIGS / "local-2banks-helper.yaml")
    for command in (["run", config, "--party", "bank_a"], ["launch", config]):
        res = CliRunner().invoke(cli, [*command, "--latency-ms", "40000"])
        assert res.exit_code == 2, res.output
        assert "network_emulation.latency_ms: 40000 ms one-way is not below the timeout (30 s)" in res.output
        res = CliRunner().invoke(cli, [*command, "--latency-ms", "500", "--timeout-s", "0.2"])
        assert res.exit_code == 2 and "not below the timeout (0.2 s)" in res.output


OLD_FORM = """
name: t
frac_bits: 16
timeout_s: 30
comparison: auto
insecure: false
network: {latency_ms: 5}
parties:
  - {name: bank_a, role: compute, host: 127.0.0.1, port: 7001}
  - {name: bank_b, role: compute, host: 127.0.0.1, port: 7002}
"""


def test_an_old_form_file_names_the_new_place_of_each_key(tmp_path: Path) -> None:
    path = tmp_path / "old.yaml"
    path.write_text(OLD_FORM)
    with pytest.raises(ConfigError) as info:
        load_topology(path)
    lines = str(info.value).splitlines()
    assert all(line.startswith(f"{path}: ") for line in lines)
    assert "frac_bits: moved to session.frac_bits (topologies are in sections now" in lines[0]
    for expected in ("timeout_s: moved to session.timeout_s", "comparison: moved to session.comparison",
                     "insecure: moved to deployment.insecure", "parties: moved to deployment.parties",
                     "network: moved to network_emulation (the same fields"):
        assert any(expected in line for line in lines), expected
    assert len(lines) == 6  # one line per key, nothing else (no 'Field required' noise)
    res = CliRunner().invoke(cli, ["check", str(path)])
    assert res.exit_code == 2 and "parties: moved to deployment.parties" in res.output


def test_python_constructors_take_the_flat_keys_into_their_sections() -> None:
    from mpc.config import build_topology, localhost_topology

    topo = localhost_topology(2, timeout_s=5, comparison="dcf", network={"latency_ms": 3}, dealer_workers=1)
    assert topo.session.timeout_s == 5 and topo.timeout_s == 5 and topo.session.comparison == "dcf"
    assert topo.network_emulation.latency_ms == 3 and topo.deployment.dealer_workers == 1
    copy = topo.model_copy(update={"frac_bits": 12, "parties": tuple(reversed(topo.parties))})
    assert copy.session.frac_bits == 12 and copy.names == ["helper", "bank_b", "bank_a"]
    assert copy.session.timeout_s == 5  # the rest of the section kept
    with pytest.raises(ValueError, match="a topology has no field 'frac_bitz'"):
        topo.model_copy(update={"frac_bitz": 12})
    sectioned = build_topology(topo.model_dump(mode="json")["deployment"]["parties"],
                               session={"frac_bits": 14}, cost_model={"latency_ms": 10})
    assert sectioned.frac_bits == 14 and sectioned.declared_link("bank_a", "bank_b").latency_ms == 10
    with pytest.raises(ConfigError, match="session.frac_bits: Input should be less than or equal to 16"):
        localhost_topology(2, frac_bits=40)


def test_agreed_settings_are_the_session_and_the_declared_cost_model() -> None:
    from mpc.config import localhost_topology

    topo = localhost_topology(2, timeout_s=5, network={"latency_ms": 3})
    agreed = topo.agreed_settings()
    assert agreed["session.timeout_s"] == "5" and agreed["session.max_message_mb"] == "1024"
    assert "cost_model" not in agreed and not any("network" in k for k in agreed)  # emulation: host-local
    assert topo.with_network(latency_ms=9).agreed_settings() == agreed
    declared = localhost_topology(2, cost_model={"latency_ms": 25, "bandwidth_mbps": 100})
    assert declared.agreed_settings()["cost_model"] == '{"bandwidth_mbps":100.0,"latency_ms":25.0}'
    assert declared.declared_link("helper", "bank_b") == declared.declared_link("bank_a", "bank_b")
    assert topo.declared_link("bank_a", "bank_b") is None  # measured at the hello


def test_emulation_override_is_refused_for_remote_hosts() -> None:
    from mpc.config import build_topology

    topo = build_topology([{"name": "bank_a", "role": "compute", "host": "10.0.0.1", "port": 5601},
                           {"name": "bank_b", "role": "compute", "host": "10.0.0.2", "port": 5601}], insecure=True)
    with pytest.raises(ConfigError) as info:
        topo.with_network(latency_ms=10)
    assert info.value.source == "command line"
    assert "network_emulation.latency_ms: emulated delay needs every party on this host" in str(info.value)
