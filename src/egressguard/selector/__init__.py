"""Calico's label-selector language: parse, print canonically, match, analyse, rewrite.

Specification: ``shared/reference/calico-semantics.md`` §4 (behaviour of
``libcalico-go/lib/selector`` in Calico master), §1.3 and §2 for the namespace rewrites.

Typical use (these examples run as tests)::

    >>> from egressguard import selector
    >>> sel = selector.parse("policy == 'egress-traffic-blocking' && !has(exempt)")
    >>> sel.matches({"policy": "egress-traffic-blocking"})
    True
    >>> sel.matches({"policy": "egress-traffic-blocking", "exempt": "yes"})
    False
    >>> str(sel)
    '(policy == "egress-traffic-blocking" && !has(exempt))'
    >>> sorted(sel.required_keys())
    ['policy']
    >>> selector.parse("a != 'x'").matches({})    # a missing label: != and not in are true
    True
    >>> selector.parse("a == b")
    Traceback (most recent call last):
      ...
    egressguard.errors.SelectorError: expected a quoted string ... at column 6 in selector 'a == b'
    >>> str(selector.entity_rule_selector(selector="policy == 'x'", namespace_selector="global()"))
    '(!has(projectcalico.org/namespace) && policy == "x")'

What lives where:

* :func:`parse` (cached) and :class:`Selector`: matching, canonical text, identity, questions
  (``is_all``, ``is_global``, ``contains_global``, ``keys``, ``required_keys``,
  ``label_restrictions``, ``never_matches``) and new selectors (``prefix_keys``, ``map_keys``,
  ``transform``, ``&``, ``|``, ``~``, :func:`and_`).
* The tree: :data:`Node` and its classes, immutable and hashable; :func:`walk`,
  :func:`transform`, :func:`map_keys`.
* :func:`namespace_scope`, :func:`entity_rule_selector`, :func:`policy_selector`: the selectors
  Felix really evaluates once Calico has rewritten ``namespaceSelector`` (``pcns.`` keys,
  ``all()`` → ``has(projectcalico.org/namespace)``, ``global()`` →
  ``!has(projectcalico.org/namespace)``) and service-account selectors.
"""

from __future__ import annotations

from egressguard.selector.analysis import LabelRestriction
from egressguard.selector.compiler import Matcher
from egressguard.selector.nodes import (
    MAX_KEY_LENGTH,
    All,
    And,
    Contains,
    EndsWith,
    Eq,
    Global,
    Has,
    In,
    KeyedNode,
    Ne,
    Node,
    Not,
    NotIn,
    Or,
    StartsWith,
    is_valid_key,
    map_keys,
    transform,
    walk,
)
from egressguard.selector.parser import MAX_NESTING
from egressguard.selector.rewrite import (
    NAMESPACE_LABEL,
    NAMESPACE_PREFIX,
    SERVICE_ACCOUNT_LABEL,
    SERVICE_ACCOUNT_PREFIX,
    entity_rule_selector,
    namespace_scope,
    policy_selector,
)
from egressguard.selector.selector import Selector, and_, parse

__all__ = [
    "MAX_KEY_LENGTH",
    "MAX_NESTING",
    "NAMESPACE_LABEL",
    "NAMESPACE_PREFIX",
    "SERVICE_ACCOUNT_LABEL",
    "SERVICE_ACCOUNT_PREFIX",
    "All",
    "And",
    "Contains",
    "EndsWith",
    "Eq",
    "Global",
    "Has",
    "In",
    "KeyedNode",
    "LabelRestriction",
    "Matcher",
    "Ne",
    "Node",
    "Not",
    "NotIn",
    "Or",
    "Selector",
    "StartsWith",
    "and_",
    "entity_rule_selector",
    "is_valid_key",
    "map_keys",
    "namespace_scope",
    "parse",
    "policy_selector",
    "transform",
    "walk",
]
