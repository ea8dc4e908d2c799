"""Laws of the validator: it never crashes on any input, and the fast path for network-set
entries accepts only what the full parser accepts."""

from __future__ import annotations

import copy
import ipaddress
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from egressguard import yamlio
from egressguard.calico import load_documents, validate
from egressguard.calico.validate import _SIMPLE_V4, _loose_net_ok, _parse_ip_or_cidr
from egressguard.problems import Problem

FULL = {
    "apiVersion": "projectcalico.org/v3",
    "kind": "GlobalNetworkPolicy",
    "metadata": {"name": "p", "labels": {"a": "b"}, "annotations": {"n": "x"}},
    "spec": {
        "tier": "default",
        "order": 1,
        "selector": "all()",
        "namespaceSelector": "a == 'b'",
        "types": ["Ingress", "Egress"],
        "ingress": [
            {
                "action": "Allow",
                "protocol": "TCP",
                "http": {"methods": ["GET"], "paths": [{"exact": "/"}]},
                "source": {"services": {"name": "s", "namespace": "n"}},
            }
        ],
        "egress": [
            {
                "action": "Deny",
                "ipVersion": 4,
                "protocol": "ICMP",
                "icmp": {"type": 8, "code": 0},
                "notProtocol": 6,
                "notICMP": {"type": 3},
                "metadata": {"annotations": {"k": "v"}},
                "source": {"nets": ["192.0.2.0/24"], "serviceAccounts": {"names": ["a"]}},
                "destination": {
                    "nets": ["198.51.100.0/24"],
                    "notNets": ["198.51.100.0/25"],
                    "selector": "x == 'y'",
                    "notSelector": "has(z)",
                    "namespaceSelector": "global()",
                },
            },
            {"action": "Allow", "protocol": "UDP", "destination": {"ports": [53, "1:2", "dns"]}},
        ],
        "doNotTrack": False,
        "preDNAT": False,
        "applyOnForward": True,
        "performanceHints": ["AssumeNeededOnEveryNode"],
    },
}

junk = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**70), 2**70),
        st.floats(allow_nan=True),
        st.text(max_size=20),
        st.sampled_from(["global()", "0.0.0.0/0", "::/0", "Allow", "TCP", "a == 'b'", "1:0"]),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.text(max_size=10), inner, max_size=4),
    ),
    max_leaves=20,
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            out.extend(_paths(item, (*prefix, key)))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            out.extend(_paths(item, (*prefix, i)))
    return out


ALL_PATHS = _paths(FULL)


def _replace(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    doc = copy.deepcopy(doc)
    target = doc
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return doc


def test_the_full_document_is_valid() -> None:
    assert validate(FULL) == []


@settings(max_examples=500, deadline=None)
@given(st.sampled_from(ALL_PATHS), junk)
def test_validator_never_crashes(path: tuple[Any, ...], value: Any) -> None:
    doc = _replace(FULL, path, value)
    problems = validate(doc)
    assert all(isinstance(p, Problem) for p in problems)
    # and the loader turns whatever it accepted into a resource without raising
    loaded = load_documents([yamlio.Document(data=doc, source="x.yaml", index=0, line=1)])
    assert len(loaded.resources) + (1 if loaded.problems else 0) >= 1


@settings(max_examples=300, deadline=None)
@given(junk)
def test_any_document_is_handled(doc: Any) -> None:
    assert all(isinstance(p, Problem) for p in validate(doc))


@given(st.integers(0, 2**32 - 1), st.integers(0, 32), st.booleans())
def test_network_set_fast_path_agrees_with_full_parser(
    address: int, prefix: int, bare: bool
) -> None:
    text = str(ipaddress.IPv4Address(address)) + ("" if bare else f"/{prefix}")
    assert _SIMPLE_V4.fullmatch(text)
    assert _loose_net_ok(text)
    _parse_ip_or_cidr(text)  # does not raise


@given(st.text(alphabet="0123456789./", max_size=20))
def test_fast_path_accepts_nothing_the_full_parser_rejects(text: str) -> None:
    if _SIMPLE_V4.fullmatch(text):
        _parse_ip_or_cidr(text)
