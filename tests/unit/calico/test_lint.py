"""Every lint id has a positive case (the pitfall, reported) and a negative case (its fix, not
reported); plus locations, options and the reference scenario."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from egressguard import calico
from egressguard.calico import lint as lt
from egressguard.calico.load import Manifests, load_text
from egressguard.errors import InputError

REPO = Path(__file__).resolve().parents[3]

SET = """
apiVersion: crd.projectcalico.org/v1
kind: GlobalNetworkSet
metadata: {name: blocked, labels: {policy: blocked}}
spec: {nets: [198.51.100.0/24]}
"""

BLOCK = """
apiVersion: crd.projectcalico.org/v1
kind: GlobalNetworkPolicy
metadata: {name: block}
spec:
  order: 0
  types: [Egress]
  egress:
    - {action: Log, destination: {selector: "policy == 'blocked'", namespaceSelector: global()}}
    - {action: Deny, destination: {selector: "policy == 'blocked'", namespaceSelector: global()}}
"""

ALLOW_ALL = """
apiVersion: crd.projectcalico.org/v1
kind: GlobalNetworkPolicy
metadata: {name: allow-all}
spec: {order: 1000, types: [Egress], egress: [{action: Allow}]}
"""

TIERED = """
apiVersion: crd.projectcalico.org/v1
kind: Tier
metadata: {name: egressguard}
spec: {order: 100}
---
apiVersion: crd.projectcalico.org/v1
kind: GlobalNetworkPolicy
metadata: {name: block}
spec:
  tier: egressguard
  order: 0
  types: [Egress]
  egress:
    - {action: Log, destination: {selector: "policy == 'blocked'", namespaceSelector: global()}}
    - {action: Deny, destination: {selector: "policy == 'blocked'", namespaceSelector: global()}}
    - {action: Pass}
"""


def gnp(egress: str, *, name: str = "p", extra: str = "") -> str:
    return f"""
apiVersion: crd.projectcalico.org/v1
kind: GlobalNetworkPolicy
metadata: {{name: {name}}}
spec:
  order: 0
  types: [Egress]{extra}
  egress:
{egress}
"""


def docs(*parts: str) -> str:
    return "\n---\n".join(p.strip("\n") for p in parts)


def run(text: str, **options: Any) -> list[lt.Finding]:
    return lt.lint(load_text(text, "policy.yaml"), lt.LintOptions(**options))


def ids(text: str, **options: Any) -> set[str]:
    return {f.id for f in run(text, **options)}


POD_DB = """
apiVersion: v1
kind: Pod
metadata: {name: db-0, namespace: shop, labels: {app: db}}
spec: {containers: [{name: c, image: x}]}
status: {podIP: 10.244.1.5}
"""
POD_WEB = POD_DB.replace("db-0", "web-0").replace("app: db", "app: web")

# id -> (positive manifests, negative manifests, options)
CASES: dict[str, tuple[str, str, dict[str, Any]]] = {
    "invalid-document": (
        gnp("    - {action: deny}"),
        gnp("    - {action: Deny}"),
        {},
    ),
    "log-never-fires": (
        docs(SET, gnp("    - {action: Deny, destination: {nets: [198.51.100.0/24]}}\n"
                      "    - {action: Log, destination: {nets: [198.51.100.0/24]}}\n"
                      "    - {action: Allow}")),
        docs(SET, gnp("    - {action: Log, destination: {nets: [198.51.100.0/24]}}\n"
                      "    - {action: Deny, destination: {nets: [198.51.100.0/24]}}\n"
                      "    - {action: Allow}")),
        {},
    ),
    "shadowed-rule": (
        gnp("    - {action: Allow}\n    - {action: Deny, destination: {nets: [198.51.100.0/24]}}"),
        gnp("    - {action: Deny, destination: {nets: [198.51.100.0/24]}}\n    - {action: Allow}"),
        {},
    ),
    "egress-default-deny": (
        docs(SET, BLOCK),
        docs(SET, BLOCK, ALLOW_ALL),
        {},
    ),
    "log-only-policy": (
        gnp("    - {action: Log}"),
        gnp("    - {action: Log}\n    - {action: Pass}"),
        {},
    ),
    "implicit-types": (
        """
apiVersion: crd.projectcalico.org/v1
kind: GlobalNetworkPolicy
metadata: {name: ingress-only}
spec: {ingress: [{action: Allow, protocol: TCP, destination: {ports: [22]}}]}
""",
        """
apiVersion: crd.projectcalico.org/v1
kind: GlobalNetworkPolicy
metadata: {name: ingress-only}
spec: {types: [Ingress], ingress: [{action: Allow, protocol: TCP, destination: {ports: [22]}}]}
""",
        {},
    ),
    "allow-all-bypasses-k8s-isolation": (
        docs(SET, BLOCK, ALLOW_ALL),
        docs(SET, TIERED),
        {},
    ),
    "selector-reaches-pods": (
        docs(SET, gnp("    - {action: Deny, destination: {selector: \"policy == 'blocked'\"}}\n"
                      "    - {action: Allow}")),
        docs(SET, gnp("    - {action: Deny, destination: {selector: \"policy == 'blocked'\", "
                      "namespaceSelector: global()}}\n    - {action: Allow}")),
        {},
    ),
    "selector-matches-no-set": (
        docs(SET, gnp("    - {action: Deny, destination: {selector: \"policy == 'blokced'\", "
                      "namespaceSelector: global()}}\n    - {action: Allow}")),
        docs(SET, gnp("    - {action: Deny, destination: {selector: \"policy == 'blocked'\", "
                      "namespaceSelector: global()}}\n    - {action: Allow}")),
        {},
    ),
    "unused-network-set": (
        docs(SET, gnp("    - {action: Allow}")),
        docs(SET, TIERED),
        {},
    ),
    "blocks-critical-address": (
        docs(SET.replace("198.51.100.0/24]", "198.51.100.0/24, 169.254.169.254]"), TIERED),
        docs(SET, TIERED),
        {},
    ),
    "missing-tier": (
        gnp("    - {action: Pass}", extra="\n  tier: egressguard"),
        docs(
            "apiVersion: crd.projectcalico.org/v1\nkind: Tier\nmetadata: {name: egressguard}\n"
            "spec: {order: 100}",
            gnp("    - {action: Pass}", extra="\n  tier: egressguard"),
        ),
        {},
    ),
    "selects-no-pods": (
        docs(POD_WEB, gnp("    - {action: Pass}", extra="\n  selector: app == 'db'")),
        docs(POD_DB, gnp("    - {action: Pass}", extra="\n  selector: app == 'db'")),
        {},
    ),
    "pass-in-last-tier": (
        gnp("    - {action: Pass}"),
        docs(
            "apiVersion: crd.projectcalico.org/v1\nkind: Tier\nmetadata: {name: first}\n"
            "spec: {order: 100}",
            gnp("    - {action: Pass}", extra="\n  tier: first"),
            gnp("    - {action: Allow}", name="later"),
        ),
        {},
    ),
    "deny-not-logged": (
        docs(SET, gnp("    - {action: Deny, destination: {nets: [198.51.100.0/24]}}\n"
                      "    - {action: Allow}")),
        docs(SET, gnp("    - {action: Log, destination: {nets: [198.51.100.0/24]}}\n"
                      "    - {action: Deny, destination: {nets: [198.51.100.0/24]}}\n"
                      "    - {action: Allow}")),
        {},
    ),
    "staged-policy": (
        gnp("    - {action: Pass}").replace("kind: GlobalNetworkPolicy",
                                             "kind: StagedGlobalNetworkPolicy"),
        gnp("    - {action: Pass}"),
        {},
    ),
}  # fmt: skip


def test_every_rule_has_cases() -> None:
    assert set(CASES) == set(lt.RULES)


@pytest.mark.parametrize("rule_id", sorted(CASES))
def test_positive(rule_id: str) -> None:
    positive, _, options = CASES[rule_id]
    found = [f for f in run(positive, **options) if f.id == rule_id]
    assert found, f"{rule_id} not reported"
    for finding in found:
        assert finding.severity is lt.RULES[rule_id].severity
        assert finding.file == "policy.yaml"
        assert finding.line is not None
        assert finding.message
        assert finding.hint


@pytest.mark.parametrize("rule_id", sorted(CASES))
def test_negative(rule_id: str) -> None:
    _, negative, options = CASES[rule_id]
    assert rule_id not in ids(negative, **options)


@pytest.mark.parametrize("rule_id", sorted(CASES))
def test_disabled(rule_id: str) -> None:
    positive, _, options = CASES[rule_id]
    assert rule_id not in ids(positive, disabled=frozenset({rule_id}), **options)


# --------------------------------------------------------------------------------------------
# Details that matter to users


def test_reference_scenario_has_warnings_but_no_error() -> None:
    findings = lt.lint(calico.load_paths([REPO / "examples" / "blog"]))
    assert not lt.has_errors(findings)
    assert {f.id for f in findings} == {"allow-all-bypasses-k8s-isolation", "selector-reaches-pods"}


def test_reference_scenario_without_allow_is_an_error() -> None:
    loaded = calico.load_paths([REPO / "examples" / "blog" / "globalnetworkpolicies.yaml",
                                REPO / "examples" / "blog" / "globalnetworkset.yaml"])  # fmt: skip
    kept = [r for r in loaded.resources if r.name != "egress-traffic-allow"]
    findings = lt.lint(Manifests.of(kept))
    assert "egress-default-deny" in {f.id for f in findings}
    assert lt.has_errors(findings)


def test_log_never_fires_location_points_at_the_log_rule() -> None:
    text = CASES["log-never-fires"][0]
    (finding,) = [f for f in run(text) if f.id == "log-never-fires"]
    assert finding.path == "spec.egress[1]"
    line = text.splitlines()[finding.line - 1] if finding.line else ""
    assert "action: Log" in line
    assert "egress[0] Deny" in finding.message


def test_invalid_document_keeps_validator_location() -> None:
    (finding,) = [f for f in run(CASES["invalid-document"][0]) if f.id == "invalid-document"]
    assert finding.path == "spec.egress[0].action"
    assert finding.line == 9


def test_critical_dns_from_service_cidr() -> None:
    text = docs(SET.replace("198.51.100.0/24]", "10.0.0.0/24]"), TIERED)
    assert "blocks-critical-address" not in ids(text)
    found = [f for f in run(text, service_cidrs=("10.0.0.0/16",))
             if f.id == "blocks-critical-address"]  # fmt: skip
    messages = " ".join(f.message for f in found)
    assert "10.0.0.10" in messages  # DNS by convention
    assert "10.0.0.1," in messages  # the API server's service IP
    assert "service network" in messages


def test_critical_aws_ipv6_metadata_and_resolver() -> None:
    """The one table of always-critical addresses (shared with build) covers IPv6 too."""
    text = docs(SET.replace("198.51.100.0/24]", "'fd00:ec2::/112']"), TIERED)
    messages = " ".join(f.message for f in run(text) if f.id == "blocks-critical-address")
    assert "fd00:ec2::254" in messages
    assert "fd00:ec2::253" in messages


def test_critical_explicit_dns_and_apiserver() -> None:
    text = docs(SET.replace("198.51.100.0/24]", "192.0.2.0/24]"), TIERED)
    found = run(text, dns_ips=("192.0.2.53",), apiserver_ips=("192.0.2.1",))
    messages = [f.message for f in found if f.id == "blocks-critical-address"]
    assert any("192.0.2.53" in m and "DNS" in m for m in messages)
    assert any("192.0.2.1," in m and "API server" in m for m in messages)


def test_critical_pod_network_overlap() -> None:
    text = docs(SET.replace("198.51.100.0/24]", "10.244.3.0/24]"), TIERED)
    (finding,) = [f for f in run(text, cluster_cidrs=("10.244.0.0/16",))
                  if f.id == "blocks-critical-address"]  # fmt: skip
    # the Log rule blocks nothing; the Deny rule is reported with the overlapping entry
    assert finding.path == "spec.egress[1]"
    assert "10.244.3.0/24" in finding.message
    assert "pod network" in finding.message


def test_critical_exempted_by_an_earlier_allow() -> None:
    text = docs(
        SET.replace("198.51.100.0/24]", "169.254.0.0/16]"),
        gnp(
            "    - {action: Allow, destination: {nets: [169.254.169.254/32]}}\n"
            "    - {action: Deny, destination: {selector: \"policy == 'blocked'\", "
            "namespaceSelector: global()}}\n"
            "    - {action: Allow}"
        ),
    )
    assert "blocks-critical-address" not in ids(text)


def test_critical_in_rule_nets() -> None:
    text = gnp(
        "    - {action: Deny, destination: {nets: [168.63.128.0/23]}}\n    - {action: Allow}"
    )
    (finding,) = [f for f in run(text) if f.id == "blocks-critical-address"]
    assert "168.63.129.16" in finding.message
    assert "wireserver" in finding.message


def test_not_nets_exempt_critical() -> None:
    text = gnp(
        "    - {action: Deny, destination: {nets: [169.254.169.254/32], "
        "notNets: [169.254.169.254/32]}}\n    - {action: Allow}"
    )
    assert "blocks-critical-address" not in ids(text)


def test_namespaced_policy_selector_hint_mentions_global() -> None:
    text = docs(
        SET,
        """
apiVersion: crd.projectcalico.org/v1
kind: NetworkPolicy
metadata: {name: block, namespace: shop}
spec:
  types: [Egress]
  egress:
    - {action: Deny, destination: {selector: "policy == 'blocked'"}}
    - {action: Allow}
""",
    )
    (finding,) = [f for f in run(text) if f.id == "selector-matches-no-set"]
    assert "GlobalNetworkSet blocked" in finding.message
    assert "global()" in finding.hint


def test_selector_reaches_pods_names_them() -> None:
    text = docs(
        SET,
        POD_WEB.replace("app: web", "policy: blocked"),
        gnp("    - {action: Deny, destination: {selector: \"policy == 'blocked'\"}}\n"
            "    - {action: Allow}"),
    )  # fmt: skip
    (finding,) = [f for f in run(text) if f.id == "selector-reaches-pods"]
    assert "shop/web-0" in finding.message


def test_allow_all_names_bypassed_kubernetes_policies() -> None:
    knp = """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web-egress, namespace: shop}
spec:
  podSelector: {matchLabels: {app: web}}
  policyTypes: [Egress]
  egress: [{to: [{ipBlock: {cidr: 192.0.2.0/24}}]}]
"""
    (finding,) = [
        f for f in run(docs(SET, BLOCK, ALLOW_ALL, knp))
        if f.id == "allow-all-bypasses-k8s-isolation"
    ]  # fmt: skip
    assert "shop/web-egress" in finding.message


def test_allow_all_in_a_later_tier_does_not_bypass() -> None:
    text = docs(
        "apiVersion: crd.projectcalico.org/v1\nkind: Tier\nmetadata: {name: last}\n"
        "spec: {order: 5000000}",
        ALLOW_ALL.replace("spec: {order: 1000,", "spec: {tier: last, order: 1000,"),
    )
    assert "allow-all-bypasses-k8s-isolation" not in ids(text)


def test_kubernetes_policies_are_not_default_deny_findings() -> None:
    knp = """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web-egress, namespace: shop}
spec:
  podSelector: {matchLabels: {app: web}}
  policyTypes: [Egress]
  egress: [{to: [{ipBlock: {cidr: 192.0.2.0/24}}]}]
"""
    assert not lt.has_errors(run(knp))


def test_tier_default_pass_is_no_default_deny() -> None:
    text = docs(
        SET,
        "apiVersion: crd.projectcalico.org/v1\nkind: Tier\nmetadata: {name: egressguard}\n"
        "spec: {order: 100, defaultAction: Pass}",
        BLOCK.replace("order: 0", "tier: egressguard\n  order: 0"),
    )
    assert "egress-default-deny" not in ids(text)


def test_options_reject_unknown_ids_and_bad_addresses() -> None:
    with pytest.raises(InputError, match="unknown lint id"):
        lt.LintOptions(disabled=frozenset({"no-such-check"}))
    with pytest.raises(InputError, match="DNS address"):
        lt.LintOptions(dns_ips=("10.0.0.300",))


def test_findings_are_sorted_and_render() -> None:
    findings = run(docs(SET, BLOCK))
    assert findings == sorted(findings, key=lambda f: (f.file or "", f.line or 0, f.path, f.id))
    text = str(findings[0])
    assert text.startswith("policy.yaml:")
    assert findings[0].to_json()["severity"] in {"error", "warning", "info"}


def test_pass_in_own_tier_before_default_is_not_reported() -> None:
    """egressguard's design: its tier ends with Pass into the default tier."""
    assert "pass-in-last-tier" not in ids(docs(SET, TIERED))


def knp(name: str, app: str) -> str:
    return f"""
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {{name: {name}, namespace: shop}}
spec:
  podSelector: {{matchLabels: {{app: {app}}}}}
  policyTypes: [Egress]
  egress: [{{to: [{{ipBlock: {{cidr: 10.0.0.0/8}}}}]}}]
"""


def test_allow_all_names_the_kubernetes_policies_whose_pods_it_also_selects() -> None:
    policies = docs(ALLOW_ALL, knp("db-egress", "db"), knp("api-egress", "api"))
    (without_pods,) = [f for f in run(policies) if f.id == "allow-all-bypasses-k8s-isolation"]
    assert without_pods.message.endswith("the egress rules of shop/db-egress, shop/api-egress")
    (with_pods,) = [
        f for f in run(docs(policies, POD_DB)) if f.id == "allow-all-bypasses-k8s-isolation"
    ]
    assert with_pods.message.endswith("the egress rules of shop/db-egress")


def test_selects_no_pods_counts_only_pods_with_workload_endpoints() -> None:
    host_pod = POD_DB.replace("db-0", "node-agent").replace(
        "spec: {containers", "spec: {hostNetwork: true, containers"
    )
    text = docs(POD_WEB, host_pod, gnp("    - {action: Pass}", extra="\n  selector: app == 'db'"))
    (finding,) = [f for f in run(text) if f.id == "selects-no-pods"]
    assert "selects none of the 1 pods among the inputs" in finding.message
