"""Network-set shards: names, exact YAML, size limits, determinism and locality of changes."""

from __future__ import annotations

import itertools
import random
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from egressguard import yamlio
from egressguard.app import sync
from egressguard.calico import API_V1, API_V3, validate
from egressguard.cidr import parse
from egressguard.cidr.addresses import Cidr, parse_cidr
from egressguard.cidr.sets import AddressSet, CidrSet
from egressguard.render import networksets, ownership
from egressguard.render.networksets import ShardLimits, bucket_name, render_network_sets

HASH = re.compile(r"sha256:[0-9a-f]{64}")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def world(data_dir: Path) -> AddressSet:
    root = data_dir / "countries" / "herrbischoff-2025-09"
    files = sorted(root.glob("ipv*/*.cidr"))
    return parse.parse_many([(str(f), f.read_bytes()) for f in files]).addresses


@pytest.fixture(scope="module")
def world_set(data_dir: Path) -> AddressSet:
    return world(data_dir)


# --------------------------------------------------------------------------------------------
# names


@pytest.mark.parametrize(
    ("bucket", "name"),
    [
        ("0.0.0.0/0", "bl-v4"),
        ("0.0.0.0/1", "bl-v4-0-1"),
        ("96.0.0.0/3", "bl-v4-96-3"),
        ("10.0.0.0/8", "bl-v4-10-8"),
        ("10.128.0.0/9", "bl-v4-10.128-9"),
        ("192.168.0.0/16", "bl-v4-192.168-16"),
        ("1.2.3.0/24", "bl-v4-1.2.3-24"),
        ("1.2.3.128/25", "bl-v4-1.2.3.128-25"),
        ("255.255.255.255/32", "bl-v4-255.255.255.255-32"),
        ("::/0", "bl-v6"),
        ("2000::/3", "bl-v6-2000-3"),
        ("2001::/21", "bl-v6-2001.0-21"),
        ("2001:db8::/32", "bl-v6-2001.db8-32"),
        ("2a00:1450:4001::/48", "bl-v6-2a00.1450.4001-48"),
        ("2001:db8::1/128", "bl-v6-2001.db8.0.0.0.0.0.1-128"),
    ],
)
def test_bucket_names(bucket: str, name: str) -> None:
    assert bucket_name("bl", parse_cidr(bucket, strict=True)) == name
    assert DNS_SUBDOMAIN.match(name)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from([4, 6]), st.integers(0, 2**128 - 1), st.integers(0, 128)),
        min_size=2,
        max_size=2,
    )
)
def test_bucket_names_are_injective(pair: list[tuple[int, int, int]]) -> None:
    """Two different buckets never share a shard name (the name spells out the bucket)."""
    buckets = []
    for fam, raw_value, raw_plen in pair:
        width = 32 if fam == 4 else 128
        plen = min(raw_plen, width)
        value = raw_value % (1 << width)
        network = value >> (width - plen) << (width - plen) if plen else 0
        buckets.append(Cidr(fam, network, plen))  # type: ignore[arg-type]
    a, b = buckets
    assert (bucket_name("bl", a) == bucket_name("bl", b)) == (a == b)


# --------------------------------------------------------------------------------------------
# exact output


GOLDEN = """\
---
apiVersion: crd.projectcalico.org/v1
kind: GlobalNetworkSet
metadata:
  name: egress-blocklist-v4
  labels:
    app.kubernetes.io/managed-by: egressguard
    egressguard.io/blocklist: egress-blocklist
  annotations:
    egressguard.io/content-hash: HASH
    egressguard.io/entries: '3'
    egressguard.io/range: 0.0.0.0/0
spec:
  nets:
  - 192.0.2.7/32
  - 198.51.100.0/23
  - 203.0.113.0/24
---
apiVersion: crd.projectcalico.org/v1
kind: GlobalNetworkSet
metadata:
  name: egress-blocklist-v6
  labels:
    app.kubernetes.io/managed-by: egressguard
    egressguard.io/blocklist: egress-blocklist
  annotations:
    egressguard.io/content-hash: HASH
    egressguard.io/entries: '1'
    egressguard.io/range: ::/0
spec:
  nets:
  - 2001:db8::/48
"""


def test_golden_small_set() -> None:
    # input unordered, overlapping and adjacent: the output is canonical
    addresses = AddressSet.of(
        "203.0.113.0/24",
        "198.51.101.0/24",
        "198.51.100.0/24",
        "192.0.2.7",
        "2001:db8::/48",
        "198.51.100.128/25",
        "2001:db8::1",
    )
    _, manifests = render_network_sets("egress-blocklist", addresses)
    text = "".join(networksets.manifest_text(m) for m in manifests)
    assert HASH.sub("HASH", text) == GOLDEN


def test_custom_set_label_is_added_next_to_the_ownership_labels() -> None:
    _, (manifest,) = render_network_sets(
        "egress-traffic-blocking", AddressSet.of("192.0.2.0/24"), set_label="policy"
    )
    assert manifest["metadata"]["labels"] == {
        "app.kubernetes.io/managed-by": "egressguard",
        "egressguard.io/blocklist": "egress-traffic-blocking",
        "policy": "egress-traffic-blocking",
    }


def test_empty_set_gives_no_shards() -> None:
    assert render_network_sets("bl", AddressSet()) == ([], [])


@pytest.mark.parametrize("api", [API_V1, API_V3])
def test_shards_pass_calicos_validation(world_set: AddressSet, api: str) -> None:
    some = AddressSet(
        CidrSet(4, world_set.v4.cidrs()[:3000]), CidrSet(6, world_set.v6.cidrs()[:3000])
    )
    _, manifests = render_network_sets(
        "egress-blocklist", some, limits=ShardLimits(1000, 50_000), api_version=api
    )
    assert len(manifests) > 4
    for manifest in manifests:
        assert manifest["apiVersion"] == api
        assert validate(manifest) == []


# --------------------------------------------------------------------------------------------
# content hash


def test_content_hash_matches_the_sync_use_case(world_set: AddressSet) -> None:
    """app.sync recomputes the hash to decide what to apply: both must agree exactly."""
    some = AddressSet(
        CidrSet(4, world_set.v4.cidrs()[:500]), CidrSet(6, world_set.v6.cidrs()[:500])
    )
    _, manifests = render_network_sets("bl", some, limits=ShardLimits(100, 16384))
    for manifest in manifests:
        stamped = manifest["metadata"]["annotations"][ownership.CONTENT_HASH_ANNOTATION]
        assert stamped == sync.content_hash(manifest) == ownership.content_hash(manifest)
    assert ownership.MANAGED_BY_LABEL == sync.MANAGED_BY_LABEL
    assert ownership.BLOCKLIST_LABEL == sync.BLOCKLIST_LABEL
    assert ownership.CONTENT_HASH_ANNOTATION == sync.CONTENT_HASH_ANNOTATION
    assert ownership.ownership_labels("x") == sync.ownership_labels("x")


def test_content_hash_ignores_api_group_but_not_content() -> None:
    addresses = AddressSet.of("192.0.2.0/24")
    (_, (v1,)), (_, (v3,)) = (
        render_network_sets("bl", addresses, api_version=api) for api in (API_V1, API_V3)
    )
    key = ownership.CONTENT_HASH_ANNOTATION
    assert v1["metadata"]["annotations"][key] == v3["metadata"]["annotations"][key]
    _, (other,) = render_network_sets("bl", AddressSet.of("192.0.2.0/25"))
    assert other["metadata"]["annotations"][key] != v1["metadata"]["annotations"][key]


# --------------------------------------------------------------------------------------------
# sharding laws


def _cidr_lists() -> st.SearchStrategy[list[str]]:
    v4 = st.builds(
        lambda n, p: f"{n >> 24 & 255}.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}/{p}",
        st.integers(0, 2**32 - 1),
        st.integers(8, 32),
    )
    return st.lists(v4, min_size=0, max_size=300)


@settings(max_examples=150, deadline=None)
@given(_cidr_lists(), st.integers(1, 40))
def test_shards_partition_the_set_within_limits(items: list[str], max_entries: int) -> None:
    addresses = AddressSet.of(*items)
    limits = ShardLimits(max_entries=max_entries, max_bytes=4096)
    shards, manifests = render_network_sets("bl", addresses, limits=limits)
    # every canonical entry is in exactly one shard, in order
    assert [n for s in shards for n in s.nets] == addresses.cidr_strings()
    buckets = [s.bucket for s in shards]
    for shard in shards:
        assert shard.nets
        assert len(shard.nets) <= max_entries or len(shard.nets) == 1
        for net in shard.nets:
            cidr = parse_cidr(net)
            assert shard.bucket.first <= cidr.first
            assert cidr.last <= shard.bucket.last
    # buckets are disjoint and ascending
    for a, b in itertools.pairwise(buckets):
        assert a.last < b.first
    for manifest in manifests:
        assert len(networksets.manifest_text(manifest).encode()) <= limits.max_bytes
    # names are unique
    assert len({s.name for s in shards}) == len(shards)


@pytest.mark.parametrize(
    "limits",
    [ShardLimits(), ShardLimits(1000, 16384), ShardLimits(50_000, 1_048_576)],
    ids=["default", "small", "large"],
)
def test_world_set_respects_size_limits(world_set: AddressSet, limits: ShardLimits) -> None:
    shards, manifests = render_network_sets("egress-blocklist", world_set, limits=limits)
    sizes = [len(networksets.manifest_text(m).encode()) for m in manifests]
    assert max(sizes) <= limits.max_bytes
    assert max(len(s.nets) for s in shards) <= limits.max_entries
    back = AddressSet.of(*(n for s in shards for n in s.nets))
    assert back == world_set
    # the loader reads a shard back to the same entries
    doc = yamlio.load_text(networksets.manifest_text(manifests[0]))[0]
    assert tuple(doc.data["spec"]["nets"]) == shards[0].nets


def test_layout_does_not_depend_on_input_order(world_set: AddressSet) -> None:
    items = world_set.cidr_strings()[::7]
    shuffled = list(items)
    random.Random(7).shuffle(shuffled)
    a = render_network_sets("bl", AddressSet.of(*items), limits=ShardLimits(500, 16384))
    b = render_network_sets("bl", AddressSet.of(*shuffled), limits=ShardLimits(500, 16384))
    assert a == b


# --------------------------------------------------------------------------------------------
# locality: what a change rewrites


def _layout(addresses: AddressSet) -> dict[str, networksets.Shard]:
    shards, _ = render_network_sets("bl", addresses)
    return {s.name: s for s in shards}


def _rewritten(old: dict[str, networksets.Shard], new: dict[str, networksets.Shard]) -> set[str]:
    return {
        n
        for n in set(old) | set(new)
        if (old[n].nets if n in old else None) != (new[n].nets if n in new else None)
    }


def test_a_single_entry_change_rewrites_at_most_three_shards(world_set: AddressSet) -> None:
    """Removing or adding one CIDR changes the one bucket that holds it; only when that bucket
    crosses the limit does it split into (or merge from) its two halves: 3 names at most."""
    base = _layout(world_set)
    rng = random.Random(1)
    items = world_set.cidr_strings()
    counts = []
    for _ in range(12):
        victim = items[rng.randrange(len(items))]
        removed = world_set - AddressSet.of(victim)
        counts.append(len(_rewritten(base, _layout(removed))))
    for text in ("45.0.0.0/24", "2c0f:fff0::/32", "203.0.113.0/24"):
        counts.append(len(_rewritten(base, _layout(world_set | AddressSet.of(text)))))
    assert max(counts) <= 3
    assert counts.count(1) >= len(counts) - 2


def _touches(shard: networksets.Shard, delta: AddressSet) -> bool:
    bucket = CidrSet(shard.family, [shard.bucket])
    return not bucket.isdisjoint(delta[shard.family])


def test_only_buckets_holding_a_change_are_rewritten(world_set: AddressSet) -> None:
    """A 1% random change (half removals, half new /24s and /48s): a shard is rewritten only
    when its bucket holds a changed address. This is the bound: no unchanged region of the
    address space is ever rewritten, whatever the size of the change."""
    rng = random.Random(11)
    kept = []
    added = []
    for fam, cidrs in ((4, world_set.v4), (6, world_set.v6)):
        items = cidrs.cidr_strings()
        k = len(items) // 200  # 0.5% removed, 0.5% added: 1% of the entries change
        drop = set(rng.sample(range(len(items)), k))
        kept.extend(c for i, c in enumerate(items) if i not in drop)
        universe = CidrSet(fam, ["0.0.0.0/0" if fam == 4 else "2000::/3"])
        for gap in rng.sample((universe - cidrs).cidrs(), k):
            plen = max(gap.prefixlen, 24 if fam == 4 else 48)
            added.append(str(Cidr(fam, gap.network, plen)))
    changed = AddressSet.of(*kept, *added)
    delta = world_set ^ changed
    old, new = _layout(world_set), _layout(changed)
    rewritten = _rewritten(old, new)
    assert rewritten
    for name in rewritten:
        shard = new.get(name) or old[name]
        assert _touches(shard, delta), f"{name} was rewritten without a change in its bucket"
    untouched = [s for s in old.values() if not _touches(s, delta)]
    assert all(new.get(s.name) == s for s in untouched)


def _fixed_count_chunks(addresses: AddressSet, size: int) -> dict[str, tuple[str, ...]]:
    """The layout the bucket design replaces: consecutive chunks of ``size`` entries, -000..."""
    out = {}
    for fam in (4, 6):
        items = addresses[fam].cidr_strings()
        for i in range(0, len(items), size):
            out[f"bl-v{fam}-{i // size:03d}"] = tuple(items[i : i + size])
    return out


def test_one_country_change_rewrites_less_than_fixed_count_chunks(
    world_set: AddressSet, data_dir: Path
) -> None:
    """Dropping one country with about 1% of the world's entries: chunks by count rewrite every
    chunk after the first removed entry; buckets rewrite only the buckets the country's
    allocations sit in."""
    root = data_dir / "countries" / "herrbischoff-2025-09"
    per_country = {}
    for f in sorted(root.glob("ipv*/*.cidr")):
        per_country.setdefault(f.stem, []).append((str(f), f.read_bytes()))
    target = world_set.cidr_count / 100
    country = min(
        per_country,
        key=lambda c: abs(parse.parse_many(per_country[c]).addresses.cidr_count - target),
    )
    without = world_set - parse.parse_many(per_country[country]).addresses
    old, new = _layout(world_set), _layout(without)
    share = sum(len(s.nets) for n, s in new.items() if old.get(n) != s) / without.cidr_count
    chunks_old, chunks_new = (_fixed_count_chunks(a, 8000) for a in (world_set, without))
    chunk_share = (
        sum(len(v) for n, v in chunks_new.items() if chunks_old.get(n) != v) / without.cidr_count
    )
    assert share < chunk_share
    assert share < 0.75


def test_limits_are_checked() -> None:
    with pytest.raises(ValueError, match="max_entries"):
        ShardLimits(max_entries=0)
    with pytest.raises(ValueError, match="max_bytes"):
        ShardLimits(max_bytes=100)


def test_fast_text_of_a_network_set_is_what_pyyaml_writes(world_set: AddressSet) -> None:
    """``manifest_text`` writes network-set entries directly; PyYAML must agree byte for byte,
    including entries that start with ':' (``::/0``, IPv4-mapped) and single addresses."""
    edge = AddressSet.of("::/128", "::ffff:0:0/96", "64:ff9b::/96", "192.0.2.7", "2001:db8::1")
    for addresses in (world_set, edge, AddressSet.of("::/0"), AddressSet.of("0.0.0.0/0")):
        _, manifests = render_network_sets("bl", addresses)
        for manifest in manifests:
            assert networksets.manifest_text(manifest) == networksets.generic_manifest_text(
                manifest
            )
    # a value the fast path does not recognise goes through PyYAML (which quotes 'yes')
    odd = {"kind": "GlobalNetworkSet", "metadata": {"name": "x"}, "spec": {"nets": ["yes"]}}
    assert networksets.manifest_text(odd) == networksets.generic_manifest_text(odd)
    assert "  - 'yes'\n" in networksets.manifest_text(odd)
