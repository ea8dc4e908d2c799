"""What ``verify`` decides to probe, and what it expects each probe to observe."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from egressguard import calico, yamlio
from egressguard.app import verify
from egressguard.app.verify import PortSpec, Verdict, VerifyOptions
from egressguard.cidr.sets import AddressSet
from egressguard.errors import InputError, UsageError

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "blog"
BLOG_NETS = {"217.160.0.92", "217.160.0.111", "217.160.223.1"}


def load(*docs: dict[str, Any]) -> calico.Manifests:
    loaded = calico.load_text(yamlio.dump_documents(list(docs)), "test.yaml")
    assert not loaded.problems, loaded.problems
    return loaded


def gns(name: str, nets: list[str], **labels: str) -> dict[str, Any]:
    return {
        "apiVersion": "projectcalico.org/v3",
        "kind": "GlobalNetworkSet",
        "metadata": {"name": name, "labels": labels},
        "spec": {"nets": nets},
    }


def gnp(name: str, order: float, egress: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "projectcalico.org/v3",
        "kind": "GlobalNetworkPolicy",
        "metadata": {"name": name},
        "spec": {"order": order, "types": ["Egress"], "egress": egress, **spec},
    }


DENY_BLOCKED = {"action": "Deny", "destination": {"selector": "blocked == 'true'"}}
ALLOW_ALL = gnp("allow-rest", 1000, [{"action": "Allow"}])


@pytest.fixture(scope="module")
def blog() -> calico.Manifests:
    return calico.load_paths([EXAMPLES])


# --------------------------------------------------------------------------- sources


def test_the_blog_blocklist_is_the_one_source(blog: calico.Manifests) -> None:
    sources, notes = verify.blocked_sources(blog)
    assert notes == []
    (source,) = sources
    assert (source.kind, source.name, source.namespace) == (
        "GlobalNetworkSet",
        "egress-traffic-blocking",
        None,
    )
    assert set(source.nets) == {f"{a}/32" for a in BLOG_NETS}
    assert source.rules == ("gnp/egress-traffic-blocking egress[1]",)  # the Deny, not the Log


def test_sources_follow_selectors_not_names() -> None:
    manifests = load(
        gns("a", ["192.0.2.0/28"], blocked="true"),
        gns("b", ["198.51.100.0/28"], blocked="false"),
        gns("c", ["203.0.113.0/28"]),
        gnp("block", 0, [DENY_BLOCKED]),
        ALLOW_ALL,
    )
    sources, _ = verify.blocked_sources(manifests)
    assert [s.name for s in sources] == ["a"]


def test_inline_nets_of_a_deny_rule_are_a_source() -> None:
    manifests = load(
        gnp("block", 0, [{"action": "Deny", "destination": {"nets": ["203.0.113.0/24"]}}]),
        ALLOW_ALL,
    )
    (source,) = verify.blocked_sources(manifests)[0]
    assert source.kind == "rule"
    assert source.name == "gnp/block egress[0]"
    assert source.nets == ("203.0.113.0/24",)


def test_a_networkset_selected_by_a_namespaced_policy_is_a_source() -> None:
    netset = {
        "apiVersion": "projectcalico.org/v3",
        "kind": "NetworkSet",
        "metadata": {"name": "bad", "namespace": "team-a", "labels": {"blocked": "true"}},
        "spec": {"nets": ["198.51.100.64/26"]},
    }
    other_ns = {**netset, "metadata": {**netset["metadata"], "namespace": "team-b"}}
    np = {
        "apiVersion": "projectcalico.org/v3",
        "kind": "NetworkPolicy",
        "metadata": {"name": "block", "namespace": "team-a"},
        "spec": {"order": 0, "types": ["Egress"], "egress": [DENY_BLOCKED]},
    }
    sources, _ = verify.blocked_sources(load(netset, other_ns, np))
    # A NetworkPolicy's rule selector reaches its own namespace only.
    assert [(s.kind, s.namespace, s.name) for s in sources] == [("NetworkSet", "team-a", "bad")]


def test_staged_policies_and_allow_rules_select_no_source() -> None:
    staged = {
        "apiVersion": "projectcalico.org/v3",
        "kind": "StagedGlobalNetworkPolicy",
        "metadata": {"name": "later"},
        "spec": {"order": 0, "types": ["Egress"], "egress": [DENY_BLOCKED]},
    }
    allow = gnp("allow", 0, [{"action": "Allow", "destination": {"selector": "blocked == 'true'"}}])
    manifests = load(gns("a", ["192.0.2.0/28"], blocked="true"), staged, allow)
    assert verify.blocked_sources(manifests)[0] == []


# --------------------------------------------------------------------------- the blog plan


def test_blog_plan_samples_the_blocklist_and_expects_the_deny(blog: calico.Manifests) -> None:
    plan = verify.make_plan(blog, VerifyOptions(allowed=("198.51.100.7",)))
    (ns,) = plan.namespaces
    blocked = [p for p in ns.probes if p.target.source != verify.ALLOWED_SOURCE]
    # The set has three /32 entries: three samples take all three.
    assert {p.spec.dst for p in blocked} == BLOG_NETS
    for p in blocked:
        assert p.target.entry == f"{p.spec.dst}/32"
        assert p.expected.verdict is Verdict.BLOCKED
        assert p.expected.reason == (
            "default gnp/egress-traffic-blocking egress[1] Deny "
            f"(GlobalNetworkSet egress-traffic-blocking {p.spec.dst}/32)"
        )
    (allowed,) = [p for p in ns.probes if p.target.source == verify.ALLOWED_SOURCE]
    assert allowed.spec.dst == "198.51.100.7"
    assert allowed.expected.verdict is Verdict.ALLOWED
    assert allowed.expected.reason == "default gnp/egress-traffic-allow egress[0] Allow"
    assert [p.spec.index for p in ns.probes] == list(range(4))
    assert all((p.spec.proto, p.spec.port) == ("tcp", 443) for p in ns.probes)


def test_every_destination_is_probed_on_every_port(blog: calico.Manifests) -> None:
    ports = (PortSpec("tcp", 443), PortSpec("tcp", 80), PortSpec("udp", 53))
    plan = verify.make_plan(blog, VerifyOptions(allowed=("192.0.2.1",), ports=ports))
    pairs = {(p.spec.dst, p.spec.proto, p.spec.port) for p in plan.namespaces[0].probes}
    assert len(pairs) == 4 * 3


def test_an_allowed_address_is_never_sampled_and_is_expected_blocked_when_listed(
    blog: calico.Manifests,
) -> None:
    plan = verify.make_plan(blog, VerifyOptions(allowed=("217.160.0.92",)))
    probes = plan.namespaces[0].probes
    sampled = [p for p in probes if p.target.source != verify.ALLOWED_SOURCE]
    assert {p.spec.dst for p in sampled} == BLOG_NETS - {"217.160.0.92"}
    (named,) = [p for p in probes if p.target.source == verify.ALLOWED_SOURCE]
    # The user named an address of their own blocklist: the evaluator says it is blocked.
    assert named.expected.verdict is Verdict.BLOCKED


def test_without_allowed_destinations_the_plan_says_what_it_cannot_prove(
    blog: calico.Manifests,
) -> None:
    plan = verify.make_plan(blog, VerifyOptions())
    assert any("no --allowed destination" in n for n in plan.notes)
    plan = verify.make_plan(blog, VerifyOptions(allowed=("192.0.2.1",)))
    assert not any("no --allowed destination" in n for n in plan.notes)


# --------------------------------------------------------------------------- per namespace, labels


def test_expectations_are_per_namespace() -> None:
    manifests = load(
        gns("a", ["192.0.2.0/28"], blocked="true"),
        gnp("block", 0, [DENY_BLOCKED], namespaceSelector="projectcalico.org/name != 'ops'"),
        ALLOW_ALL,
    )
    plan = verify.make_plan(
        manifests, VerifyOptions(namespaces=("default", "ops"), samples=1, allowed=())
    )
    verdicts = {n.namespace: n.probes[0].expected.verdict for n in plan.namespaces}
    assert verdicts == {"default": Verdict.BLOCKED, "ops": Verdict.ALLOWED}
    assert plan.namespaces[0].probes[0].spec == plan.namespaces[1].probes[0].spec


def test_pod_labels_decide_which_policies_select_the_probe() -> None:
    manifests = load(
        gns("a", ["192.0.2.0/28"], blocked="true"),
        gnp("block-web", 0, [DENY_BLOCKED], selector="app == 'web'"),
        ALLOW_ALL,
    )
    plain = verify.make_plan(manifests, VerifyOptions(samples=1))
    as_web = verify.make_plan(manifests, VerifyOptions(samples=1, pod_labels={"app": "web"}))
    assert plain.namespaces[0].probes[0].expected.verdict is Verdict.ALLOWED
    assert as_web.namespaces[0].probes[0].expected.verdict is Verdict.BLOCKED


def test_a_port_restricted_deny_expects_other_ports_allowed() -> None:
    deny_443 = {
        "action": "Deny",
        "protocol": "TCP",
        "destination": {"selector": "blocked == 'true'", "ports": [443]},
    }
    manifests = load(gns("a", ["192.0.2.5/32"], blocked="true"), gnp("b", 0, [deny_443]), ALLOW_ALL)
    ports = (PortSpec("tcp", 443), PortSpec("tcp", 80), PortSpec("udp", 443))
    plan = verify.make_plan(manifests, VerifyOptions(ports=ports))
    got = {(p.spec.proto, p.spec.port): p.expected.verdict for p in plan.namespaces[0].probes}
    assert got == {
        ("tcp", 443): Verdict.BLOCKED,
        ("tcp", 80): Verdict.ALLOWED,
        ("udp", 443): Verdict.ALLOWED,
    }


def test_a_missing_allow_policy_blocks_the_allowed_destination_too() -> None:
    # The deny-list pitfall: without a final Allow/Pass, the end-of-tier drop blocks all egress.
    manifests = load(gns("a", ["192.0.2.0/28"], blocked="true"), gnp("block", 0, [DENY_BLOCKED]))
    plan = verify.make_plan(manifests, VerifyOptions(samples=1, allowed=("198.51.100.7",)))
    allowed = plan.namespaces[0].probes[-1]
    assert allowed.target.source == verify.ALLOWED_SOURCE
    assert allowed.expected.verdict is Verdict.BLOCKED
    assert "end-of-tier" in allowed.expected.reason


# --------------------------------------------------------------------------- determinism


def big_set() -> calico.Manifests:
    return load(
        gns("wide", ["10.0.0.0/8", "192.0.2.0/24", "2001:db8::/32"], blocked="true"),
        gnp("block", 0, [DENY_BLOCKED]),
        ALLOW_ALL,
    )


def test_the_same_seed_gives_the_same_plan_and_run_id() -> None:
    manifests = big_set()
    one = verify.make_plan(manifests, VerifyOptions(seed=7, samples=5))
    two = verify.make_plan(manifests, VerifyOptions(seed=7, samples=5))
    assert one == two
    assert verify.render_jobs(one) == verify.render_jobs(two)


def test_another_seed_gives_other_samples_and_another_run_id() -> None:
    manifests = big_set()
    one = verify.make_plan(manifests, VerifyOptions(seed=1, samples=5))
    two = verify.make_plan(manifests, VerifyOptions(seed=2, samples=5))
    assert {t.address for t in one.targets} != {t.address for t in two.targets}
    assert one.run_id != two.run_id


def test_samples_spread_over_entries_and_stay_inside_them() -> None:
    plan = verify.make_plan(big_set(), VerifyOptions(samples=3))
    space = AddressSet.of("10.0.0.0/8", "192.0.2.0/24", "2001:db8::/32")
    assert len(plan.targets) == 3
    assert {t.entry for t in plan.targets} == {"10.0.0.0/8", "192.0.2.0/24", "2001:db8::/32"}
    for t in plan.targets:
        assert space.contains_address(t.address)
        assert AddressSet.of(t.entry or "").contains_address(t.address)


def test_family_limits_the_samples() -> None:
    plan = verify.make_plan(big_set(), VerifyOptions(samples=4, family=6))
    assert {t.entry for t in plan.targets} == {"2001:db8::/32"}
    assert all(":" in t.address for t in plan.targets)


def test_an_explicit_run_id_names_the_jobs() -> None:
    plan = verify.make_plan(big_set(), VerifyOptions(run_id="abc123"))
    assert plan.run_id == "abc123"
    assert verify.render_jobs(plan)[0]["metadata"]["name"] == "egressguard-verify-abc123"


# --------------------------------------------------------------------------- refusals


def test_nothing_to_verify_is_an_input_error() -> None:
    manifests = load(gns("a", ["192.0.2.0/28"], other="x"), gnp("block", 0, [DENY_BLOCKED]))
    with pytest.raises(InputError, match="nothing to verify") as info:
        verify.make_plan(manifests, VerifyOptions())
    assert "--allowed" in str(info.value.hint)


def test_only_allowed_destinations_still_makes_a_plan() -> None:
    plan = verify.make_plan(load(ALLOW_ALL), VerifyOptions(allowed=("192.0.2.9",)))
    assert [t.address for t in plan.targets] == ["192.0.2.9"]


@pytest.mark.parametrize("bad", ["example.com", "192.0.2.0/24", "192.0.2.300", ""])
def test_allowed_must_be_a_single_address(blog: calico.Manifests, bad: str) -> None:
    with pytest.raises(UsageError, match="--allowed"):
        verify.make_plan(blog, VerifyOptions(allowed=(bad,)))


def test_too_many_probes_is_refused_before_anything_runs() -> None:
    ports = tuple(PortSpec("tcp", p) for p in range(1, 41))
    with pytest.raises(UsageError, match="probes per namespace") as info:
        verify.make_plan(big_set(), VerifyOptions(samples=16, ports=ports))
    assert "--samples" in str(info.value.hint)
