"""Calico's namespace / service-account rewrites: the parts the conformance table does not show."""

from __future__ import annotations

import pytest

from egressguard import selector
from egressguard.errors import SelectorError

POD = {"policy": "blocked", "projectcalico.org/namespace": "default", "pcns.team": "a"}
GNS = {"policy": "blocked"}


def test_global_namespace_selector_reaches_network_sets_but_not_pods() -> None:
    """The reference scenario (spec §1.3 note): selector alone also matches pods."""
    plain = selector.entity_rule_selector(selector="policy == 'blocked'")
    scoped = selector.entity_rule_selector(
        selector="policy == 'blocked'", namespace_selector="global()"
    )
    assert plain is not None
    assert scoped is not None
    assert plain.matches(POD)
    assert plain.matches(GNS)
    assert not scoped.matches(POD)
    assert scoped.matches(GNS)


def test_namespace_selector_reaches_pods_of_matching_namespaces_only() -> None:
    scoped = selector.entity_rule_selector(
        selector="policy == 'blocked'", namespace_selector="team == 'a'"
    )
    assert scoped is not None
    assert scoped.matches(POD)
    assert not scoped.matches({**POD, "pcns.team": "b"})
    assert not scoped.matches(GNS)
    everything_namespaced = selector.namespace_scope("all()")
    assert everything_namespaced.matches(POD)
    assert not everything_namespaced.matches(GNS)


def test_invalid_field_reports_its_own_text_and_column() -> None:
    with pytest.raises(SelectorError) as info:
        selector.entity_rule_selector(selector="policy == 'x'", namespace_selector="team = 'a'")
    assert info.value.selector == "team = 'a'"
    assert info.value.column == 6
    with pytest.raises(SelectorError) as info:
        selector.policy_selector("has(a)\n", namespace_selector="team == 'a'")
    assert info.value.selector == "has(a)\n"
    assert info.value.column == 7


def test_not_selector_is_validated_but_not_part_of_the_result() -> None:
    with pytest.raises(SelectorError):
        selector.entity_rule_selector(not_selector="a ==")
    assert selector.entity_rule_selector(not_selector="has(a)") is None


def test_blank_selector_is_pasted_as_written_and_felix_cannot_parse_it() -> None:
    with pytest.raises(SelectorError):
        selector.entity_rule_selector(selector=" ", namespace="prod")
    with pytest.raises(SelectorError):
        selector.policy_selector(" ", namespace_selector="team == 'a'")
    assert selector.entity_rule_selector(selector=" ") == selector.parse("all()")


def test_namespaced_policy_has_no_namespace_selector() -> None:
    with pytest.raises(ValueError, match="namespaceSelector"):
        selector.policy_selector("has(a)", namespace_selector="all()", namespace="prod")


def test_strict_false_drops_an_invalid_namespace_selector_like_calico() -> None:
    loose = selector.entity_rule_selector(
        selector="policy == 'blocked'", namespace_selector="global(", strict=False
    )
    assert loose == selector.parse("policy == 'blocked'")
    assert loose is not None
    assert loose.matches(POD)  # the dangerous consequence: pods are reached again
