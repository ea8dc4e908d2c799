"""``explain``: build the endpoint and flow from what a user typed, and render a verdict.

The evaluation itself is ``egressguard.calico.evaluate``; this module is the pure part of the
``egressguard explain`` command: parsing ``k=v,k=v`` labels, finding ``--src-pod ns/name``
among the inputs, and turning a ``Verdict`` into the readable trace or the JSON document
described in ``docs/explain.md``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace
from typing import Any, Final

from egressguard.calico.evaluate import Endpoint, Flow, Plan, PolicyRef, Step, StepKind, Verdict
from egressguard.calico.load import Manifests
from egressguard.calico.model import Action, Pod, PolicyType
from egressguard.errors import InputError

__all__ = ["JSON_VERSION", "endpoint_from", "explain_json", "find_pod", "parse_labels", "render"]

#: Version of the JSON document ``explain -o json`` prints (bumped on incompatible changes).
JSON_VERSION: Final = 1

# Kubernetes label keys: optional DNS prefix, then a name of [A-Za-z0-9._-] (63 characters).
_KEY = re.compile(r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")


def parse_labels(text: str) -> dict[str, str]:
    """``"app=web,tier=front"`` → ``{"app": "web", "tier": "front"}``; ``""`` → ``{}``.

    Raises ``InputError`` for an item without ``=`` or a key that is not a label key.
    """
    out: dict[str, str] = {}
    for raw in text.split(","):
        item = raw.strip()
        if not item:
            continue
        key, eq, value = item.partition("=")
        key = key.strip()
        if not eq:
            raise InputError(
                f"label {item!r} has no value", hint="write labels as key=value[,key=value]"
            )
        if not _KEY.match(key) or len(key.rpartition("/")[2]) > 63:
            raise InputError(f"{key!r} is not a Kubernetes label key")
        out[key] = value.strip()
    return out


def find_pod(manifests: Manifests, ref: str) -> Pod:
    """The pod ``namespace/name`` (or ``name`` in ``default``) among the loaded inputs."""
    namespace, slash, name = ref.partition("/")
    if not slash:
        namespace, name = "default", ref
    for pod in manifests.pods:
        if pod.name == name and (pod.namespace or "default") == namespace:
            return pod
    known = ", ".join(f"{p.namespace}/{p.name}" for p in manifests.pods[:10]) or "none"
    raise InputError(
        f"pod {namespace}/{name} is not among the inputs",
        hint=f"add its manifest with -f (pods loaded: {known})",
    )


def endpoint_from(
    manifests: Manifests,
    *,
    labels: Mapping[str, str] | None = None,
    namespace: str | None = None,
    ip: str | None = None,
    pod: str | None = None,
    host: bool = False,
) -> Endpoint:
    """The endpoint a command line describes: a pod found in the inputs (``pod``), a host
    endpoint (``host``) or a pod made of ``labels`` in ``namespace`` (``default``).

    ``ip`` sets (or overrides) the endpoint's address.
    """
    if pod is not None:
        if labels or host:
            raise InputError("give either a pod from the inputs or labels, not both")
        found = find_pod(manifests, pod)
        ns = found.namespace or "default"
        endpoint = Endpoint.from_pod(found, manifests.namespace(ns))
        return endpoint if ip is None else replace(endpoint, ips=(ip,))
    ips = (ip,) if ip else ()
    if host:
        if namespace is not None:
            raise InputError("a host endpoint has no namespace")
        return Endpoint.host(labels or {}, ips=ips)
    ns = namespace or "default"
    return Endpoint.pod(labels or {}, ns, ips=ips, namespace_resource=manifests.namespace(ns))


# --------------------------------------------------------------------------------------------
# Rendering

_OUTCOME_TEXT: Final = {
    "log": "-> logged, evaluation continues",
    "allow": "-> ALLOW",
    "deny": "-> DENY",
    "pass": "-> PASS to the next tier",
    "no-match": "",
    "skipped": "(skipped)",
}


def _order(value: float | None) -> str:
    if value is None:
        return "none (last)"
    return str(int(value)) if value == int(value) else str(value)


def _step_detail(step: Step) -> str:
    """The second line of a rule step: set matches when there are some, else ``why``."""
    if step.matched and step.matches:
        return "; ".join(
            f"{m.side} {_address(step, m.side)} is in {m.describe()}" for m in step.matches
        )
    return step.why


def _address(step: Step, side: str) -> str:
    return step.address(side) or "(endpoint)"


def render(
    verdict: Verdict, plan: Plan, endpoint: Endpoint, flow: Flow, *, verbose: bool = True
) -> str:
    """The readable trace: flow, endpoint, every tier and policy visited, the verdict, notes."""
    direction = "egress" if verdict.direction is PolicyType.EGRESS else "ingress"
    lines = [
        f"flow:     {flow.describe()} ({direction})",
        f"endpoint: {endpoint.describe()}",
        "",
    ]
    tiers = {t.name: t for t in plan.tiers}
    current_tier: str | None = None
    current_policy: PolicyRef | None = None
    for step in verdict.trace:
        if step.kind is StepKind.RULE:
            if step.tier != current_tier:
                current_tier = step.tier
                current_policy = None
                info = tiers.get(step.tier or "")
                if info is not None:
                    lines.append(
                        f"tier {info.name} (order {_order(info.order)}; "
                        f"ends with {info.default_action} when a policy of it applied)"
                    )
            if step.policy != current_policy:
                current_policy = step.policy
                policy = plan.policy(step.policy) if step.policy is not None else None
                order = f" (order {_order(policy.order)})" if policy is not None else ""
                where = ""
                if policy is not None and policy.origin is not None:
                    where = f"  {policy.origin.file}:{policy.origin.line_of(('kind',))}"
                kind = policy.kind if policy is not None else ""
                name = step.policy.name if step.policy is not None else "?"
                ns = f"{step.policy.namespace}/" if step.policy and step.policy.namespace else ""
                lines.append(f"  {kind} {ns}{name}{order}{where}")
            label = step.rule_path.split(".")[-1] if step.rule_path else str(step.rule)
            state = "match" if step.matched else "no match"
            if step.outcome == "skipped":
                state = "skipped"
            head = f"    {label:<11} {step.action!s:<5} {state:<8} {_OUTCOME_TEXT[step.outcome]}"
            lines.append(head.rstrip())
            if verbose or step.matched:
                lines.append(f"{'':16}{_step_detail(step)}")
        elif step.kind is StepKind.END_OF_TIER:
            arrow = "-> DENY" if step.action is Action.DENY else "-> PASS to the next tier"
            lines.append(f"  end of tier {step.tier}: {arrow}")
            lines.append(f"{'':16}{step.why}")
            current_tier = None
        else:
            if current_tier is not None or current_policy is not None:
                lines.append("")
            lines.append(f"{step.kind}: {step.why}")
    lines.append("")
    lines.append(_verdict_line(verdict))
    for note in verdict.notes:
        lines.append(f"note: {note}")
    return "\n".join(lines)


def _verdict_line(verdict: Verdict) -> str:
    text = f"verdict: {verdict.action}"
    logs = verdict.log_steps
    if logs:
        which = ", ".join(f"{s.policy} {s.rule_path}" for s in logs)
        text += f", logged (Log rule: {which})"
    else:
        text += ", not logged"
    decided = verdict.decided_by
    if decided is not None and decided.kind is StepKind.RULE:
        text += f"; decided by {decided.policy} {decided.rule_path}"
    elif decided is not None:
        text += f"; decided by {decided.kind}"
    return text


def explain_json(verdict: Verdict, endpoint: Endpoint, flow: Flow) -> dict[str, Any]:
    """The JSON document of ``explain -o json`` (see ``docs/explain.md``)."""
    out = verdict.to_json()
    out["version"] = JSON_VERSION
    out["endpoint"] = endpoint.to_json()
    out["flow"] = flow.to_json()
    return out
