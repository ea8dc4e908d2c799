"""Laws of ``sample_addresses``: inside the blocked CIDRs, outside the allowlist, distinct,
reproducible, as many as exist; and on a real, world-size country set."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from egressguard.app.verify import sample_addresses
from egressguard.cidr.sets import AddressSet


@st.composite
def networks(draw: st.DrawFn) -> str:
    """A CIDR as a user might write it (host bits allowed, bare addresses too)."""
    if draw(st.booleans()):
        value = draw(st.integers(0, 2**32 - 1))
        plen = draw(st.integers(8, 32))
        text = str(ipaddress.IPv4Address(value))
    else:
        value = draw(st.integers(0, 2**128 - 1))
        plen = draw(st.integers(16, 128))
        text = str(ipaddress.IPv6Address(value))
    return text if draw(st.integers(0, 5)) == 0 else f"{text}/{plen}"


def as_network(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    return ipaddress.ip_network(text, strict=False)


@settings(max_examples=200, deadline=None)
@given(
    nets=st.lists(networks(), min_size=1, max_size=8),
    excluded=st.lists(networks(), max_size=4),
    count=st.integers(0, 10),
    seed=st.text(max_size=8),
    family=st.sampled_from([None, 4, 6]),
)
def test_samples_are_inside_outside_distinct_and_reproducible(
    nets: list[str], excluded: list[str], count: int, seed: str, family: int | None
) -> None:
    exclude = AddressSet.of(*excluded)
    got = sample_addresses(nets, count, seed=seed, exclude=exclude, family=family)
    # Checked with the standard library, independently of the CIDR engine.
    blocked = [as_network(n) for n in nets if family is None or as_network(n).version == family]
    avoid = [as_network(n) for n in excluded]
    addresses = [ipaddress.ip_address(a) for a, _ in got]
    assert len(set(addresses)) == len(addresses)
    for address, (_text, entry) in zip(addresses, got, strict=True):
        assert any(address in n for n in blocked)
        assert not any(address in n for n in avoid)
        assert entry in nets
        assert address in as_network(entry)
    # As many as asked, unless the space left is smaller.
    room = sum(n.num_addresses for n in blocked)  # an upper bound (overlaps count twice)
    if count <= 3 and not avoid and room >= 64 * count:
        assert len(got) == count
    assert len(got) <= count
    assert sample_addresses(nets, count, seed=seed, exclude=exclude, family=family) == got


def test_a_tiny_set_gives_each_usable_address_once() -> None:
    got = sample_addresses(["192.0.2.8/30", "192.0.2.8/31"], 10, seed="x")
    # A /30 holds 4 addresses; its network (.8) and broadcast (.11) addresses are never
    # probed, so asking for more than exist returns the other two, each once.
    assert sorted(a for a, _ in got) == ["192.0.2.10", "192.0.2.9"]
    assert sample_addresses(["192.0.2.8/31"], 10, seed="x") != []  # a /31 has no broadcast


def test_network_and_broadcast_addresses_are_avoided_in_ipv4_networks() -> None:
    for seed in range(50):
        ((address, entry),) = sample_addresses(["198.51.100.0/24"], 1, seed=str(seed))
        assert entry == "198.51.100.0/24"
        assert address not in ("198.51.100.0", "198.51.100.255")


def test_an_allowlist_covering_the_set_leaves_nothing() -> None:
    exclude = AddressSet.of("192.0.2.0/24")
    assert sample_addresses(["192.0.2.0/25", "192.0.2.128/26"], 3, seed="s", exclude=exclude) == []


def test_unparsable_entries_are_skipped() -> None:
    got = sample_addresses(["not-a-cidr", "192.0.2.7"], 2, seed="s")
    assert got == [("192.0.2.7", "192.0.2.7")]


def test_world_size_country_set(data_dir: Path) -> None:
    """A real country list (thousands of CIDRs): samples come from distinct entries."""
    path = data_dir / "countries" / "herrbischoff-2025-09" / "ipv4" / "us.cidr"
    nets = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    assert len(nets) > 10_000
    allow = ["8.8.8.8", "1.1.1.1"]
    got = sample_addresses(nets, 12, seed="world", exclude=AddressSet.of(*allow))
    assert len(got) == 12
    blocked = AddressSet.of(*nets)
    for address, entry in got:
        assert blocked.contains_address(address)
        assert address not in allow
        assert ipaddress.ip_address(address) in as_network(entry)
    # Twelve distinct CIDRs of the canonical set give twelve entries of the list.
    assert len({entry for _, entry in got}) == 12
