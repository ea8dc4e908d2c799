"""The lab topology as a value: documentation addresses only, Linux name limits, Calico names."""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from egressguard.app import lab
from egressguard.errors import DataplaneError, InputError, UsageError

DOC_RANGES = [
    ipaddress.ip_network(n)
    for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32")
]


def _strings(value: Any) -> list[str]:
    """Every string anywhere inside a JSON-like value."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in (*_strings(k), *_strings(v))]
    if isinstance(value, list | tuple):
        return [s for v in value for s in _strings(v)]
    return []


def _as_network(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    try:
        return ipaddress.ip_interface(text).network
    except ValueError:
        return None


def _inside_doc_ranges(net: ipaddress.IPv4Network | ipaddress.IPv6Network) -> bool:
    return any(
        net.version == doc.version and net.subnet_of(doc)  # type: ignore[arg-type]
        for doc in DOC_RANGES
    )


@pytest.mark.parametrize("prefix", ["eg-lab-", "eg-t1a2b3c-", "x"])
def test_every_address_in_the_description_is_a_documentation_address(prefix: str) -> None:
    topo = lab.default_topology(prefix)
    found = [(s, _as_network(s)) for s in _strings(topo.to_json())]
    addresses = [(s, n) for s, n in found if n is not None]
    # The description names the gateways, links, pods and all internet addresses.
    assert len(addresses) >= 4 + 2 + 2 * len(topo.pods) + len(topo.internet)
    outside = [s for s, n in addresses if not _inside_doc_ranges(n)]
    assert outside == []


def test_every_ip_field_is_a_documentation_address() -> None:
    topo = lab.default_topology()
    values = list(topo.ip_values())
    assert len(values) >= 10 + len(topo.internet) + 2 * len(topo.pods)
    for where, value in values:
        net = value.network if hasattr(value, "network") else ipaddress.ip_network(value)
        assert _inside_doc_ranges(net), where


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("gateway4", ipaddress.IPv4Address("169.254.1.1")),  # Calico's gateway: not allowed
        ("gateway6", ipaddress.IPv6Address("fe80::ecee:eeff:feee:eeee")),
        ("node_link4", ipaddress.IPv4Interface("10.0.0.1/24")),
        ("internet4", (ipaddress.IPv4Address("8.8.8.8"),)),
        ("internet6", (ipaddress.IPv6Address("2001:4860:4860::8888"),)),
        ("internet_network4", ipaddress.IPv4Network("203.0.0.0/16")),
    ],
)
def test_an_address_outside_the_ranges_is_refused(field: str, value: Any) -> None:
    with pytest.raises(InputError, match="outside"):
        dataclasses.replace(lab.default_topology(), **{field: value})


def test_custom_internet_addresses_must_be_in_the_internet_network() -> None:
    topo = lab.default_topology(internet4=["203.0.113.92"], internet6=["2001:db8:203:113::92"])
    assert [str(a) for a in topo.internet] == ["203.0.113.92", "2001:db8:203:113::92"]
    with pytest.raises(InputError):
        lab.default_topology(internet4=["198.51.100.200"])


def test_duplicate_addresses_are_refused() -> None:
    topo = lab.default_topology()
    pod2 = dataclasses.replace(topo.pods[1], ipv4=topo.pods[0].ipv4)
    with pytest.raises(InputError, match="used twice"):
        dataclasses.replace(topo, pods=(topo.pods[0], pod2))


def test_interface_names_fit_linux_limits() -> None:
    topo = lab.default_topology()
    for name in topo.interface_names():
        assert 1 <= len(name) <= 15, name
        assert re.fullmatch(r"[A-Za-z0-9_.-]+", name)


# Vectors from coreutils: printf '%s' "<namespace>.<pod>" | sha1sum | cut -b -11
CALI_VECTORS = [
    ("default", "web", "cali68caf03a5f4"),
    ("payments", "api", "calic30c7db7461"),
    ("kube-system", "coredns-7db6d8ff4d-abcde", "calif90c21019df"),
    ("default", "nginx", "calic440f455693"),
]


@pytest.mark.parametrize(("namespace", "pod", "expected"), CALI_VECTORS)
def test_cali_names_match_calicos_scheme(namespace: str, pod: str, expected: str) -> None:
    assert lab.cali_name(namespace, pod) == expected


def test_pods_use_the_cali_name_of_their_namespace_and_name() -> None:
    topo = lab.default_topology()
    assert [p.cali for p in topo.pods] == ["cali68caf03a5f4", "calic30c7db7461"]
    # Stable across calls and across prefixes: the prefix names namespaces, not interfaces.
    assert [p.cali for p in lab.default_topology("eg-other-").pods] == [p.cali for p in topo.pods]


@given(st.text(min_size=1, max_size=63), st.text(min_size=1, max_size=253))
def test_any_pod_gets_a_15_char_cali_name(namespace: str, pod: str) -> None:
    name = lab.cali_name(namespace, pod)
    assert re.fullmatch(r"cali[0-9a-f]{11}", name)
    assert name == lab.cali_name(namespace, pod)


@given(st.text(min_size=1, max_size=40), st.text(min_size=1, max_size=40))
def test_pod_macs_are_locally_administered_unicast(namespace: str, pod: str) -> None:
    mac = lab.pod_mac(namespace, pod)
    octets = [int(o, 16) for o in mac.split(":")]
    assert len(octets) == 6
    assert octets[0] & 0b10, "locally administered bit set"
    assert not octets[0] & 0b01, "unicast"
    assert mac != lab.CALI_MAC


def test_namespaces_carry_the_prefix_and_are_distinct() -> None:
    topo = lab.default_topology("eg-t0a1b2c-")
    names = topo.namespaces()
    assert names == ["eg-t0a1b2c-pod1", "eg-t0a1b2c-pod2", "eg-t0a1b2c-node", "eg-t0a1b2c-inet"]
    assert lab.matching_namespaces(names, "eg-t0a1b2c-") == sorted(names)


def test_pods_carry_kubernetes_identity_for_policy_evaluation() -> None:
    topo = lab.default_topology()
    web = topo.pod("pod1")
    assert (web.namespace, web.name, web.label_map) == ("default", "web", {"app": "web"})
    assert topo.pod("pod2").label_map["app"] == "api"
    with pytest.raises(UsageError):
        topo.pod("pod9")


@pytest.mark.parametrize(
    ("names", "prefix", "expected"),
    [
        # A shorter prefix never captures another lab's namespaces.
        (["eg-lab-node", "eg-lab-pod1", "eg-node"], "eg-", ["eg-node"]),
        (["eg-lab-node", "eg-lab-pod1", "eg-labx-node"], "eg-lab-", ["eg-lab-node", "eg-lab-pod1"]),
        (["eg-lab-", "eg-lab-a-b", "eg-lab-POD"], "eg-lab-", []),
        (["other", "egtest1"], "eg-lab-", []),
    ],
)
def test_matching_namespaces_only_takes_prefix_plus_one_word(
    names: list[str], prefix: str, expected: list[str]
) -> None:
    assert lab.matching_namespaces(names, prefix) == expected


@pytest.mark.parametrize("prefix", ["", "-x", "a b", "../etc", "x;rm", "a" * 33, "é-"])
def test_unusable_prefixes_are_refused(prefix: str) -> None:
    with pytest.raises(UsageError):
        lab.validate_prefix(prefix)


def test_default_probes_cover_every_kind_pod_and_family() -> None:
    topo = lab.default_topology()
    probes = lab.default_probes(topo)
    kinds = {(p.proto, p.port) for p in probes}
    assert kinds == {("tcp", 80), ("tcp", 443), ("udp", 53), ("icmp", None)}
    assert {p.pod for p in probes} == {"pod1", "pod2"}
    assert {p.family for p in probes} == {4, 6}
    assert len(probes) == len(set(probes)) == 2 * len(topo.internet) * 4
    assert {p.dst for p in probes} == {str(a) for a in topo.internet}


def test_state_path_is_per_prefix(tmp_path: Any) -> None:
    assert lab.state_path(tmp_path, "eg-lab-").name == "lab-eg-lab-.json"
    assert lab.state_path(tmp_path, "eg-a-") != lab.state_path(tmp_path, "eg-b-")


def test_topology_round_trips_through_its_state_file_form() -> None:
    custom = lab.default_topology(
        "eg-t5-", internet4=["203.0.113.92", "203.0.113.111"], internet6=["2001:db8:203:113::1"]
    )
    for topo in (lab.default_topology(), custom):
        assert lab.topology_from_json(json.loads(json.dumps(topo.to_json()))) == topo


def test_a_damaged_topology_document_is_refused() -> None:
    doc = lab.default_topology().to_json()
    del doc["networks"]
    with pytest.raises(DataplaneError, match="damaged"):
        lab.topology_from_json(doc)
