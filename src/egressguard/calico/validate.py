"""Validate manifests the way Calico's validator and CRD schemas do, reporting every problem.

``validate(document)`` takes one manifest mapping and returns every problem at once, each with
its YAML path (``spec.egress[1].destination.nets[0]``) and a message that says what is wrong
and, where useful, how to fix it. ``validate_documents`` does the same for loaded
``yamlio.Document``s and attaches file, line and document index.

What is checked (``shared/reference/calico-semantics.md`` §6; ``libcalico-go/lib/validator/v3/
validator.go`` at v3.32.1 and HEAD, and the CEL rules of the HEAD CRDs):

* structure: unknown fields (with a "did you mean" hint), wrong types, missing required fields;
* names per kind, labels and annotations (Kubernetes qualified names and label values), the
  reserved ``projectcalico.org/namespace`` label on network sets;
* rules: actions and protocols (case-sensitive), ports (numeric ports need TCP, UDP or SCTP;
  named ports need no protocol), strict ``addr/len`` CIDRs with no host bits and one family per
  rule, ``ipVersion`` agreement, catch-all ``notNets``, ICMP fields, HTTP matches, services;
* selectors: they must parse, stay within 1024 characters, and use ``global()`` only as the
  whole EntityRule ``namespaceSelector``;
* GlobalNetworkPolicy flags (preDNAT, doNotTrack, applyOnForward), ``types``, performance hints,
  staged actions, tiers (name, order of the built-in tiers, ``defaultAction``);
* list limits of the HEAD CRDs: 1024 rules per direction, 256 nets, 50 ports, 20 HTTP methods
  or paths.

Where v3.32.1 and HEAD differ, HEAD wins when it is stricter about something that can never
work (selector length, ``global(`` substring) and when it is more lenient about something that
does work (named ports without a protocol; ICMP fields with protocol 1 or 58).
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, Final

from egressguard import yamlio
from egressguard.calico.model import (
    API_V1,
    API_V3,
    BUILTIN_TIERS,
    CALICO_API_GROUPS,
    K8S_NETWORKING_V1,
    KUBE_ADMIN_TIER,
    KUBE_BASELINE_TIER,
    LABEL_NAMESPACE,
    PORT_PROTOCOLS,
    PROTOCOL_NUMBERS,
    Action,
    PolicyType,
)
from egressguard.errors import SelectorError
from egressguard.problems import Path, Problem, format_path
from egressguard.selector import parse as parse_selector

__all__ = ["check", "manifest_items", "validate", "validate_documents"]

# --------------------------------------------------------------------------------------------
# Formats (validator.go; k8s.io/apimachinery/pkg/util/validation)

_LABEL_FMT = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_SUBDOMAIN = re.compile(rf"^{_LABEL_FMT}(\.{_LABEL_FMT})*$")
_DNS_LABEL = re.compile(rf"^{_LABEL_FMT}$")
_GNP_NAME = re.compile(rf"^({_LABEL_FMT}\.)?{_LABEL_FMT}$")
_NP_NAME = re.compile(
    rf"^(({_LABEL_FMT})(\.{_LABEL_FMT})?|((?:knp|ossg)\.default\.({_LABEL_FMT}(\.{_LABEL_FMT})*)))$"
)
_QUALIFIED_NAME_PART = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_NAMED_PORT = re.compile(r"^[a-zA-Z0-9_.-]{1,128}$")
_PORT_RANGE = re.compile(r"^(\d+):(\d+)$")
_GLOBAL_ONLY = re.compile(r"^[ \t]*global\([ \t]*\)[ \t]*$")
_IANA_SVC_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")

NAME_MAX: Final = 253
TIER_NAME_MAX: Final = 63
LABEL_VALUE_MAX: Final = 63
ANNOTATIONS_MAX: Final = 256 * 1024
SELECTOR_MAX: Final = 1024
RULES_MAX: Final = 1024
NETS_MAX: Final = 256
PORTS_MAX: Final = 50
HTTP_ITEMS_MAX: Final = 20
HTTP_PATH_MAX: Final = 1024

ACTIONS: Final = tuple(action.value for action in Action)
#: Stands for a protocol that was given but is invalid (already reported).
_BAD_PROTOCOL: Final = -1
POLICY_TYPES: Final = tuple(policy_type.value for policy_type in PolicyType)
STAGED_ACTIONS: Final = ("Set", "Delete", "Learn", "Ignore")
PERFORMANCE_HINTS: Final = ("AssumeNeededOnEveryNode",)
#: Built-in tiers whose order Calico fixes (§2.2), from the model's ``BUILTIN_TIERS``. The
#: v3.29–v3.31 names of the Pass tiers are included so that an old manifest is judged by the
#: rule of its release.
_ORDERS: Final = {name: t.order for name, t in BUILTIN_TIERS.items() if t.order is not None}
BUILTIN_TIER_ORDERS: Final[Mapping[str, float]] = {
    **_ORDERS,
    "adminnetworkpolicy": _ORDERS[KUBE_ADMIN_TIER],
    "baselineadminnetworkpolicy": _ORDERS[KUBE_BASELINE_TIER],
}
BUILTIN_TIER_ACTIONS: Final[Mapping[str, str]] = {
    name: tier.effective_default_action.value for name, tier in BUILTIN_TIERS.items()
}

#: Fields of Kubernetes ObjectMeta a manifest may carry.
_OBJECT_META: Final = frozenset(
    {
        "name",
        "generateName",
        "namespace",
        "selfLink",
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "labels",
        "annotations",
        "ownerReferences",
        "finalizers",
        "managedFields",
    }
)
_TOP_KEYS: Final = frozenset({"apiVersion", "kind", "metadata", "spec"})
_RULE_KEYS: Final = frozenset(
    {
        "action",
        "ipVersion",
        "protocol",
        "notProtocol",
        "icmp",
        "notICMP",
        "source",
        "destination",
        "http",
        "metadata",
    }
)
_ENTITY_KEYS: Final = frozenset(
    {
        "nets",
        "notNets",
        "selector",
        "notSelector",
        "namespaceSelector",
        "ports",
        "notPorts",
        "serviceAccounts",
        "services",
    }
)
_POLICY_KEYS: Final = frozenset(
    {
        "tier",
        "order",
        "selector",
        "serviceAccountSelector",
        "types",
        "ingress",
        "egress",
        "performanceHints",
    }
)
_GLOBAL_POLICY_KEYS: Final = _POLICY_KEYS | {
    "namespaceSelector",
    "doNotTrack",
    "preDNAT",
    "applyOnForward",
}
_SPEC_KEYS: Final[Mapping[str, frozenset[str]]] = {
    "GlobalNetworkSet": frozenset({"nets"}),
    "NetworkSet": frozenset({"nets"}),
    "Tier": frozenset({"order", "defaultAction"}),
    "GlobalNetworkPolicy": _GLOBAL_POLICY_KEYS,
    "StagedGlobalNetworkPolicy": _GLOBAL_POLICY_KEYS | {"stagedAction"},
    "NetworkPolicy": _POLICY_KEYS,
    "StagedNetworkPolicy": _POLICY_KEYS | {"stagedAction"},
}


# --------------------------------------------------------------------------------------------
# Addresses (Calico's cnet.ParseCIDROrIP and cnet.ParseCIDR, which sit on Go's net package)


_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
#: Plain dotted-quad IPv4 with an optional /0../32: a subset of what ``_parse_ip_or_cidr``
#: accepts, checked first because network sets can hold hundreds of thousands of entries.
_SIMPLE_V4 = re.compile(rf"(?:{_OCTET}\.){{3}}{_OCTET}(?:/(?:3[0-2]|[12]?[0-9]))?")


def _loose_net_ok(text: str) -> bool:
    """Whether a network-set entry parses (any IP or CIDR, host bits allowed)."""
    if _SIMPLE_V4.fullmatch(text):
        return True
    try:
        _parse_ip_or_cidr(text)
    except ValueError:
        return False
    return True


def _parse_ip_or_cidr(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """Parse like Go: ``addr`` or ``addr/len`` with a decimal length. Raises ValueError."""
    if "%" in text or text != text.strip():
        raise ValueError(text)
    _addr, slash, length = text.partition("/")
    if slash and not (length.isdigit() and length.isascii()):
        raise ValueError(text)  # Go refuses a netmask after the slash; Python would accept it
    return ipaddress.ip_network(text, strict=False)


def _host_bits_set(text: str, net: ipaddress.IPv4Network | ipaddress.IPv6Network) -> bool:
    addr = ipaddress.ip_address(text.partition("/")[0])
    return addr != net.network_address


# --------------------------------------------------------------------------------------------


class _Validator:
    """Collects problems while walking one document."""

    def __init__(self) -> None:
        #: (raw path, problem): the raw path finds the line even for keys containing dots.
        self.found: list[tuple[Path, Problem]] = []

    # -- reporting and type helpers ----------------------------------------------------------

    def err(self, path: Path, message: str) -> None:
        self.found.append((path, Problem(format_path(path), message)))

    def keys(self, obj: Mapping[str, Any], path: Path, allowed: Iterable[str]) -> None:
        allowed_set = set(allowed)
        for key in obj:
            if key in allowed_set:
                continue
            close = difflib.get_close_matches(str(key), sorted(allowed_set), n=1, cutoff=0.7)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            self.err((*path, key), f"unknown field {key!r}{hint}")

    def mapping(self, value: Any, path: Path) -> Mapping[str, Any] | None:
        if value is None:
            return None
        if not isinstance(value, Mapping):
            self.err(path, f"must be a mapping, not {_type_name(value)}")
            return None
        return value

    def seq(self, value: Any, path: Path) -> list[Any]:
        if value is None:
            return []
        if not isinstance(value, list):
            self.err(path, f"must be a list, not {_type_name(value)}")
            return []
        return value

    def string(self, value: Any, path: Path) -> str | None:
        if value is None:
            return None
        if not isinstance(value, str):
            self.err(path, f"must be a string, not {_type_name(value)}")
            return None
        return value

    def strings(self, value: Any, path: Path) -> list[tuple[Path, str]]:
        out = []
        for i, item in enumerate(self.seq(value, path)):
            text = self.string(item, (*path, i))
            if text is not None:
                out.append(((*path, i), text))
        return out

    def choices(self, value: Any, path: Path, allowed: Sequence[str], wrong: str) -> set[str]:
        """A list of strings, each one of ``allowed`` and listed once; returns the strings."""
        seen: set[str] = set()
        for item_path, text in self.strings(value, path):
            if text not in allowed:
                self.err(item_path, f"{text!r} {wrong}")
            elif text in seen:
                self.err(item_path, f"{text!r} is listed more than once")
            seen.add(text)
        return seen

    def boolean(self, value: Any, path: Path) -> bool:
        if value is None:
            return False
        if not isinstance(value, bool):
            self.err(path, f"must be true or false, not {_type_name(value)}")
            return False
        return value

    def integer(self, value: Any, path: Path) -> int | None:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            self.err(path, f"must be an integer, not {_type_name(value)}")
            return None
        return value

    def number(self, value: Any, path: Path) -> float | None:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.err(path, f"must be a number, not {_type_name(value)}")
            return None
        return float(value)

    def limit(self, items: Sequence[Any], path: Path, most: int, what: str) -> None:
        if len(items) > most:
            self.err(path, f"has {len(items)} {what}; at most {most} are allowed")

    # -- document ----------------------------------------------------------------------------

    def document(self, doc: Any, prefix: Path) -> None:
        if not isinstance(doc, Mapping):
            self.err(prefix, f"a manifest must be a mapping, not {_type_name(doc)}")
            return
        api = doc.get("apiVersion")
        kind = doc.get("kind")
        if api is None:
            self.err((*prefix, "apiVersion"), "is required")
        if kind is None:
            self.err((*prefix, "kind"), "is required")
        if not isinstance(api, str) or not isinstance(kind, str):
            if api is not None and not isinstance(api, str):
                self.err((*prefix, "apiVersion"), "must be a string")
            if kind is not None and not isinstance(kind, str):
                self.err((*prefix, "kind"), "must be a string")
            return
        if api == K8S_NETWORKING_V1 and kind == "NetworkPolicy":
            self.k8s_network_policy(doc, prefix)
        elif kind in _SPEC_KEYS:
            if api not in CALICO_API_GROUPS:
                self.err(
                    (*prefix, "apiVersion"),
                    f"{api!r} is not a Calico API group for {kind}: "
                    f"use {API_V1} (kubectl) or {API_V3} (calicoctl, API server)",
                )
                return
            self.calico(doc, kind, prefix)
        elif api == "v1" and kind in ("Pod", "Namespace"):
            self.core(doc, kind, prefix)
        elif kind == "StagedKubernetesNetworkPolicy":
            self.err(
                (*prefix, "kind"),
                "StagedKubernetesNetworkPolicy is not supported; stage a Calico "
                "StagedNetworkPolicy instead",
            )
        else:
            self.err(
                (*prefix, "kind"),
                f"kind {kind!r} ({api}) is not a kind egressguard understands: expected "
                "Calico GlobalNetworkSet, NetworkSet, GlobalNetworkPolicy, NetworkPolicy, "
                "Staged(Global)NetworkPolicy or Tier, Kubernetes NetworkPolicy, Pod or Namespace",
            )

    def metadata(self, doc: Mapping[str, Any], kind: str, prefix: Path) -> str | None:
        """Check ``metadata``; returns the name when it is a string."""
        path = (*prefix, "metadata")
        meta = self.mapping(doc.get("metadata"), path)
        if meta is None:
            if doc.get("metadata") is None:  # missing or null: the API server refuses both
                self.err(path, "is required (with at least a name)")
            return None
        self.keys(meta, path, _OBJECT_META)
        name = self.string(meta.get("name"), (*path, "name"))
        if meta.get("name") is None:
            self.err((*path, "name"), "is required")
        elif name is not None:
            self.name(name, kind, (*path, "name"))
        namespace = self.string(meta.get("namespace"), (*path, "namespace"))
        if namespace is not None and not _DNS_LABEL.match(namespace):
            self.err((*path, "namespace"), f"{namespace!r} is not a valid namespace name")
        self.labels(meta.get("labels"), (*path, "labels"))
        self.annotations(meta.get("annotations"), (*path, "annotations"))
        if kind in ("GlobalNetworkSet", "NetworkSet"):
            labels = meta.get("labels")
            if isinstance(labels, Mapping) and LABEL_NAMESPACE in labels:
                self.err(
                    (*path, "labels", LABEL_NAMESPACE),
                    f"{LABEL_NAMESPACE} is reserved: Calico sets it itself and rejects it on "
                    "network sets",
                )
        return name

    def name(self, name: str, kind: str, path: Path) -> None:
        if kind == "Tier":
            if len(name) > TIER_NAME_MAX:
                self.err(path, f"name is too long by {len(name) - TIER_NAME_MAX} characters")
            if not _DNS_LABEL.match(name):
                self.err(
                    path,
                    f"{name!r} is not a valid Tier name: lower-case letters, digits and '-', "
                    "no dots, at most 63 characters",
                )
            return
        if len(name) > NAME_MAX:
            self.err(path, f"name is too long by {len(name) - NAME_MAX} characters")
        if kind in ("GlobalNetworkPolicy", "StagedGlobalNetworkPolicy"):
            if not _GNP_NAME.match(name):
                self.err(
                    path,
                    f"{name!r} is not a valid {kind} name: lower-case letters, digits and '-', "
                    "with at most one '.'",
                )
        elif kind in ("NetworkPolicy", "StagedNetworkPolicy"):
            if not _NP_NAME.match(name):
                self.err(
                    path,
                    f"{name!r} is not a valid {kind} name: lower-case letters, digits and '-', "
                    "with at most one '.' (or knp.default.<name>)",
                )
        elif kind == "Namespace":
            if not _DNS_LABEL.match(name):
                self.err(path, f"{name!r} is not a valid namespace name (a DNS label)")
        elif not _SUBDOMAIN.match(name):
            self.err(
                path,
                f"{name!r} is not a valid {kind} name: lower-case letters, digits, '-' and '.'",
            )

    def labels(self, value: Any, path: Path) -> None:
        labels = self.mapping(value, path)
        if labels is None:
            return
        for key, item in labels.items():
            self.qualified_name(str(key), (*path, key), "label key")
            if not isinstance(item, str):
                self.err(
                    (*path, key),
                    f"label value must be a string, not {_type_name(item)} (quote it)",
                )
                continue
            if len(item) > LABEL_VALUE_MAX:
                self.err((*path, key), f"label value is {len(item)} characters; at most 63")
            elif not _LABEL_VALUE.match(item):
                self.err(
                    (*path, key),
                    f"{item!r} is not a valid label value: letters, digits, '-', '_' and '.', "
                    "starting and ending with a letter or digit",
                )

    def annotations(self, value: Any, path: Path) -> None:
        annotations = self.mapping(value, path)
        if annotations is None:
            return
        total = 0
        for key, item in annotations.items():
            self.qualified_name(str(key).lower(), (*path, key), "annotation key")
            if not isinstance(item, str):
                self.err((*path, key), f"annotation value must be a string, not {_type_name(item)}")
                continue
            total += len(str(key)) + len(item)
        if total > ANNOTATIONS_MAX:
            self.err(path, f"annotations total {total} bytes; at most {ANNOTATIONS_MAX}")

    def qualified_name(self, key: str, path: Path, what: str) -> None:
        prefix, slash, name = key.rpartition("/")
        if slash and not prefix:
            self.err(path, f"{what} {key!r} has an empty prefix before '/'")
            return
        if prefix and (len(prefix) > NAME_MAX or not _SUBDOMAIN.match(prefix)):
            self.err(path, f"{what} {key!r}: the prefix must be a DNS subdomain")
        if not name or len(name) > 63 or not _QUALIFIED_NAME_PART.match(name):
            self.err(
                path,
                f"{what} {key!r} is not a qualified name: at most 63 letters, digits, '-', '_' "
                "and '.', starting and ending with a letter or digit, optionally after "
                "a DNS prefix and '/'",
            )

    # -- Calico kinds ------------------------------------------------------------------------

    def calico(self, doc: Mapping[str, Any], kind: str, prefix: Path) -> None:
        self.keys(doc, prefix, _TOP_KEYS)
        self.metadata(doc, kind, prefix)
        spec_path = (*prefix, "spec")
        spec = self.mapping(doc.get("spec"), spec_path)
        if spec is None:
            return
        allowed = _SPEC_KEYS[kind]
        for key in spec:
            if key == "allowedEgressDomains" and kind in ("GlobalNetworkSet", "NetworkSet"):
                self.err(
                    (*spec_path, key),
                    "allowedEgressDomains is a Calico Enterprise field: open-source Calico has "
                    "no such field (and even in Enterprise it works only in Allow egress rules)",
                )
        self.keys(
            {k: v for k, v in spec.items() if k != "allowedEgressDomains"}, spec_path, allowed
        )
        if kind in ("GlobalNetworkSet", "NetworkSet"):
            self.network_set(spec, spec_path)
        elif kind == "Tier":
            self.tier(doc, spec, spec_path)
        else:
            self.policy(spec, kind, spec_path)

    def network_set(self, spec: Mapping[str, Any], path: Path) -> None:
        for item_path, text in self.strings(spec.get("nets"), (*path, "nets")):
            if not _loose_net_ok(text):
                self.err(item_path, f"{text!r} is not an IP address or CIDR")

    def tier(self, doc: Mapping[str, Any], spec: Mapping[str, Any], path: Path) -> None:
        order = self.number(spec.get("order"), (*path, "order"))
        action = spec.get("defaultAction")
        if action is not None and action not in ("Deny", "Pass"):
            self.err((*path, "defaultAction"), f"{action!r} is not Deny or Pass")
        meta = doc.get("metadata")
        name = meta.get("name") if isinstance(meta, Mapping) else None
        if isinstance(name, str) and name in BUILTIN_TIER_ORDERS:
            fixed = BUILTIN_TIER_ORDERS[name]
            if order != fixed and not (order is None and "order" in spec):
                self.err(
                    (*path, "order"),
                    f"the order of the built-in tier {name!r} is fixed at {fixed:g}",
                )
            fixed_action = BUILTIN_TIER_ACTIONS.get(name)
            if fixed_action and action is not None and action != fixed_action:
                self.err(
                    (*path, "defaultAction"),
                    f"the defaultAction of the built-in tier {name!r} is fixed at {fixed_action}",
                )

    def policy(self, spec: Mapping[str, Any], kind: str, path: Path) -> None:
        is_global = kind in ("GlobalNetworkPolicy", "StagedGlobalNetworkPolicy")
        staged = kind.startswith("Staged")
        tier = self.string(spec.get("tier"), (*path, "tier"))
        if tier and not _SUBDOMAIN.match(tier):
            self.err((*path, "tier"), f"{tier!r} is not a valid tier name")
        self.number(spec.get("order"), (*path, "order"))
        for key in ("selector", "serviceAccountSelector", "namespaceSelector"):
            if key == "namespaceSelector" and not is_global:
                continue
            text = self.string(spec.get(key), (*path, key))
            if text is None:
                continue
            if "global(" in text:
                self.err(
                    (*path, key),
                    "global() can only be used as the whole namespaceSelector of a rule's "
                    "source or destination",
                )
            self.selector(text, (*path, key))
        types = self.choices(
            spec.get("types"),
            (*path, "types"),
            POLICY_TYPES,
            "is not Ingress or Egress (case-sensitive)",
        )
        self.choices(
            spec.get("performanceHints"),
            (*path, "performanceHints"),
            PERFORMANCE_HINTS,
            "is not a performance hint (AssumeNeededOnEveryNode)",
        )
        ingress = self.seq(spec.get("ingress"), (*path, "ingress"))
        egress = self.seq(spec.get("egress"), (*path, "egress"))
        self.limit(ingress, (*path, "ingress"), RULES_MAX, "rules")
        self.limit(egress, (*path, "egress"), RULES_MAX, "rules")
        for i, rule in enumerate(ingress):
            self.rule(rule, (*path, "ingress", i), ingress=True, is_global=is_global)
        for i, rule in enumerate(egress):
            self.rule(rule, (*path, "egress", i), ingress=False, is_global=is_global)
        if is_global:
            dnt = self.boolean(spec.get("doNotTrack"), (*path, "doNotTrack"))
            pre = self.boolean(spec.get("preDNAT"), (*path, "preDNAT"))
            aof = self.boolean(spec.get("applyOnForward"), (*path, "applyOnForward"))
            if dnt and pre:
                self.err((*path, "preDNAT"), "preDNAT and doNotTrack cannot both be true")
            if pre and egress:
                self.err((*path, "egress"), "a preDNAT policy cannot have egress rules")
            if pre and "Egress" in types:
                self.err((*path, "types"), "a preDNAT policy cannot have the Egress type")
            if (dnt or pre) and not aof:
                self.err(
                    (*path, "applyOnForward"),
                    "must be true when preDNAT or doNotTrack is true",
                )
        if staged:
            action = spec.get("stagedAction")
            if action is not None and action not in STAGED_ACTIONS:
                self.err(
                    (*path, "stagedAction"),
                    f"{action!r} is not a staged action ({', '.join(STAGED_ACTIONS)})",
                )
            if action == "Delete":
                extra = sorted(k for k in spec if k not in ("stagedAction", "tier"))
                if extra:
                    self.err(
                        path,
                        "with stagedAction Delete every field except tier must be empty "
                        f"(found {', '.join(extra)})",
                    )

    def selector(self, text: str, path: Path) -> None:
        """The selector must be at most 1024 characters and parse."""
        if len(text) > SELECTOR_MAX:
            self.err(path, f"selector is {len(text)} characters; at most {SELECTOR_MAX}")
            return
        try:
            parse_selector(text)
        except SelectorError as exc:
            hint = ""
            if "\n" in text:
                hint = " (newlines are not allowed; a YAML '|' block adds one at the end)"
            self.err(path, f"{exc.message}{hint}")

    # -- rules ---------------------------------------------------------------------------------

    def rule(self, value: Any, path: Path, *, ingress: bool, is_global: bool) -> None:
        rule = self.mapping(value, path)
        if rule is None:
            if value is None:
                self.err(path, "a rule must be a mapping with at least an action")
            return
        self.keys(rule, path, _RULE_KEYS)
        action = rule.get("action")
        if action is None:
            self.err((*path, "action"), "is required: Allow, Deny, Log or Pass")
        elif action not in ACTIONS:
            fix = next(
                (a for a in ACTIONS if isinstance(action, str) and a.lower() == action.lower()),
                None,
            )
            hint = f" (did you mean {fix!r}? actions are case-sensitive)" if fix else ""
            self.err(
                (*path, "action"), f"{action!r} is not an action: Allow, Deny, Log or Pass{hint}"
            )
        ip_version = rule.get("ipVersion")
        if ip_version is not None and (isinstance(ip_version, bool) or ip_version not in (4, 6)):
            self.err((*path, "ipVersion"), f"{ip_version!r} is not 4 or 6")
            ip_version = None
        protocol = self.protocol(rule.get("protocol"), (*path, "protocol"))
        not_protocol = self.protocol(rule.get("notProtocol"), (*path, "notProtocol"))

        # ICMP (validateICMPFields, validateRule; HEAD CEL accepts 1 and 58 as well)
        icmp = self.icmp(rule.get("icmp"), (*path, "icmp"))
        self.icmp(rule.get("notICMP"), (*path, "notICMP"))
        if icmp and protocol not in (1, 58, _BAD_PROTOCOL):
            self.err(
                (*path, "icmp"),
                "ICMP fields need protocol ICMP or ICMPv6",
            )
        for key, number in (("protocol", protocol), ("notProtocol", not_protocol)):
            if number == 1 and ip_version not in (None, 4):
                self.err((*path, "ipVersion"), f"{key} ICMP needs ipVersion 4")
            if number == 58 and ip_version not in (None, 6):
                self.err((*path, "ipVersion"), f"{key} ICMPv6 needs ipVersion 6")

        # source and destination
        sides: dict[str, Mapping[str, Any]] = {}
        for side in ("source", "destination"):
            entity = self.mapping(rule.get(side), (*path, side))
            if entity is not None:
                sides[side] = entity
                self.entity(entity, (*path, side), protocol=protocol)
        self.rule_nets(sides, path, ip_version)

        # HTTP
        http = self.mapping(rule.get("http"), (*path, "http"))
        if http is not None:
            self.http(http, (*path, "http"))
            if action != "Allow":
                self.err((*path, "http"), "HTTP matches are only valid on Allow rules")
            if protocol not in (None, 6, _BAD_PROTOCOL):
                self.err((*path, "protocol"), "rules with HTTP matches need protocol TCP or none")
            if not ingress:
                self.err(
                    (*path, "http"),
                    "HTTP matches are not allowed in egress rules",
                )

        # services
        dst_services = sides.get("destination", {}).get("services")
        src_services = sides.get("source", {}).get("services")
        if not ingress and src_services is not None:
            self.err((*path, "source", "services"), "not allowed in the source of an egress rule")
        if ingress and dst_services is not None:
            self.err(
                (*path, "destination", "services"),
                "not allowed in the destination of an ingress rule",
            )
        if is_global:
            side, services = ("source", src_services) if ingress else ("destination", dst_services)
            if isinstance(services, Mapping) and not services.get("namespace"):
                self.err(
                    (*path, side, "services", "namespace"),
                    "is required in a GlobalNetworkPolicy",
                )
        meta = self.mapping(rule.get("metadata"), (*path, "metadata"))
        if meta is not None:
            self.keys(meta, (*path, "metadata"), ("annotations",))
            self.annotations(meta.get("annotations"), (*path, "metadata", "annotations"))

    def protocol(self, value: Any, path: Path) -> int | None:
        """Check a protocol; returns its number when valid, ``None`` when absent and
        ``_BAD_PROTOCOL`` when present but invalid (so dependent checks stay quiet)."""
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | str):
            self.err(path, f"must be a protocol name or number, not {_type_name(value)}")
            return _BAD_PROTOCOL
        if isinstance(value, str) and value.isdigit():
            value = int(value)
        if isinstance(value, int):
            if not 1 <= value <= 255:
                self.err(path, f"protocol number {value} is not in 1..255")
                return _BAD_PROTOCOL
            return value
        if value in PROTOCOL_NUMBERS:
            return PROTOCOL_NUMBERS[value]
        fix = next((n for n in PROTOCOL_NUMBERS if n.lower() == value.lower()), None)
        hint = f" (did you mean {fix!r}? names are case-sensitive)" if fix else ""
        self.err(
            path,
            f"{value!r} is not a protocol: TCP, UDP, ICMP, ICMPv6, SCTP, UDPLite or 1..255{hint}",
        )
        return _BAD_PROTOCOL

    def icmp(self, value: Any, path: Path) -> bool:
        icmp = self.mapping(value, path)
        if icmp is None:
            return False
        self.keys(icmp, path, ("type", "code"))
        icmp_type = self.integer(icmp.get("type"), (*path, "type"))
        code = self.integer(icmp.get("code"), (*path, "code"))
        if icmp_type is not None and not 0 <= icmp_type <= 254:
            self.err((*path, "type"), f"ICMP type {icmp_type} is not in 0..254")
        if code is not None and not 0 <= code <= 255:
            self.err((*path, "code"), f"ICMP code {code} is not in 0..255")
        if "code" in icmp and "type" not in icmp:
            self.err((*path, "code"), "an ICMP code needs an ICMP type")
        return True

    def entity(self, entity: Mapping[str, Any], path: Path, *, protocol: int | None) -> None:
        self.keys(entity, path, _ENTITY_KEYS)
        for key in ("selector", "notSelector", "namespaceSelector"):
            text = self.string(entity.get(key), (*path, key))
            if text is None:
                continue
            if key == "selector" and "global(" in text:
                self.err(
                    (*path, key),
                    "global() can only be used in namespaceSelector; "
                    "write namespaceSelector: global() next to this selector",
                )
            if key == "namespaceSelector" and "global(" in text and not _GLOBAL_ONLY.match(text):
                self.err((*path, key), "global() cannot be combined with other selectors")
            self.selector(text, (*path, key))
        for key in ("ports", "notPorts"):
            ports = self.seq(entity.get(key), (*path, key))
            self.limit(ports, (*path, key), PORTS_MAX, "ports")
            named_only = True
            for i, port in enumerate(ports):
                if not self.port(port, (*path, key, i)):
                    named_only = False
            if not ports:
                continue
            if protocol is None and not named_only:
                self.err(
                    (*path, key),
                    "numeric ports and port ranges need protocol TCP, UDP or SCTP "
                    "(only named ports work without a protocol)",
                )
            elif protocol not in (None, _BAD_PROTOCOL) and protocol not in PORT_PROTOCOLS:
                self.err(
                    (*path, key),
                    "ports need protocol TCP, UDP or SCTP; this rule's protocol has no ports",
                )
        sa = self.mapping(entity.get("serviceAccounts"), (*path, "serviceAccounts"))
        if sa is not None:
            self.keys(sa, (*path, "serviceAccounts"), ("names", "selector"))
            self.strings(sa.get("names"), (*path, "serviceAccounts", "names"))
            text = self.string(sa.get("selector"), (*path, "serviceAccounts", "selector"))
            if text is not None:
                self.selector(text, (*path, "serviceAccounts", "selector"))
        services = self.mapping(entity.get("services"), (*path, "services"))
        if services is not None:
            spath = (*path, "services")
            self.keys(services, spath, ("name", "namespace"))
            name = self.string(services.get("name"), (*spath, "name"))
            namespace = self.string(services.get("namespace"), (*spath, "namespace"))
            if not name:
                self.err((*spath, "name"), "a service match needs a service name")
            elif not _SUBDOMAIN.match(name):
                self.err((*spath, "name"), f"{name!r} is not a valid service name")
            if namespace and not _SUBDOMAIN.match(namespace):
                self.err((*spath, "namespace"), f"{namespace!r} is not a valid namespace name")
            conflicts = {
                "namespaceSelector": "namespaceSelector",
                "selector": "selector/notSelector",
                "notSelector": "selector/notSelector",
                "serviceAccounts": "serviceAccounts",
                "nets": "nets/notNets",
                "notNets": "nets/notNets",
            }
            reported: set[str] = set()
            for key, label in conflicts.items():
                if entity.get(key) and label not in reported:
                    reported.add(label)
                    self.err(spath, f"services cannot be combined with {label} in the same rule")
            if path[-1] == "destination" and (entity.get("ports") or entity.get("notPorts")):
                self.err(spath, "destination services cannot be combined with ports or notPorts")

    def port(self, value: Any, path: Path) -> bool:
        """Check one ports entry; returns True when it is a valid *named* port."""
        if isinstance(value, bool) or not isinstance(value, int | str):
            self.err(
                path, f"must be a port number, a 'min:max' range or a name, not {_type_name(value)}"
            )
            return False
        if isinstance(value, str) and value.isdigit():
            value = int(value)
        if isinstance(value, int):
            if not 1 <= value <= 65535:
                self.err(path, f"port {value} is not in 1..65535")
            return False
        match = _PORT_RANGE.match(value)
        if match:
            first, last = int(match[1]), int(match[2])
            if not (1 <= first <= 65535 and 1 <= last <= 65535):
                self.err(path, f"port range {value!r}: ports must be in 1..65535")
            elif first > last:
                self.err(path, f"port range {value!r}: the first port is greater than the last")
            return False
        if not _NAMED_PORT.match(value):
            self.err(
                path,
                f"{value!r} is not a port number, a 'min:max' range or a port name "
                "(1-128 letters, digits, '_', '.', '-')",
            )
            return False
        return True

    def rule_nets(
        self, sides: Mapping[str, Mapping[str, Any]], path: Path, ip_version: Any
    ) -> None:
        """Strict CIDRs, one family per rule, ipVersion agreement, no catch-all ``notNets``."""
        seen: set[int] = set()
        for side in ("source", "destination"):
            entity = sides.get(side)
            if entity is None:
                continue
            for key in ("nets", "notNets"):
                field_path = (*path, side, key)
                items = self.strings(entity.get(key), field_path)
                self.limit(items, field_path, NETS_MAX, "entries")
                families: set[int] = set()
                for item_path, text in items:
                    if "/" not in text:
                        self.err(
                            item_path,
                            f"{text!r} is not a CIDR: rule nets are written addr/len "
                            f"(e.g. {text}/{'128' if ':' in text else '32'})",
                        )
                        continue
                    try:
                        net = _parse_ip_or_cidr(text)
                    except ValueError:
                        self.err(item_path, f"{text!r} is not a CIDR")
                        continue
                    if _host_bits_set(text, net):
                        self.err(
                            item_path,
                            f"{text!r} has host bits set; rule nets must be networks "
                            f"(did you mean {net}?)",
                        )
                        continue
                    families.add(net.version)
                    if key == "notNets" and (
                        (net.version == 4 and text == "0.0.0.0/0")
                        or (net.version == 6 and net.prefixlen == 0)
                    ):
                        self.err(
                            item_path,
                            f"{text!r} in notNets matches nothing: Calico rejects a catch-all "
                            "network in a negated field",
                        )
                if ip_version in (4, 6) and families - {ip_version}:
                    self.err(field_path, f"CIDRs do not match the rule's ipVersion {ip_version}")
                if len(families) > 1 or (families and seen and families != seen):
                    self.err(field_path, "a rule cannot mix IPv4 and IPv6 CIDRs")
                seen |= families

    def http(self, http: Mapping[str, Any], path: Path) -> None:
        self.keys(http, path, ("methods", "paths"))
        methods = self.strings(http.get("methods"), (*path, "methods"))
        self.limit(methods, (*path, "methods"), HTTP_ITEMS_MAX, "methods")
        seen: set[str] = set()
        for item_path, method in methods:
            if method in seen:
                self.err(item_path, f"method {method!r} is listed more than once")
            seen.add(method)
        paths = self.seq(http.get("paths"), (*path, "paths"))
        self.limit(paths, (*path, "paths"), HTTP_ITEMS_MAX, "paths")
        for i, entry in enumerate(paths):
            ppath = (*path, "paths", i)
            data = self.mapping(entry, ppath)
            if data is None:
                continue
            self.keys(data, ppath, ("exact", "prefix"))
            exact = self.string(data.get("exact"), (*ppath, "exact"))
            prefix = self.string(data.get("prefix"), (*ppath, "prefix"))
            if exact and prefix:
                self.err(ppath, "set either exact or prefix, not both")
                continue
            text = exact or prefix
            if not text:
                self.err(ppath, "needs exact or prefix")
                continue
            if len(text) > HTTP_PATH_MAX:
                self.err(ppath, f"path is {len(text)} characters; at most {HTTP_PATH_MAX}")
            if not text.startswith("/") or any(c in text for c in "? #"):
                self.err(ppath, f"{text!r} must start with '/' and contain no '?', '#' or space")

    # -- Kubernetes kinds ----------------------------------------------------------------------

    def k8s_network_policy(self, doc: Mapping[str, Any], prefix: Path) -> None:
        self.keys(doc, prefix, (*_TOP_KEYS, "status"))
        self.metadata(doc, "Kubernetes NetworkPolicy", prefix)
        path = (*prefix, "spec")
        spec = self.mapping(doc.get("spec"), path)
        if spec is None:
            if "spec" not in doc:
                self.err(path, "is required (with at least podSelector)")
            return
        self.keys(spec, path, ("podSelector", "policyTypes", "ingress", "egress"))
        if "podSelector" not in spec:
            self.err((*path, "podSelector"), "is required ({} selects every pod)")
        self.label_selector(spec.get("podSelector"), (*path, "podSelector"))
        self.choices(
            spec.get("policyTypes"),
            (*path, "policyTypes"),
            POLICY_TYPES,
            "is not Ingress or Egress",
        )
        for direction, peers_key in (("ingress", "from"), ("egress", "to")):
            for i, rule in enumerate(self.seq(spec.get(direction), (*path, direction))):
                rpath = (*path, direction, i)
                data = self.mapping(rule, rpath)
                if data is None:
                    continue
                self.keys(data, rpath, (peers_key, "ports"))
                for j, peer in enumerate(self.seq(data.get(peers_key), (*rpath, peers_key))):
                    self.k8s_peer(peer, (*rpath, peers_key, j))
                for j, port in enumerate(self.seq(data.get("ports"), (*rpath, "ports"))):
                    self.k8s_port(port, (*rpath, "ports", j))

    def label_selector(self, value: Any, path: Path) -> None:
        sel = self.mapping(value, path)
        if sel is None:
            return
        self.keys(sel, path, ("matchLabels", "matchExpressions"))
        self.labels(sel.get("matchLabels"), (*path, "matchLabels"))
        for i, expr in enumerate(
            self.seq(sel.get("matchExpressions"), (*path, "matchExpressions"))
        ):
            epath = (*path, "matchExpressions", i)
            data = self.mapping(expr, epath)
            if data is None:
                continue
            self.keys(data, epath, ("key", "operator", "values"))
            key = self.string(data.get("key"), (*epath, "key"))
            if key is None:
                self.err((*epath, "key"), "is required")
            else:
                self.qualified_name(key, (*epath, "key"), "label key")
            op = data.get("operator")
            values = self.strings(data.get("values"), (*epath, "values"))
            if op in ("In", "NotIn"):
                if not values:
                    self.err((*epath, "values"), f"operator {op} needs at least one value")
            elif op in ("Exists", "DoesNotExist"):
                if values:
                    self.err((*epath, "values"), f"operator {op} takes no values")
            else:
                self.err((*epath, "operator"), f"{op!r} is not In, NotIn, Exists or DoesNotExist")

    def k8s_peer(self, value: Any, path: Path) -> None:
        peer = self.mapping(value, path)
        if peer is None:
            return
        self.keys(peer, path, ("podSelector", "namespaceSelector", "ipBlock"))
        if not peer:
            self.err(path, "a peer needs podSelector, namespaceSelector or ipBlock")
        self.label_selector(peer.get("podSelector"), (*path, "podSelector"))
        self.label_selector(peer.get("namespaceSelector"), (*path, "namespaceSelector"))
        block = self.mapping(peer.get("ipBlock"), (*path, "ipBlock"))
        if block is None:
            return
        if "podSelector" in peer or "namespaceSelector" in peer:
            self.err(path, "ipBlock cannot be combined with podSelector or namespaceSelector")
        bpath = (*path, "ipBlock")
        self.keys(block, bpath, ("cidr", "except"))
        cidr = self.string(block.get("cidr"), (*bpath, "cidr"))
        net = None
        if cidr is None:
            self.err((*bpath, "cidr"), "is required")
        else:
            try:
                if "/" not in cidr:
                    raise ValueError(cidr)
                net = _parse_ip_or_cidr(cidr)
            except ValueError:
                self.err((*bpath, "cidr"), f"{cidr!r} is not a CIDR")
        for item_path, text in self.strings(block.get("except"), (*bpath, "except")):
            try:
                if "/" not in text:
                    raise ValueError(text)
                sub = _parse_ip_or_cidr(text)
            except ValueError:
                self.err(item_path, f"{text!r} is not a CIDR")
                continue
            if net is not None and (
                sub.version != net.version
                or not sub.subnet_of(net)  # type: ignore[arg-type]
                or sub.prefixlen <= net.prefixlen
            ):
                self.err(item_path, f"{text!r} must be a strict subset of {cidr!r}")

    def k8s_port(self, value: Any, path: Path) -> None:
        port = self.mapping(value, path)
        if port is None:
            return
        self.keys(port, path, ("protocol", "port", "endPort"))
        protocol = port.get("protocol")
        if protocol is not None and protocol not in ("TCP", "UDP", "SCTP"):
            self.err((*path, "protocol"), f"{protocol!r} is not TCP, UDP or SCTP")
        number = port.get("port")
        if isinstance(number, bool) or (number is not None and not isinstance(number, int | str)):
            self.err((*path, "port"), "must be a port number or name")
            return
        if isinstance(number, int):
            if not 1 <= number <= 65535:
                self.err((*path, "port"), f"port {number} is not in 1..65535")
        elif isinstance(number, str) and (
            len(number) > 15
            or not _IANA_SVC_NAME.match(number)
            or "--" in number
            or not any(c.isalpha() for c in number)
        ):
            self.err((*path, "port"), f"{number!r} is not a valid port name")
        end = self.integer(port.get("endPort"), (*path, "endPort"))
        if end is not None:
            if not isinstance(number, int):
                self.err((*path, "endPort"), "needs a numeric port")
            elif end < number:
                self.err((*path, "endPort"), f"endPort {end} is less than port {number}")
            elif end > 65535:
                self.err((*path, "endPort"), f"endPort {end} is not in 1..65535")

    def core(self, doc: Mapping[str, Any], kind: str, prefix: Path) -> None:
        """Pods and namespaces are label sources: check what the model reads from them."""
        self.metadata(doc, kind, prefix)
        if kind != "Pod":
            return
        status = self.mapping(doc.get("status"), (*prefix, "status"))
        if status is None:
            return
        ip = self.string(status.get("podIP"), (*prefix, "status", "podIP"))
        if ip:
            self.ip(ip, (*prefix, "status", "podIP"))
        for i, item in enumerate(self.seq(status.get("podIPs"), (*prefix, "status", "podIPs"))):
            ipath = (*prefix, "status", "podIPs", i)
            entry = self.mapping(item, ipath)
            if entry is not None:
                text = self.string(entry.get("ip"), (*ipath, "ip"))
                if text:
                    self.ip(text, (*ipath, "ip"))

    def ip(self, text: str, path: Path) -> None:
        try:
            if "%" in text:
                raise ValueError(text)
            ipaddress.ip_address(text)
        except ValueError:
            self.err(path, f"{text!r} is not an IP address")


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return f"a number ({value!r})"
    if isinstance(value, str):
        return f"a string ({value!r})"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, Mapping):
        return "a mapping"
    return type(value).__name__


# --------------------------------------------------------------------------------------------


def check(document: Any, prefix: Path = ()) -> list[tuple[Path, Problem]]:
    """Problems of one manifest with their raw YAML paths (tuples), for locating them;
    paths start with ``prefix`` (``("items", 3)`` for an item of a List)."""
    checker = _Validator()
    checker.document(document, prefix)
    return checker.found


def manifest_items(data: Any) -> Iterator[tuple[Path, Any]]:
    """The manifests of one YAML document with their path prefix: the items of a ``kind: List``
    (or ``<Kind>List``, as ``kubectl get -o yaml`` prints them) at ``("items", i)``, else the
    document itself at ``()``."""
    kind = data.get("kind") if isinstance(data, Mapping) else None
    if isinstance(kind, str) and kind.endswith("List") and isinstance(data.get("items"), list):
        for i, item in enumerate(data["items"]):
            yield ("items", i), item
    else:
        yield (), data


def validate(document: Mapping[str, Any]) -> list[Problem]:
    """Every problem of one manifest mapping (empty when Calico would accept it).

    Each ``Problem`` has ``path`` (``spec.egress[1].destination.nets[0]``) and ``message``;
    file and line are unset (see ``validate_documents``).
    """
    return [problem for _, problem in check(document)]


def validate_documents(documents: Iterable[yamlio.Document]) -> list[Problem]:
    """Every problem of every document, located (file, line, document index).

    ``kind: List`` documents are validated item by item (paths ``items[i]...``).
    """
    return [
        doc.locate(problem, path)
        for doc in documents
        for prefix, item in manifest_items(doc.data)
        for path, problem in check(item, prefix)
    ]
