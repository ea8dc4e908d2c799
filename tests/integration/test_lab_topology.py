"""The lab for real: namespaces, veths, routes, servers, and TCP/UDP/ICMP probes over v4 and v6.

Each test builds its own lab with a random prefix (``eg-t<hex>-``) and a temporary state
directory, so tests never touch each other's namespaces nor a user's ``eg-lab-`` lab; the
fixture tears it down and checks that no namespace with the prefix remains.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from egressguard.adapters import netns
from egressguard.adapters.probe import Probe
from egressguard.app import lab

sys.path.insert(0, str(Path(__file__).parent))
from labns import built_lab

pytestmark = [pytest.mark.root, pytest.mark.integration]

DOC_RANGES = [
    ipaddress.ip_network(n)
    for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32")
]


@pytest.fixture
def running_lab(tmp_path: Path) -> Iterator[lab.Lab]:
    with built_lab("t", tmp_path) as built:
        yield built


def _in_doc_ranges(text: str) -> bool:
    net = ipaddress.ip_interface(text).network
    return any(
        net.version == d.version and net.subnet_of(d)  # type: ignore[arg-type]
        for d in DOC_RANGES
    )


def test_topology_comes_up(running_lab: lab.Lab) -> None:
    t = running_lab.topology
    ip = running_lab.ip
    assert set(t.namespaces()) <= set(ip.list_namespaces())
    node_links = {row["ifname"] for row in ip.links(t.node_ns)}
    assert node_links == {"lo", "eth0", *(p.cali for p in t.pods)}
    for p in t.pods:
        assert {row["ifname"] for row in ip.links(t.pod_ns(p))} == {"lo", "eth0"}
        cali = next(r for r in ip.links(t.node_ns) if r["ifname"] == p.cali)
        assert cali["address"] == lab.CALI_MAC
    # Forwarding on the node only.
    assert ip.read_sysctl(t.node_ns, "net.ipv4.ip_forward") == "1"
    assert ip.read_sysctl(t.node_ns, "net.ipv6.conf.all.forwarding") == "1"
    for ns in (t.inet_ns, *(t.pod_ns(p) for p in t.pods)):
        assert ip.read_sysctl(ns, "net.ipv4.ip_forward") == "0"
        assert ip.read_sysctl(ns, "net.ipv6.conf.all.forwarding") == "0"
    status = running_lab.status()
    assert status.healthy, status.to_json()


def test_no_address_outside_the_documentation_ranges_exists(running_lab: lab.Lab) -> None:
    seen = 0
    for ns in running_lab.topology.namespaces():
        for row in running_lab.ip.addresses(ns):
            for info in row.get("addr_info", []):
                addr = f"{info['local']}/{info['prefixlen']}"
                if row["ifname"] == "lo" and info["local"] in ("127.0.0.1", "::1"):
                    continue  # every namespace's loopback
                assert _in_doc_ranges(addr), f"{ns} {row['ifname']} {addr}"
                assert not addr.startswith("fe80"), "no link-local addresses"
                seen += 1
    t = running_lab.topology
    assert seen == 4 + len(t.internet) + 4 * len(t.pods)


def test_server_runs_inside_the_inet_namespace(running_lab: lab.Lab) -> None:
    (ref,) = running_lab.state.processes
    assert netns.process_alive(ref)
    assert ref.ns == running_lab.topology.inet_ns
    their_netns = os.stat(f"/proc/{ref.pid}/ns/net").st_ino
    assert their_netns == os.stat(f"/run/netns/{ref.ns}").st_ino
    assert ref.pid in running_lab.ip.namespace_pids(ref.ns)


def test_every_probe_kind_passes_from_both_pods_over_v4_and_v6(running_lab: lab.Lab) -> None:
    probes = lab.default_probes(running_lab.topology)
    results = running_lab.probe(probes)
    assert [r.probe for r in results] == probes
    failed = [(r.probe.pod, r.probe.label(), r.detail) for r in results if not r.ok]
    assert failed == []
    assert {(r.probe.pod, r.probe.proto, r.probe.family) for r in results} == {
        (pod, proto, fam)
        for pod in ("pod1", "pod2")
        for proto in ("tcp", "udp", "icmp")
        for fam in (4, 6)
    }
    # The banner proves the answer came from the address probed, not some other listener.
    for r in results:
        if r.probe.proto == "tcp":
            assert r.detail == f"connected: egressguard-lab tcp {r.probe.dst} {r.probe.port}"


def _nft(lab_: lab.Lab, script: str) -> None:
    lab_.runner.run(lab_.topology.node_ns, ["nft", "-f", "-"], input=script.encode())


def test_a_drop_rule_on_the_node_blocks_only_its_destination(running_lab: lab.Lab) -> None:
    t = running_lab.topology
    blocked4, blocked6 = str(t.internet4[1]), str(t.internet6[1])
    table = f"egt_{secrets.token_hex(3)}"
    _nft(
        running_lab,
        f"""
table inet {table} {{
    chain forward_filter {{
        type filter hook forward priority 0; policy accept;
        ip daddr {blocked4} drop
        ip6 daddr {blocked6} drop
    }}
}}
""",
    )
    probes = lab.default_probes(t, timeout=1.0)
    results = running_lab.probe(probes)
    failed = {r.probe for r in results if not r.ok}
    assert failed == {p for p in probes if p.dst in (blocked4, blocked6)}
    assert len(failed) == 2 * 2 * 4  # both pods, both families, four probe kinds
    assert {r.detail for r in results if not r.ok} == {"timeout"}

    # Removing the rule lets the same probes through: the rule, not the lab, blocked them.
    _nft(running_lab, f"delete table inet {table}\n")
    again = running_lab.probe([p for p in probes if p in failed])
    assert all(r.ok for r in again), [r.detail for r in again if not r.ok]


def test_a_reject_rule_is_reported_as_refused_or_unreachable(running_lab: lab.Lab) -> None:
    t = running_lab.topology
    dst = str(t.internet4[2])
    _nft(
        running_lab,
        f"""
table inet egt_reject {{
    chain forward_filter {{
        type filter hook forward priority 0; policy accept;
        ip daddr {dst} reject
    }}
}}
""",
    )
    results = running_lab.probe(
        [
            Probe("pod1", "tcp", dst, 443, 1.0),
            Probe("pod1", "udp", dst, 53, 1.0),
            Probe("pod1", "icmp", dst, None, 1.0),
        ]
    )
    assert [(r.ok, r.detail) for r in results] == [
        (False, "refused"),
        (False, "refused"),
        (False, "unreachable (type 3 code 3 from 198.51.100.1)"),
    ]


def test_status_notices_a_dead_server(running_lab: lab.Lab) -> None:
    (ref,) = running_lab.state.processes
    os.kill(ref.pid, signal.SIGKILL)
    assert netns.stop_process(ref, timeout=5)
    status = running_lab.status()
    assert not status.healthy
    assert status.processes == [(ref, False)]
    assert all(status.namespaces.values())


def test_host_sysctls_are_journaled_and_restored(running_lab: lab.Lab) -> None:
    # A namespace of the test's own (not named like a lab namespace) stands in for the
    # host, so the test never changes the machine's real sysctls.
    side = f"egside{secrets.token_hex(3)}"
    ip = running_lab.ip
    ip.add_namespace(side)
    try:
        assert ip.read_sysctl(side, "net.ipv4.ip_forward") == "0"
        previous = running_lab.set_sysctl(side, "net.ipv4.ip_forward", "1")
        assert previous == "0"
        assert ip.read_sysctl(side, "net.ipv4.ip_forward") == "1"
        # Journaled before the change, so a crash right now would still restore it.
        doc = running_lab.state_file.load()
        assert doc is not None
        assert doc["sysctls"] == [{"ns": side, "key": "net.ipv4.ip_forward", "previous": "0"}]
        report = running_lab.down()
        assert [c.key for c in report.restored_sysctls] == ["net.ipv4.ip_forward"]
        assert ip.read_sysctl(side, "net.ipv4.ip_forward") == "0"
    finally:
        ip.delete_namespace(side)


def test_a_later_process_can_attach_to_the_running_lab(running_lab: lab.Lab) -> None:
    again = lab.attach_lab(
        running_lab.topology.prefix, runner=running_lab.runner, state_dir=running_lab.state_dir
    )
    assert again.topology == running_lab.topology
    (result,) = again.probe([Probe("pod2", "icmp", str(again.topology.internet6[-1]))])
    assert result.ok, result.detail
