"""The selectors Felix actually evaluates, built from a policy's selector fields as Calico does.

Calico never hands a v3 ``namespaceSelector`` or ``serviceAccountSelector`` to Felix as
written. Its update processors (``libcalico-go/lib/backend/syncersv1/updateprocessors/``:
``rules.go:getEndpointSelector``, ``globalnetworkpolicyprocessor.go``,
``networkpolicyprocessor.go``, ``selectors.go``) rewrite them **as strings**:

1. parse the namespace selector, prefix every label key (``pcns.`` for namespace labels,
   ``pcsa.`` for service-account labels) and print it canonically;
2. replace every ``all()`` in the text with ``has(projectcalico.org/namespace)`` (or
   ``has(projectcalico.org/serviceaccount)``) and, in rules, every ``global()`` with
   ``!has(projectcalico.org/namespace)``;
3. glue the pieces together as ``(A) && (B)`` text, which Felix parses again.

The functions below follow those steps on strings, so they inherit Calico's quirks on
purpose, because the point is to predict what Felix does:

* the replacement also happens inside string literals: a namespace selector
  ``name == "all()"`` becomes ``pcns.name == "has(projectcalico.org/namespace)"``;
* in a GlobalNetworkPolicy the ``all()`` replacement runs over the *combined* text, so the
  policy's own ``selector: all()`` also becomes ``has(projectcalico.org/namespace)`` once a
  ``namespaceSelector`` is set, while ``all( )`` (with a blank) survives, because the
  policy's selector is pasted in as written;
* an empty field is skipped, but a blank one (``" "``) is pasted in and gives ``( )``, which
  Felix cannot parse: these functions raise ``SelectorError`` then.

Every input is first parsed on its own, so an invalid field raises ``SelectorError`` naming
that field's own text and column. With ``strict=False`` an invalid ``namespaceSelector`` or
service-account selector is instead **dropped**, as Calico's update processor does when a
manifest skipped validation (written straight to the ``crd.projectcalico.org/v1`` CRD): the
rule or policy then reaches more endpoints than intended. Use it to predict Felix, never to
accept input.
"""

from __future__ import annotations

from collections.abc import Sequence

from egressguard.errors import SelectorError
from egressguard.selector.selector import Selector, parse

__all__ = [
    "NAMESPACE_LABEL",
    "NAMESPACE_PREFIX",
    "SERVICE_ACCOUNT_LABEL",
    "SERVICE_ACCOUNT_PREFIX",
    "entity_rule_selector",
    "namespace_scope",
    "policy_selector",
]

#: Label Calico puts on every namespaced entity (pods, NetworkSets): its namespace name.
NAMESPACE_LABEL = "projectcalico.org/namespace"
#: Label Calico puts on pods: the name of their service account.
SERVICE_ACCOUNT_LABEL = "projectcalico.org/serviceaccount"
#: Prefix of namespace labels inherited through the ``kns.<ns>`` profile.
NAMESPACE_PREFIX = "pcns."
#: Prefix of service-account labels inherited through the ``ksa.<ns>.<sa>`` profile.
SERVICE_ACCOUNT_PREFIX = "pcsa."

_HAS_NAMESPACE = f"has({NAMESPACE_LABEL})"
_HAS_SERVICE_ACCOUNT = f"has({SERVICE_ACCOUNT_LABEL})"


def _prefixed(text: str, prefix: str, *, strict: bool = True) -> str:
    """``selectors.go:parseSelectorAttachPrefix``: keys prefixed, printed canonically.

    Calico logs and returns ``""`` for a selector that does not parse (``strict=False``).
    """
    try:
        return str(parse(text).prefix_keys(prefix))
    except SelectorError:
        if strict:
            raise
        return ""


def _namespace_scope_text(namespace_selector: str, *, strict: bool = True) -> str:
    text = _prefixed(namespace_selector, NAMESPACE_PREFIX, strict=strict)
    text = text.replace("all()", _HAS_NAMESPACE)
    return text.replace("global()", "!" + _HAS_NAMESPACE)


def _check(*texts: str) -> None:
    for text in texts:
        if text:
            parse(text)


def namespace_scope(namespace_selector: str) -> Selector:
    """An EntityRule ``namespaceSelector`` as Felix evaluates it against entity labels.

    Keys get the ``pcns.`` prefix, ``all()`` becomes ``has(projectcalico.org/namespace)``
    (every namespaced entity) and ``global()`` becomes ``!has(projectcalico.org/namespace)``
    (only GlobalNetworkSets and host endpoints)::

        >>> str(namespace_scope("global()"))
        '!has(projectcalico.org/namespace)'
        >>> str(namespace_scope("team == 'a' || all()"))
        '(pcns.team == "a" || has(projectcalico.org/namespace))'
    """
    return parse(_namespace_scope_text(namespace_selector))


def entity_rule_selector(
    *,
    selector: str = "",
    namespace_selector: str = "",
    not_selector: str = "",
    service_account_names: Sequence[str] = (),
    service_account_selector: str = "",
    namespace: str = "",
    strict: bool = True,
) -> Selector | None:
    """The positive selector Felix evaluates for a rule's ``source`` or ``destination``.

    ``namespace`` is the policy's namespace for a (namespaced) NetworkPolicy and ``""`` for a
    GlobalNetworkPolicy. Returns ``None`` when the EntityRule constrains no selector (then the
    rule does not look at labels at all). ``not_selector`` is not part of the result, Calico
    passes it through unchanged (``parse(not_selector)``); it only decides whether the
    namespace restriction is added. Follows ``rules.go:getEndpointSelector``::

        GNP,  namespaceSelector N   -> (N with pcns. keys, all()/global() rewritten) && (S)
        GNP,  global()              -> (!has(projectcalico.org/namespace)) && (S)
        NP in ns X, no N            -> (projectcalico.org/namespace == 'X') && (S)
    """
    _check(selector, not_selector)
    if strict:
        _check(namespace_selector, service_account_selector)
    ns_text = ""
    if namespace_selector:
        ns_text = _namespace_scope_text(namespace_selector, strict=strict)
    elif namespace:
        ns_text = f"{NAMESPACE_LABEL} == '{namespace}'"

    parts: list[str] = []
    sa_text = _service_accounts_text(service_account_names, service_account_selector, strict)
    if sa_text:
        parts.append(sa_text)
    if selector:
        parts.append(selector)
    combined = ""
    if len(parts) == 1:
        combined = parts[0]
    elif parts:
        combined = "(" + ") && (".join(parts) + ")"

    if ns_text and (combined or not_selector or namespace_selector):
        combined = f"({ns_text}) && ({combined})" if combined else ns_text
    return parse(combined) if combined else None


def _service_accounts_text(names: Sequence[str], sa_selector: str, strict: bool) -> str:
    """``rules.go:parseServiceAccounts``: names become a set test ANDed with a pcsa. selector."""
    text = _prefixed(sa_selector, SERVICE_ACCOUNT_PREFIX, strict=strict) if sa_selector else ""
    if not names:
        return text
    names_text = str(parse(f"{SERVICE_ACCOUNT_LABEL} in {{ '" + "', '".join(names) + "' }"))
    return f"({text}) && ({names_text})" if text else names_text


def policy_selector(
    selector: str = "",
    *,
    namespace_selector: str = "",
    service_account_selector: str = "",
    namespace: str = "",
    strict: bool = True,
) -> Selector:
    """A policy's endpoint selector (which endpoints it applies to) as Felix evaluates it.

    For a GlobalNetworkPolicy (``namespace == ""``), ``globalnetworkpolicyprocessor.go``::

        S, N  -> "(S) && <N, pcns. keys>", then all() -> has(projectcalico.org/namespace)
        S, SA -> "(S) && <SA, pcsa. keys>", then all() -> has(projectcalico.org/serviceaccount)

    For a NetworkPolicy in namespace X (``networkpolicyprocessor.go``; it has no
    ``namespaceSelector``): ``"(S) && projectcalico.org/namespace == 'X'"``, then the
    service-account part, without any ``all()`` replacement. An empty result means ``all()``.
    """
    _check(selector)
    if strict:
        _check(namespace_selector, service_account_selector)
    text = selector
    if namespace:
        if namespace_selector:
            raise ValueError("a namespaced NetworkPolicy has no namespaceSelector")
        ns_text = f"{NAMESPACE_LABEL} == '{namespace}'"
        text = f"({text}) && {ns_text}" if text else ns_text
        sa = service_account_selector
        text = _prefix_and_append(text, sa, SERVICE_ACCOUNT_PREFIX, strict=strict)
        return parse(text)
    if namespace_selector:
        text = _prefix_and_append(text, namespace_selector, NAMESPACE_PREFIX, strict=strict)
        text = text.replace("all()", _HAS_NAMESPACE)
    if service_account_selector:
        sa = service_account_selector
        text = _prefix_and_append(text, sa, SERVICE_ACCOUNT_PREFIX, strict=strict)
        text = text.replace("all()", _HAS_SERVICE_ACCOUNT)
    return parse(text)


def _prefix_and_append(current: str, new: str, prefix: str, *, strict: bool) -> str:
    """``selectors.go:prefixAndAppendSelector``."""
    if not new:
        return current
    prefixed = _prefixed(new, prefix, strict=strict)
    if not prefixed:
        return current
    return f"({current}) && {prefixed}" if current else prefixed
