"""The log-prefix contract shared by the nft compiler (``encode``) and the log parser (``decode``).

The kernel pastes a LOG rule's prefix verbatim in front of ``IN=``; whatever the prefix carries
is all a log reader learns about *which* policy logged a packet. This module is the one place
that writes and reads that text, modelled on Calico (Felix) 3.30+ ``LogPrefix``:

- a template in Calico's charset (CRD pattern ``^([a-zA-Z0-9%: /_-])*$``, projectcalico/calico
  #11566), default ``calico-packet``;
- the specifiers ``%t`` (tier), ``%k`` (short kind: ``gnp``, ``np``, ``knp``, …), ``%n`` (policy
  name) and ``%p`` (``namespace/name`` for namespaced kinds, else ``name``), substituted the way
  Felix's ``generateLogPrefix`` does it: a left-to-right scan for ``%[tknp]``; any other ``%``
  stays literal and ``%%`` is *not* an escape (felix/rules/policy.go, and the
  ``"calico-packet %p:%k:%%y%t%%n"`` case in felix/rules/policy_test.go);
- Felix appends ``": "`` when it renders the rule (``log prefix "%s: "`` in
  felix/nftables/actions.go), so ``encode`` returns the text *with* that suffix;
- the kernel keeps at most 127 characters (``NF_LOG_PREFIXLEN`` 128 with the NUL); recent nft
  releases refuse 127 already (projectcalico/calico#13969), so ``encode`` allows 126 by default.
  iptables keeps only 29 characters and truncates silently (``xt_log_info.prefix[30]``).

``decode`` reverses ``encode`` for a prefix seen in a log line. It is exact for *decodable*
templates (see ``is_decodable``): two specifiers must be separated by at least one character
that cannot occur in a Kubernetes name (anything but ``[a-z0-9.-]``), else ``%t-%n`` could split
``a-b-c`` two ways. A truncated prefix (iptables) does not match and decodes to ``None``.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import NamedTuple

from egressguard.errors import InputError

__all__ = [
    "DEFAULT_TEMPLATE",
    "IPTABLES_MAX_LENGTH",
    "KIND_SHORT_NAMES",
    "MAX_LENGTH",
    "PrefixInfo",
    "decode",
    "encode",
    "has_specifiers",
    "is_decodable",
    "normalise",
    "validate_template",
]

#: Felix's default ``LogPrefix``.
DEFAULT_TEMPLATE = "calico-packet"
#: Longest rendered prefix (``": "`` included) that every nft release accepts.
MAX_LENGTH = 126
#: What iptables keeps of a prefix; longer prefixes are truncated by the kernel module.
IPTABLES_MAX_LENGTH = 29

#: Calico's short kind names (felix/types/policy_id.go ``ShortKind*``; ``pro`` for profiles
#: comes from felix/rules/policy.go ``generateLogPrefix``).
KIND_SHORT_NAMES: dict[str, str] = {
    "NetworkPolicy": "np",
    "GlobalNetworkPolicy": "gnp",
    "StagedNetworkPolicy": "snp",
    "StagedGlobalNetworkPolicy": "sgnp",
    "StagedKubernetesNetworkPolicy": "sknp",
    "KubernetesNetworkPolicy": "knp",
    "KubernetesClusterNetworkPolicy": "kcnp",
    "Profile": "pro",
}

_TEMPLATE_RE = re.compile(r"^[a-zA-Z0-9%: /_-]*$")
_SPECIFIER_RE = re.compile(r"%[tknp]")
# Kubernetes object names (DNS-1123 subdomain; Calico tier names and policy names such as
# "knp.default.web" fit) and namespaces (DNS-1123 label); kinds are short lowercase words.
_NAME = r"[a-z0-9](?:[a-z0-9.-]{0,251}[a-z0-9])?"
_NAMESPACE = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_KIND = r"[a-z]{1,32}"
_NAME_RE = re.compile(rf"^{_NAME}$")
_NAMESPACE_RE = re.compile(rf"^{_NAMESPACE}$")
_KIND_RE = re.compile(rf"^{_KIND}$")
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789.-")


class PrefixInfo(NamedTuple):
    """What a prefix says about the rule that logged: ``None`` where the template is silent."""

    tier: str | None = None
    kind: str | None = None
    name: str | None = None
    namespace: str | None = None


def validate_template(template: str) -> None:
    """Raise ``InputError`` unless ``template`` is a valid Calico ``LogPrefix``."""
    if not _TEMPLATE_RE.match(template):
        bad = sorted({c for c in template if not _TEMPLATE_RE.match(c)})
        raise InputError(
            f"log prefix template {template!r} has characters Calico does not allow: "
            + " ".join(repr(c) for c in bad),
            hint="use letters, digits, space and % : / _ - (FelixConfiguration.logPrefix)",
        )


def has_specifiers(template: str) -> bool:
    """True when ``template`` uses any of ``%t %k %n %p``."""
    return _SPECIFIER_RE.search(template) is not None


def _split(template: str) -> list[str]:
    """Literal text and specifiers in order: ``"a %t:%n"`` → ``["a ", "%t", ":", "%n", ""]``."""
    parts: list[str] = []
    last = 0
    for m in _SPECIFIER_RE.finditer(template):
        parts.append(template[last : m.start()])
        parts.append(m.group())
        last = m.end()
    parts.append(template[last:])
    return parts


def is_decodable(template: str) -> bool:
    """True when every two specifiers are separated by a character no name can contain."""
    parts = _split(template)
    # parts alternate literal, specifier, literal, …; inner literals sit between specifiers.
    inner = parts[2:-1:2]
    return all(any(c not in _NAME_CHARS for c in lit) for lit in inner)


def encode(
    template: str = DEFAULT_TEMPLATE,
    *,
    tier: str | None = None,
    kind: str | None = None,
    name: str | None = None,
    namespace: str | None = None,
    max_length: int = MAX_LENGTH,
) -> str:
    """Render the text for ``log prefix "..."``: the template with its specifiers filled in,
    followed by ``": "`` as Felix writes it.

    A specifier needs its value (``%p`` needs ``name``; ``namespace`` is optional). Values must
    be Kubernetes names (``kind`` a short lowercase word), which also keeps quotes and
    backslashes out of the nft string. Raises ``InputError`` for a bad template, a bad or
    missing value, or a result longer than ``max_length``.
    """
    validate_template(template)
    values = {"tier": tier, "kind": kind, "name": name, "namespace": namespace}
    checks = {"tier": _NAME_RE, "kind": _KIND_RE, "name": _NAME_RE, "namespace": _NAMESPACE_RE}
    for field, value in values.items():
        if value is not None and not checks[field].match(value):
            raise InputError(
                f"log prefix {field} {value!r} is not a valid Kubernetes {field}",
                hint="names are lowercase letters, digits, '-' and '.'",
            )
    needed = {"%t": "tier", "%k": "kind", "%n": "name", "%p": "name"}

    def substitute(m: re.Match[str]) -> str:
        spec = m.group()
        value = values[needed[spec]]
        if value is None:
            raise InputError(
                f"log prefix template {template!r} uses {spec} but no {needed[spec]} was given"
            )
        if spec == "%p" and namespace is not None:
            return f"{namespace}/{value}"
        return value

    text = _SPECIFIER_RE.sub(substitute, template) + ": "
    if len(text) > max_length:
        raise InputError(
            f"log prefix {text!r} is {len(text)} characters; the limit is {max_length}",
            hint="shorten the template or the policy name (nft refuses longer prefixes)",
        )
    return text


def normalise(prefix_text: str) -> str:
    """The prefix as events carry it: trailing blanks and one trailing ``:`` removed."""
    text = prefix_text.rstrip()
    if text.endswith(":"):
        text = text[:-1].rstrip()
    return text


#: The field each specifier but ``%p`` captures, and its pattern.
_FIELDS = {"%t": ("tier", _NAME), "%k": ("kind", _KIND), "%n": ("name", _NAME)}


@lru_cache(maxsize=64)
def _decoder(template: str) -> re.Pattern[str]:
    out: list[str] = []
    seen: set[str] = set()

    def field(name: str, pattern: str) -> str:
        """The first use of a field captures it; later uses must repeat what it captured."""
        if name in seen:
            return f"(?P={name})"
        seen.add(name)
        return f"(?P<{name}>{pattern})"

    # Only trailing blanks of the template are dropped: a template ending in ':' keeps it,
    # because normalise() removes exactly the ':' that Felix appends.
    for i, part in enumerate(_split(template.rstrip())):
        if i % 2 == 0:
            out.append(re.escape(part))
        elif part == "%p":  # optional namespace, then the name
            if "namespace" in seen:  # the namespace again exactly when the first use had one
                out.append("(?(namespace)(?P=namespace)/)")
            else:
                out.append(f"(?:{field('namespace', _NAMESPACE)}/)?")
            out.append(field("name", _NAME))
        else:
            out.append(field(*_FIELDS[part]))
    return re.compile("".join(out) + r"\Z")


def decode(
    prefix_text: str, template: str = DEFAULT_TEMPLATE, *, require_suffix: bool = False
) -> PrefixInfo | None:
    """What ``prefix_text`` (as seen in a log line, with or without the ``": "``) says under
    ``template``; ``None`` when it does not match (another tool's prefix).

    A prefix iptables cut at 29 characters loses Felix's ``": "`` and may still match with a
    shortened name; pass the raw text with ``require_suffix=True`` to refuse anything that does
    not end in ``:`` (the log parser does).

    ``decode(encode(t, **values), t) == PrefixInfo(**values)`` for decodable templates.
    """
    if require_suffix and not prefix_text.rstrip().endswith(":"):
        return None
    m = _decoder(template).match(normalise(prefix_text))
    if m is None:
        return None
    groups = m.groupdict()
    return PrefixInfo(
        tier=groups.get("tier"),
        kind=groups.get("kind"),
        name=groups.get("name"),
        namespace=groups.get("namespace"),
    )
