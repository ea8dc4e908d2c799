"""How the netns adapter forms commands: argument lists, validated names, parsed output.

The commands themselves run for real in tests/integration/test_lab_*.py; here the in-package
``RecordingNetnsRunner`` shows what would be run, which is what the nft adapter relies on.
"""

from __future__ import annotations

import ipaddress

import pytest

from egressguard.adapters import netns
from egressguard.errors import DataplaneError


def _answer(stdout: bytes, *, when: str) -> netns.Responder:
    def responder(
        ns: str | None, argv: tuple[str, ...], input: bytes | None
    ) -> netns.CommandResult | None:
        return netns.CommandResult(argv, 0, stdout) if when in argv else None

    return responder


@pytest.mark.parametrize(
    "name", ["x; rm -rf /", "a b", "", "-n", "../../etc", "$(reboot)", "n" * 65]
)
def test_hostile_namespace_names_never_reach_a_command(name: str) -> None:
    runner = netns.RecordingNetnsRunner()
    with pytest.raises(DataplaneError):
        runner.run(name, ["nft", "-f", "-"])
    with pytest.raises(DataplaneError):
        netns.IpRoute2(runner).add_namespace(name)
    assert runner.calls == []


@pytest.mark.parametrize("name", ["cali0123456789ab", "eth0 up", "", "-x", "a/b"])
def test_bad_interface_names_are_refused(name: str) -> None:
    with pytest.raises(DataplaneError, match="interface name"):
        netns.validate_ifname(name)


def test_commands_in_a_namespace_go_through_ip_netns_exec_as_an_argument_list() -> None:
    # Only the composed argv is checked here (no namespace is needed for that).
    assert netns._netns_argv("eg-lab-node", ["nft", "-f", "-"]) == [
        "ip",
        "netns",
        "exec",
        "eg-lab-node",
        "nft",
        "-f",
        "-",
    ]
    assert netns._netns_argv(None, ["true"]) == ["true"]


def test_fake_runner_records_input_for_scripts_applied_in_a_namespace() -> None:
    runner = netns.RecordingNetnsRunner()
    runner.run("eg-lab-node", ["nft", "-f", "-"], input=b"table inet x {}\n")
    assert runner.calls == [("eg-lab-node", ("nft", "-f", "-"), b"table inet x {}\n")]


def test_fake_runner_reports_failures_like_the_real_one() -> None:
    def fail(ns: str | None, argv: tuple[str, ...], inp: bytes | None) -> netns.CommandResult:
        return netns.CommandResult(argv, 1, b"", b"Error: boom")

    runner = netns.RecordingNetnsRunner(responders=[fail])
    with pytest.raises(DataplaneError, match="boom"):
        runner.run(None, ["nft", "list", "ruleset"])
    assert runner.run(None, ["nft", "list", "ruleset"], check=False).returncode == 1


def test_ipv6_addresses_skip_duplicate_address_detection() -> None:
    runner = netns.RecordingNetnsRunner()
    ip = netns.IpRoute2(runner)
    ip.add_address("ns1", "eth0", ipaddress.IPv6Interface("2001:db8::1/64"))
    ip.add_address("ns1", "eth0", ipaddress.IPv4Interface("192.0.2.1/24"))
    assert [c[1] for c in runner.calls] == [
        ("ip", "-n", "ns1", "addr", "add", "2001:db8::1/64", "dev", "eth0", "nodad"),
        ("ip", "-n", "ns1", "addr", "add", "192.0.2.1/24", "dev", "eth0"),
    ]


def test_list_namespaces_parses_json_and_empty_output() -> None:
    runner = netns.RecordingNetnsRunner(
        responders=[_answer(b'[{"name":"b"},{"name":"a","id":0}]\n', when="list")]
    )
    assert netns.IpRoute2(runner).list_namespaces() == ["a", "b"]
    # `ip -j netns list` prints nothing at all when there is no namespace.
    assert netns.IpRoute2(netns.RecordingNetnsRunner()).list_namespaces() == []


def test_write_sysctl_returns_the_previous_value() -> None:
    runner = netns.RecordingNetnsRunner(responders=[_answer(b"0\n", when="-n")])
    previous = netns.IpRoute2(runner).write_sysctl(None, "net.netfilter.nf_log_all_netns", "1")
    assert previous == "0"
    assert runner.calls[-1][1] == ("sysctl", "-q", "-w", "net.netfilter.nf_log_all_netns=1")


@pytest.mark.parametrize("key", ["net.ipv4.ip_forward=0", "ip_forward", "net ipv4", ""])
def test_malformed_sysctl_keys_are_refused(key: str) -> None:
    with pytest.raises(DataplaneError):
        netns.IpRoute2(netns.RecordingNetnsRunner()).read_sysctl(None, key)
