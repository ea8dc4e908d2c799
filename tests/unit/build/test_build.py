"""The build use case: union, subtraction, safety against the previous build, output files."""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import random
from pathlib import Path
from typing import Any

import pytest
import yaml

from egressguard import calico, yamlio
from egressguard.adapters.http import FakeFetcher
from egressguard.adapters.outdir import MemoryManifestDir
from egressguard.adapters.state import DirectoryStateStore
from egressguard.app import build as build_mod
from egressguard.app.build import LOCK_FILE, BuildRefused, BuildResult, read_previous
from egressguard.app.config import BlocklistConfig, parse_config
from egressguard.app.sources import SourceLoader, Status
from egressguard.cidr.sets import AddressSet
from egressguard.errors import SafetyError, SourceError, UsageError
from egressguard.render.ownership import SOURCES_ANNOTATION

FIREHOL1 = "feeds/firehol-2022/firehol_level1.netset"
FEODO = "feeds/abusech/feodo_ipblocklist_recommended.2022-07-08.txt"


def make_config(sources: list[dict[str, Any]], **spec: Any) -> BlocklistConfig:
    doc = {
        "apiVersion": "egressguard.io/v1alpha1",
        "kind": "Blocklist",
        "metadata": {"name": spec.pop("name", "egress-blocklist")},
        "spec": {"sources": sources, **spec},
    }
    return parse_config(yaml.safe_dump(doc, sort_keys=False), "blocklist.yaml")


class Builder:
    """Builds into a (fake) output directory with a real state directory, like the CLI."""

    def __init__(self, tmp_path: Path) -> None:
        self.state = DirectoryStateStore(tmp_path / "state")
        self.out = MemoryManifestDir()

    def loader(self) -> SourceLoader:
        return SourceLoader(fetcher=FakeFetcher({}), state=self.state)

    def run(
        self, config: BlocklistConfig, *, force: bool = False, write: bool = True
    ) -> BuildResult:
        previous = read_previous(self.out, config.name)
        result = build_mod.build(config, loader=self.loader(), previous=previous, force=force)
        if write:
            build_mod.write(result, self.out)
        return result


@pytest.fixture
def builder(tmp_path: Path) -> Builder:
    return Builder(tmp_path)


def lines_file(tmp_path: Path, name: str, entries: list[str]) -> str:
    path = tmp_path / name
    path.write_text("".join(f"{e}\n" for e in entries))
    return str(path)


def manifests_only(result: BuildResult) -> dict[str, bytes]:
    return {k: v for k, v in result.files.items() if k != LOCK_FILE}


# --------------------------------------------------------------------------------------------
# subtraction


SPECIAL_V4 = ["0.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "224.0.0.0/3"]


def test_firehol_level1_minus_private_and_special_ranges(builder: Builder, data_dir: Path) -> None:
    """FireHOL level1 lists bogons on purpose; blocking them would cut pods off the cluster."""
    path = data_dir / FIREHOL1
    cfg = make_config([{"name": "firehol-level1", "file": str(path), "format": "netset"}])
    result = builder.run(cfg)
    final = result.addresses
    listed = [
        ipaddress.ip_network(line.strip())
        for line in path.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert {str(n) for n in listed} >= set(SPECIAL_V4)  # the known fact this test is about
    for net in SPECIAL_V4:
        assert AddressSet.of(net).isdisjoint(final), net
    special = [ipaddress.ip_network(c) for c, _ in build_mod.SPECIAL_PURPOSE if ":" not in c]
    public_dns = [ipaddress.ip_network(a) for a in build_mod.PUBLIC_DNS if ":" not in a]
    critical = [ipaddress.ip_network(c) for c, _ in build_mod.CRITICAL if ":" not in c]
    kept = 0
    for net in listed:
        if not any(net.overlaps(s) for s in (*special, *public_dns, *critical)):
            assert str(net) in final, net  # everything else of the feed is still blocked
            kept += 1
    assert kept > 2000
    removed = {s.category: s.removed.cidr_strings() for s in result.subtractions if s.removed}
    assert {"0.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"} <= set(
        removed["special-purpose"]
    )
    assert "224.0.0.0/3" in AddressSet.of(*removed["special-purpose"])
    summary = result.to_json()
    (src,) = summary["sources"]
    assert src["subtracted"] > 0
    assert any(s["category"] == "special-purpose" for s in summary["subtracted"])
    assert any("subtracted (special-purpose): 0.0.0.0/8" in line for line in result.summary_lines())


def test_protected_addresses_are_always_subtracted(builder: Builder, tmp_path: Path) -> None:
    feed = lines_file(
        tmp_path,
        "feed.txt",
        [
            "20.50.60.0/24",  # holds the API server
            "10.244.0.0/16",  # the pod network
            "168.63.128.0/23",  # holds the Azure wireserver
            "169.254.0.0/16",  # holds instance metadata
            "8.8.8.0/24",  # holds a public resolver
            "198.51.100.0/24",  # plain blocked network
            "2001:db8:bad::/48",
        ],
    )
    cfg = make_config(
        [{"name": "feed", "file": feed, "format": "plain"}],
        protect={"api_server": ["20.50.60.70"], "cluster_cidrs": ["10.244.0.0/16"]},
    )
    result = builder.run(cfg)
    final = result.addresses
    for address in ("20.50.60.70", "10.244.1.1", "168.63.129.16", "169.254.169.254", "8.8.8.8"):
        assert not final.contains_address(address), address
    for address in ("20.50.60.71", "168.63.129.17", "8.8.8.9", "198.51.100.1", "2001:db8:bad::1"):
        assert final.contains_address(address), address
    removed = {s.category: s.removed.cidr_strings() for s in result.subtractions if s.removed}
    assert removed["protect.api_server"] == ["20.50.60.70/32"]
    assert removed["protect.cluster_cidrs"] == ["10.244.0.0/16"]
    assert removed["critical"] == ["168.63.129.16/32", "169.254.169.254/32"]
    assert removed["public-dns"] == ["8.8.8.8/32"]


def test_public_dns_can_be_blocked_on_purpose(builder: Builder, data_dir: Path) -> None:
    """The Feodo mirror lists 8.8.8.8: kept out by default, kept in when asked."""
    source = [{"name": "feodo", "file": str(data_dir / FEODO), "format": "abusech"}]
    default = builder.run(make_config(source), write=False)
    assert not default.addresses.contains_address("8.8.8.8")
    allowed = builder.run(make_config(source, safety={"protect_public_dns": False}), write=False)
    assert allowed.addresses.contains_address("8.8.8.8")
    # the platform addresses stay protected either way
    assert not allowed.addresses.contains_address("169.254.169.254")


def test_allowlist_subtracts_and_reports_a_source_it_empties(builder: Builder) -> None:
    cfg = make_config(
        [
            {"name": "partners", "static": ["198.51.100.0/25", "198.51.100.128/26"]},
            {"name": "bad", "static": ["203.0.113.0/24"]},
        ],
        allow=["198.51.100.0/24", "203.0.113.7"],
    )
    result = builder.run(cfg)
    assert result.addresses.cidr_strings() == [
        "203.0.113.0/30",
        "203.0.113.4/31",
        "203.0.113.6/32",
        "203.0.113.8/29",
        "203.0.113.16/28",
        "203.0.113.32/27",
        "203.0.113.64/26",
        "203.0.113.128/25",
    ]
    by_name = {o.name: o for o in result.sources}
    assert by_name["partners"].emptied
    assert not by_name["bad"].emptied
    assert any("partners" in w and "remove every one of its 2 CIDRs" in w for w in result.warnings)
    assert result.to_json()["sources"][0]["emptied"] is True


# --------------------------------------------------------------------------------------------
# determinism


def test_two_builds_are_byte_identical(tmp_path: Path, data_dir: Path) -> None:
    sources = [
        {"name": "firehol-level1", "file": str(data_dir / FIREHOL1), "format": "netset"},
        {"name": "feodo", "file": str(data_dir / FEODO), "format": "abusech"},
        {"name": "tor", "file": str(data_dir / "feeds/tor/exit-addresses"), "format": "tor-exits"},
    ]
    a = Builder(tmp_path / "a").run(make_config(sources))
    b = Builder(tmp_path / "b").run(make_config(list(reversed(sources))))
    assert a.files == b.files  # the order of sources in the config does not matter either


def test_shuffled_input_gives_the_same_manifests(tmp_path: Path, data_dir: Path) -> None:
    lines = [
        ln for ln in (data_dir / FIREHOL1).read_text().splitlines() if ln and not ln.startswith("#")
    ]
    shuffled = list(lines)
    random.Random(3).shuffle(shuffled)
    one = lines_file(tmp_path, "one.txt", lines)
    two = lines_file(tmp_path, "two.txt", shuffled)
    a = Builder(tmp_path / "a").run(make_config([{"name": "f", "file": one, "format": "plain"}]))
    b = Builder(tmp_path / "b").run(make_config([{"name": "f", "file": two, "format": "plain"}]))
    assert manifests_only(a) == manifests_only(b)
    # the lock still tells the two downloads apart
    assert a.files[LOCK_FILE] != b.files[LOCK_FILE]


# --------------------------------------------------------------------------------------------
# the output


def test_files_are_in_apply_order_and_valid(builder: Builder, data_dir: Path) -> None:
    cfg = make_config(
        [{"name": "firehol-level1", "file": str(data_dir / FIREHOL1), "format": "netset"}],
        shards={"max_entries": 1000},
        policy={"exempt_namespaces": ["kube-system"]},
    )
    result = builder.run(cfg)
    names = list(result.files)
    assert names[0] == "00-tier-egressguard.yaml"
    assert names[-2] == "20-globalnetworkpolicy-egressguard.egress-blocklist.yaml"
    assert names[-1] == LOCK_FILE
    assert all(n.startswith("10-globalnetworkset-egress-blocklist-v4-") for n in names[1:-2])
    assert len(result.shards) >= 3
    docs = yamlio.load_text(result.stream(), "stream")
    assert [d.data["kind"] for d in docs] == [
        "Tier",
        *["GlobalNetworkSet"] * len(result.shards),
        "GlobalNetworkPolicy",
    ]
    loaded = calico.load_documents(docs)
    assert not loaded.problems
    union = AddressSet.of(
        *(n for d in docs if d.data["kind"] == "GlobalNetworkSet" for n in d.data["spec"]["nets"])
    )
    assert union == result.addresses
    assert result.stream() == "".join(v.decode() for k, v in result.files.items() if k != LOCK_FILE)


def test_sources_annotation_and_lock(builder: Builder, data_dir: Path) -> None:
    cfg = make_config(
        [
            {"name": "feodo", "file": str(data_dir / FEODO), "format": "abusech"},
            {"name": "inline", "static": ["198.51.100.0/24"]},
        ]
    )
    result = builder.run(cfg)
    policy = result.manifests[-1]
    versions = json.loads(policy["metadata"]["annotations"][SOURCES_ANNOTATION])
    assert [v["name"] for v in versions] == ["feodo", "inline"]
    assert versions[0]["dates"] == ["2022-07-08T02:09:47+00:00"]  # the feed's own "Last updated"
    assert versions[0]["digest"].startswith("sha256:")
    assert "/" not in json.dumps(versions[0]).split("sha256")[0]  # no local paths leak
    lock = json.loads(result.files[LOCK_FILE])
    assert lock["kind"] == "BuildLock"
    assert lock["blocklist"] == "egress-blocklist"
    assert lock["families"]["ipv4"]["entries"] == result.addresses.v4.cidr_count
    assert int(lock["families"]["ipv4"]["addresses"]) == result.addresses.v4.address_count
    feodo = lock["sources"][0]
    assert feodo["parts"][0]["location"] == Path(FEODO).name
    assert (
        feodo["parts"][0]["sha256"]
        == __import__("hashlib").sha256((data_dir / FEODO).read_bytes()).hexdigest()
    )
    assert feodo["ipv4"]["entries"] == 244
    assert set(lock["files"]) == set(result.files) - {LOCK_FILE}


def test_blog_mode_in_v3(builder: Builder) -> None:
    cfg = make_config(
        [{"name": "s", "static": ["198.51.100.0/24"]}],
        name="egress-traffic-blocking",
        policy={"mode": "blog", "set_label": "policy"},
        output={"api": "projectcalico.org/v3"},
    )
    result = builder.run(cfg)
    assert [(m["kind"], m["metadata"]["name"]) for m in result.manifests] == [
        ("GlobalNetworkSet", "egress-traffic-blocking-v4"),
        ("GlobalNetworkPolicy", "egress-traffic-blocking"),
        ("GlobalNetworkPolicy", "egress-traffic-blocking-allow"),
    ]
    assert {m["apiVersion"] for m in result.manifests} == {"projectcalico.org/v3"}
    assert result.manifests[0]["metadata"]["labels"]["policy"] == "egress-traffic-blocking"


def test_changes_against_the_previous_build(builder: Builder, tmp_path: Path) -> None:
    entries = [f"{a}.{b}.0.0/16" for a in (45, 91, 185) for b in range(0, 250, 2)]
    feed = tmp_path / "feed.txt"
    feed.write_text("\n".join(entries) + "\n")
    cfg = make_config(
        [{"name": "feed", "file": str(feed), "format": "plain"}], shards={"max_entries": 100}
    )
    first = builder.run(cfg)
    assert first.changes is None
    same = builder.run(cfg)
    assert same.changes is not None
    assert not same.changes.any
    assert len(same.changes.unchanged) == len(first.files) - 1
    feed.write_text("\n".join([*entries, "91.251.0.0/16"]) + "\n")
    grown = builder.run(cfg)
    assert grown.changes is not None
    changed = set(grown.changes.changed) | set(grown.changes.added) | set(grown.changes.removed)
    # one shard and the policy's source annotation; nothing else is rewritten
    shard_files = {n for n in changed if n.startswith("10-")}
    assert len(shard_files) in (1, 3)
    assert "20-globalnetworkpolicy-egressguard.egress-blocklist.yaml" in changed
    assert len(changed) <= 4


# --------------------------------------------------------------------------------------------
# safety


def test_a_source_shrinking_80_percent_is_refused_unless_forced(
    builder: Builder, tmp_path: Path
) -> None:
    entries = [f"198.{a}.{b}.0/24" for a in range(18, 20) for b in range(0, 250, 2)]
    feed = tmp_path / "feed.txt"
    feed.write_text("\n".join(entries) + "\n")
    other = [{"name": "other", "static": [f"203.0.113.{i}" for i in range(0, 250, 2)]}]
    cfg = make_config([{"name": "feed", "file": str(feed), "format": "plain"}, *other])
    builder.run(cfg)
    before = builder.out.read()
    feed.write_text("\n".join(entries[: len(entries) // 5]) + "\n")  # 80% gone
    with pytest.raises(BuildRefused) as info:
        builder.run(cfg)
    err = info.value
    assert isinstance(err, SafetyError)
    assert err.exit_code == 3
    assert err.message == (
        "build refused: source 'feed' IPv4 would shrink by 80.0% (250 → 50 CIDRs, 64.0k → "
        "12.8k addresses) against the previous build; the limit is 50% "
        "(spec.safety.max_shrink) (and 1 more)"
    )
    assert err.hint is not None
    assert "--force" in err.hint
    assert builder.out.read() == before  # nothing written
    shrinks = [c for c in err.result.violations if c.check == "shrink"]
    assert {c.subject for c in shrinks} == {"source 'feed' IPv4", "the IPv4 set"}
    forced = builder.run(cfg, force=True)
    assert forced.forced
    assert forced.to_json()["forced"] is True
    assert any(line.startswith("  FORCED shrink") for line in forced.summary_lines())
    assert builder.out.read() != before


def test_per_source_max_shrink_overrides_the_blocklist_limit(
    builder: Builder, tmp_path: Path
) -> None:
    feed = tmp_path / "feed.txt"
    big = [f"198.51.{i}.0/24" for i in range(0, 100, 2)]
    keep = [{"name": "stable", "static": [f"203.0.{i}.0/24" for i in range(0, 250, 2)]}]
    feed.write_text("\n".join(big) + "\n")
    cfg = make_config(
        [{"name": "c2", "file": str(feed), "format": "plain", "max_shrink": 0.9}, *keep]
    )
    builder.run(cfg)
    feed.write_text("\n".join(big[:15]) + "\n")  # 70% gone: allowed for this source
    result = builder.run(cfg)
    check = next(c for c in result.checks if c.subject == "source 'c2' IPv4")
    assert check.ok
    assert check.value == pytest.approx(0.7)
    assert check.limit == 0.9


def test_union_shrink_is_measured_in_addresses_too(builder: Builder, tmp_path: Path) -> None:
    """Losing one big block among many small ones is a shrink even if the entry count holds."""
    feed = tmp_path / "feed.txt"
    small = [f"203.0.113.{i}" for i in range(0, 200, 2)]
    feed.write_text("\n".join([*small, "45.0.0.0/8"]) + "\n")
    cfg = make_config([{"name": "f", "file": str(feed), "format": "plain"}])
    builder.run(cfg)
    feed.write_text("\n".join([*small, "45.0.0.0/24"]) + "\n")
    with pytest.raises(BuildRefused) as info:
        builder.run(cfg)
    messages = {c.subject: c.message for c in info.value.result.violations}
    assert messages["the IPv4 set"].startswith(
        "the IPv4 set would shrink by 100.0% (101 → 101 CIDRs, 16.8M → 356 addresses)"
    )


def test_hand_edited_previous_build_is_counted_from_its_manifests(
    builder: Builder, tmp_path: Path
) -> None:
    cfg = make_config([{"name": "s", "static": [f"198.51.{i}.0/24" for i in range(0, 200, 2)]}])
    builder.run(cfg)
    assert builder.out.files is not None
    lock = json.loads(builder.out.files[LOCK_FILE])
    lock["families"]["ipv4"] = {"entries": 1, "addresses": "1"}  # a lie the files contradict
    builder.out.files[LOCK_FILE] = json.dumps(lock).encode()
    shard = next(n for n in builder.out.files if n.startswith("10-"))
    builder.out.files[shard] += b""  # unchanged bytes: the lock still matches the files
    previous = read_previous(builder.out, cfg.name)
    assert previous is not None
    assert previous.family_counts()[4].entries == 1
    builder.out.files[shard] = builder.out.files[shard].replace(b"198.51.0.0/24", b"198.51.0.0/25")
    previous = read_previous(builder.out, cfg.name)
    assert previous is not None
    assert previous.family_counts()[4].entries == 100  # counted from the (edited) shard


@pytest.mark.parametrize(
    ("static", "family"),
    [(["0.0.0.0/1", "128.0.0.0/1"], 4), (["::/0"], 6), (["2000::/4", "3000::/5"], 6)],
)
def test_a_set_covering_the_internet_is_refused(
    builder: Builder, static: list[str], family: int
) -> None:
    cfg = make_config([{"name": "everything", "static": static}])
    with pytest.raises(BuildRefused) as info:
        builder.run(cfg)
    (violation,) = info.value.result.violations
    assert violation.check == "coverage"
    assert violation.subject == f"the IPv{family} set"
    assert "as good as a default deny of all egress" in violation.message
    assert builder.out.read() is None
    assert builder.run(cfg, force=True).forced


def test_world_country_set_is_refused_by_coverage(builder: Builder, data_dir: Path) -> None:
    cfg = make_config(
        [
            {
                "name": "world",
                "geo": {
                    "provider": "cidr-dir",
                    "files": str(data_dir / "countries" / "herrbischoff-2025-09"),
                },
            }
        ]
    )
    with pytest.raises(BuildRefused) as info:
        builder.run(cfg)
    (violation,) = info.value.result.violations
    assert violation.subject == "the IPv4 set"
    assert violation.value is not None
    assert violation.value > 0.95


def test_more_entries_than_the_limit_is_refused(builder: Builder) -> None:
    cfg = make_config(
        [{"name": "s", "static": [f"198.51.100.{i}" for i in range(0, 256, 2)]}],
        safety={"max_entries": 100},
    )
    with pytest.raises(BuildRefused, match="128 CIDRs; the limit is 100"):
        builder.run(cfg)


# --------------------------------------------------------------------------------------------
# failing sources


def test_a_source_that_never_loaded_fails_the_build(builder: Builder, tmp_path: Path) -> None:
    cfg = make_config(
        [
            {"name": "good", "static": ["198.51.100.0/24"]},
            {"name": "gone", "file": str(tmp_path / "missing.txt"), "format": "plain"},
        ]
    )
    with pytest.raises(SourceError) as info:
        builder.run(cfg)
    assert info.value.exit_code == 4
    assert "gone:" in info.value.message
    assert "optional: true" in (info.value.hint or "")
    assert builder.out.read() is None


def test_an_optional_source_that_never_loaded_is_reported(builder: Builder, tmp_path: Path) -> None:
    cfg = make_config(
        [
            {"name": "good", "static": ["198.51.100.0/24"]},
            {
                "name": "gone",
                "file": str(tmp_path / "missing.txt"),
                "format": "plain",
                "optional": True,
            },
        ]
    )
    result = builder.run(cfg)
    assert result.addresses == AddressSet.of("198.51.100.0/24")
    assert any("gone (optional) contributes nothing" in w for w in result.warnings)
    gone = next(s for s in result.to_json()["sources"] if s["name"] == "gone")
    assert gone["status"] == "failed-no-copy"
    assert gone["version"] == {"name": "gone", "kind": "file", "missing": True}


def test_a_broken_source_falls_back_to_its_last_good_copy(
    builder: Builder, tmp_path: Path, data_dir: Path
) -> None:
    feed = tmp_path / "feodo.txt"
    feed.write_bytes((data_dir / FEODO).read_bytes())
    cfg = make_config([{"name": "feodo", "file": str(feed), "format": "abusech"}])
    good = builder.run(cfg)
    feed.write_text("<html><body>502 Bad Gateway</body></html>\n")
    fallback = builder.run(cfg)
    assert fallback.sources[0].result.status is Status.FALLBACK
    assert manifests_only(fallback) == manifests_only(good)
    assert any("using the last good copy" in w for w in fallback.warnings)
    assert fallback.to_json()["sources"][0]["status"] == "fallback-to-last-good"
    assert "fallback-to-last-good" in "\n".join(fallback.summary_lines())


# --------------------------------------------------------------------------------------------
# the previous build's directory


def test_a_directory_egressguard_did_not_write_is_refused() -> None:
    foreign = MemoryManifestDir({"deployment.yaml": b"kind: Deployment\n"}, "out")
    with pytest.raises(UsageError, match="did not write"):
        read_previous(foreign, "bl")
    assert read_previous(MemoryManifestDir({}), "bl") is None
    assert read_previous(MemoryManifestDir(), "bl") is None


def test_files_added_to_a_build_directory_are_not_deleted(builder: Builder) -> None:
    cfg = make_config([{"name": "s", "static": ["198.51.100.0/24"]}])
    builder.run(cfg)
    assert builder.out.files is not None
    builder.out.files["notes.md"] = b"mine\n"
    with pytest.raises(UsageError, match=r"did not write \(notes.md\)"):
        builder.run(cfg)
    assert builder.out.files["notes.md"] == b"mine\n"


def test_another_blocklists_directory_is_refused(builder: Builder) -> None:
    builder.run(make_config([{"name": "s", "static": ["198.51.100.0/24"]}], name="one"))
    with pytest.raises(UsageError, match="holds the build of blocklist 'one', not 'two'"):
        builder.run(make_config([{"name": "s", "static": ["198.51.100.0/24"]}], name="two"))


def test_a_policy_set_that_denies_all_egress_is_refused(
    builder: Builder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The renderer never produces one; if it ever did, the build must not pass it on."""
    real = build_mod.policies.policy_resources

    def without_pass(settings: Any, api: str) -> list[Any]:
        tier, gnp = real(settings, api)
        return [tier, dataclasses.replace(gnp, egress=gnp.egress[:-1])]

    monkeypatch.setattr(build_mod.policies, "policy_resources", without_pass)
    with pytest.raises(BuildRefused) as info:
        builder.run(make_config([{"name": "s", "static": ["198.51.100.0/24"]}]))
    assert info.value.result.violations[0].check == "policy"
