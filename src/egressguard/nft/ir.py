"""The nftables IR: our table ``inet egressguard`` as immutable values.

The compiler builds a :class:`Table`; :mod:`egressguard.nft.render` turns it into one atomic
``nft -f`` transaction and :mod:`egressguard.nft.diff` compares two tables to find the cheapest
correct update. Nothing here knows about Calico: the IR speaks nftables (sets, chains, matches,
statements, verdicts), so golden scripts and the kernel can be checked against it directly.

Design choices (each one is what the kernel or ``nft`` 1.0.6 needs, checked on this machine):

* **Interval sets hold canonical ranges.** A set's elements are a :class:`~egressguard.cidr.
  sets.CidrSet`: maximal, sorted, non-adjacent ranges. The kernel refuses an added interval that
  overlaps a live one, and ``delete element`` must name an element exactly; canonical ranges
  make "elements of the old table" and "elements of the new table" comparable range by range,
  so an update is an exact list of ranges to delete and to add.
* **One family per set.** ``type ipv4_addr`` or ``type ipv6_addr`` with ``flags interval``, as
  Felix does (felix/nftables/ipsets.go); IPv4 and IPv6 members of a network set go to two sets.
* **Typed matches.** Each match is a small dataclass with the fields nftables needs; the text is
  produced only by the renderer. Protocols are numbers (``meta l4proto 6``), so rendering does
  not depend on ``/etc/protocols``.

Invariants are checked when values are built (names, references between chains and sets, hook
fields); a violation is a bug in the caller, reported as ``ValueError``.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from egressguard.cidr.addresses import Family
from egressguard.cidr.sets import CidrSet

__all__ = [
    "ACCEPT",
    "DROP",
    "RETURN",
    "TABLE_FAMILY",
    "TABLE_NAME",
    "AddrInNets",
    "AddrInSet",
    "AddrPorts",
    "Chain",
    "CtState",
    "Hook",
    "Icmp",
    "IcmpTypes",
    "IfName",
    "IntervalSet",
    "L4Proto",
    "Log",
    "LogLimit",
    "Match",
    "NfProto",
    "Ports",
    "Rule",
    "Statement",
    "Table",
    "Verdict",
    "set_family",
    "set_type",
]

#: Our table: one ``inet`` table (IPv4 and IPv6 together), never anyone else's.
TABLE_FAMILY = "inet"
TABLE_NAME = "egressguard"

# nft identifiers: a letter or underscore, then letters, digits, ``_``, ``-``, ``.``; the kernel
# allows 255 bytes (NFT_NAME_MAXLEN - 1), we keep far below to stay readable.
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,127}$")
# Text inside "..." in an nft script: printable ASCII without the quote (there are no escapes).
_QUOTED_TEXT = re.compile(r"^[\x20-\x21\x23-\x7e]*$")
# An interface name pattern: up to 15 bytes, an optional trailing ``*`` wildcard.
_IFNAME_PATTERN = re.compile(r"^[A-Za-z0-9_.-]{1,15}\*?$|^\*$")

CT_STATES = frozenset({"new", "established", "related", "invalid", "untracked"})
HOOKS = frozenset({"prerouting", "input", "forward", "output", "postrouting"})
LOG_LEVELS = frozenset(
    {"emerg", "alert", "crit", "err", "warn", "notice", "info", "debug", "audit"}
)
RATE_UNITS = frozenset({"second", "minute", "hour", "day"})


def _check_name(kind: str, name: str) -> None:
    if not _NAME.match(name):
        raise ValueError(f"{kind} name {name!r} is not a valid nft identifier")


def _check_quoted(kind: str, text: str, limit: int) -> None:
    if not _QUOTED_TEXT.match(text):
        raise ValueError(f'{kind} {text!r} holds a character nft cannot quote (" or non-ASCII)')
    if len(text) > limit:
        raise ValueError(f"{kind} {text!r} is longer than {limit} characters")


def set_type(family: Family) -> str:
    """The nft element type of an address set of ``family``."""
    return "ipv4_addr" if family == 4 else "ipv6_addr"


_SET_FAMILIES: dict[str, Family] = {set_type(4): 4, set_type(6): 6}


def set_family(type_name: str) -> Family | None:
    """The family of an address set of nft element type ``type_name`` (the inverse of
    :func:`set_type`, for sets read back from the kernel); ``None`` for any other type."""
    return _SET_FAMILIES.get(type_name)


# --------------------------------------------------------------------------------- sets


@dataclass(frozen=True, slots=True)
class IntervalSet:
    """A named interval set of addresses of one family (``flags interval``)."""

    name: str
    family: Family
    elements: CidrSet
    comment: str = ""

    def __post_init__(self) -> None:
        _check_name("set", self.name)
        if self.family not in (4, 6):
            raise ValueError(f"set {self.name}: family must be 4 or 6, not {self.family!r}")
        if self.elements.family != self.family:
            raise ValueError(
                f"set {self.name}: IPv{self.elements.family} elements in an IPv{self.family} set"
            )
        _check_quoted("set comment", self.comment, 128)

    @property
    def type(self) -> str:
        return set_type(self.family)


# ------------------------------------------------------------------------------ matches

AddrField = Literal["saddr", "daddr"]
PortField = Literal["sport", "dport"]


@dataclass(frozen=True, slots=True)
class CtState:
    """``ct state a,b``: the conntrack state is one of ``states``."""

    states: tuple[str, ...]

    def __post_init__(self) -> None:
        if not self.states or not set(self.states) <= CT_STATES:
            raise ValueError(f"ct states must be a non-empty subset of {sorted(CT_STATES)}")


@dataclass(frozen=True, slots=True)
class NfProto:
    """``meta nfproto ipv4|ipv6``: the packet's network family (in an ``inet`` table)."""

    family: Family


@dataclass(frozen=True, slots=True)
class L4Proto:
    """``meta l4proto P`` / ``meta l4proto != { P, Q }`` over IP protocol numbers (1-255)."""

    protocols: tuple[int, ...]
    negate: bool = False

    def __post_init__(self) -> None:
        if not self.protocols or any(not 0 <= p <= 255 for p in self.protocols):
            raise ValueError(f"protocol numbers must be 0..255, got {self.protocols!r}")


@dataclass(frozen=True, slots=True)
class AddrInSet:
    """``ip daddr @set`` (``ip6`` for IPv6), optionally negated with ``!=``."""

    field: AddrField
    family: Family
    set_name: str
    negate: bool = False

    def __post_init__(self) -> None:
        _check_name("set", self.set_name)


@dataclass(frozen=True, slots=True)
class AddrInNets:
    """``ip daddr { 192.0.2.0/24, ... }``: an anonymous set of addresses of one family."""

    field: AddrField
    nets: CidrSet
    negate: bool = False

    def __post_init__(self) -> None:
        if not self.nets:
            raise ValueError("an anonymous address set needs at least one element")

    @property
    def family(self) -> Family:
        return self.nets.family


@dataclass(frozen=True, slots=True)
class Ports:
    """``th dport { 80, 1000-2000 }``: transport ports, inclusive ranges.

    ``th`` reads the port fields common to TCP, UDP, UDP-Lite and SCTP, so a rule must restrict
    the protocol first (the compiler always puts an :class:`L4Proto` before it).
    """

    field: PortField
    ranges: tuple[tuple[int, int], ...]
    negate: bool = False

    def __post_init__(self) -> None:
        if not self.ranges or any(not 0 <= lo <= hi <= 65535 for lo, hi in self.ranges):
            raise ValueError(f"port ranges must be within 0..65535, got {self.ranges!r}")


@dataclass(frozen=True, slots=True)
class AddrPorts:
    """``meta l4proto . ip daddr . th dport { 6 . 192.0.2.5 . 8080, 6 . 0.0.0.0/0 . 80 }``.

    (protocol, address range, port range) triples, for rules whose ports include *named*
    ports: a named port stands for the (address, port) pairs of the endpoints that declare it,
    under one protocol, while numeric ports hold for any address. One concatenated set keeps
    the alternatives in one rule, so a Log rule logs once. ``addr_field``/``port_field`` name
    the side (``daddr``/``dport`` for destination ports).
    """

    family: Family
    addr_field: AddrField
    port_field: PortField
    entries: tuple[tuple[int, int, int, int, int], ...]  # proto, first, last, lo, hi
    negate: bool = False

    def __post_init__(self) -> None:
        top = (1 << (32 if self.family == 4 else 128)) - 1
        if not self.entries or any(
            not (0 <= proto <= 255 and 0 <= first <= last <= top and 0 <= lo <= hi <= 65535)
            for proto, first, last, lo, hi in self.entries
        ):
            raise ValueError(f"bad (protocol, address range, port range) entries: {self.entries!r}")


@dataclass(frozen=True, slots=True)
class Icmp:
    """``icmp type T [icmp code C]`` (``icmpv6`` for IPv6).

    Negated, it means "not (an ICMP packet of this type [and code])", so it also holds for
    packets of other protocols, as egressguard's evaluator reads ``notICMP``. ``icmp type !=``
    would not do: nft adds the dependency ``meta l4proto icmp`` to it. The renderer compares
    the protocol and the first byte(s) of the transport header as one concatenation instead.
    """

    family: Family
    type: int
    code: int | None = None
    negate: bool = False

    def __post_init__(self) -> None:
        if not 0 <= self.type <= 255 or (self.code is not None and not 0 <= self.code <= 255):
            raise ValueError(f"ICMP type/code out of range: {self.type}/{self.code}")


@dataclass(frozen=True, slots=True)
class IcmpTypes:
    """``icmpv6 type { 133, 134 }``: any of several ICMP (``family`` 4) or ICMPv6 types."""

    family: Family
    types: tuple[int, ...]

    def __post_init__(self) -> None:
        if not self.types or any(not 0 <= t <= 255 for t in self.types):
            raise ValueError(f"ICMP types must be 0..255, got {self.types!r}")


@dataclass(frozen=True, slots=True)
class IfName:
    """``iifname "cali*"`` / ``oifname "eth0"``: an interface name, ``*`` as a suffix wildcard."""

    direction: Literal["iifname", "oifname"]
    pattern: str
    negate: bool = False

    def __post_init__(self) -> None:
        if not _IFNAME_PATTERN.match(self.pattern):
            raise ValueError(f"interface pattern {self.pattern!r} is not a valid name or prefix*")


Match = (
    CtState
    | NfProto
    | L4Proto
    | AddrInSet
    | AddrInNets
    | Ports
    | AddrPorts
    | Icmp
    | IcmpTypes
    | IfName
)


# ------------------------------------------------------------------------- statements


@dataclass(frozen=True, slots=True)
class LogLimit:
    """``limit rate R/unit burst B packets`` in front of a log statement.

    In nftables ``limit`` is itself a match: over the limit the rest of *this rule* is skipped,
    and evaluation goes on with the next rule. A Log rule has no verdict, so only the log line
    is suppressed, as Calico specifies (``logActionRateLimit``).
    """

    rate: int
    unit: str = "second"
    burst: int = 5

    def __post_init__(self) -> None:
        if self.rate < 1 or self.unit not in RATE_UNITS or self.burst < 0:
            raise ValueError(f"bad log rate limit {self.rate}/{self.unit} burst {self.burst}")


@dataclass(frozen=True, slots=True)
class Log:
    """``log prefix "..." level info``. The prefix text comes from ``logprefix.encode``."""

    prefix: str
    level: str = "info"
    limit: LogLimit | None = None

    def __post_init__(self) -> None:
        _check_quoted("log prefix", self.prefix, 127)
        if self.level not in LOG_LEVELS:
            raise ValueError(f"log level {self.level!r} is not one of {sorted(LOG_LEVELS)}")


Statement = Log


@dataclass(frozen=True, slots=True)
class Verdict:
    """``accept``, ``drop``, ``return``, ``jump CHAIN`` or ``goto CHAIN``."""

    kind: Literal["accept", "drop", "return", "jump", "goto"]
    target: str | None = None

    def __post_init__(self) -> None:
        if self.kind in ("jump", "goto"):
            if self.target is None:
                raise ValueError(f"{self.kind} needs a target chain")
            _check_name("chain", self.target)
        elif self.target is not None:
            raise ValueError(f"{self.kind} takes no target")

    @staticmethod
    def jump(chain: str) -> Verdict:
        return Verdict("jump", chain)

    @staticmethod
    def goto(chain: str) -> Verdict:
        return Verdict("goto", chain)


ACCEPT = Verdict("accept")
DROP = Verdict("drop")
RETURN = Verdict("return")


@dataclass(frozen=True, slots=True)
class Rule:
    """Matches (all must hold), then statements, then an optional verdict."""

    matches: tuple[Match, ...] = ()
    statements: tuple[Statement, ...] = ()
    verdict: Verdict | None = None
    comment: str | None = None

    def __post_init__(self) -> None:
        if not self.statements and self.verdict is None:
            raise ValueError("a rule needs a statement or a verdict")
        if self.comment is not None:
            _check_quoted("rule comment", self.comment, 127)


# ------------------------------------------------------------------------------ chains


@dataclass(frozen=True, slots=True)
class Hook:
    """What makes a chain a base chain: ``type filter hook H priority P; policy X;``."""

    hook: str
    priority: int = 0
    policy: Literal["accept", "drop"] = "accept"
    type: Literal["filter"] = "filter"

    def __post_init__(self) -> None:
        if self.hook not in HOOKS:
            raise ValueError(f"hook {self.hook!r} is not one of {sorted(HOOKS)}")


@dataclass(frozen=True, slots=True)
class Chain:
    """A chain: a base chain when ``hook`` is set, else a regular chain reached by jumps."""

    name: str
    rules: tuple[Rule, ...] = ()
    hook: Hook | None = None

    def __post_init__(self) -> None:
        _check_name("chain", self.name)

    def targets(self) -> Iterable[str]:
        """Chains this chain jumps or goes to."""
        for rule in self.rules:
            if rule.verdict is not None and rule.verdict.target is not None:
                yield rule.verdict.target


# ------------------------------------------------------------------------------- table


@dataclass(frozen=True, slots=True)
class Table:
    """Our whole table: sets and chains, in the order they are rendered.

    Construction checks that every jump target and every referenced set exists, that names are
    unique, that set lookups agree with the set's family, and that chains form no cycle
    (the kernel refuses loops; we refuse them earlier with a clearer message).
    """

    sets: tuple[IntervalSet, ...] = ()
    chains: tuple[Chain, ...] = ()
    name: str = TABLE_NAME
    family: str = field(default=TABLE_FAMILY, init=False)
    #: Values derived from the table and kept with it (the renderer's digests: a table is
    #: compared with the kernel's marker several times per update). Not part of the value.
    memo: dict[str, str] = field(
        default_factory=dict, init=False, repr=False, compare=False, hash=False
    )

    def __post_init__(self) -> None:
        _check_name("table", self.name)
        set_names = [s.name for s in self.sets]
        chain_names = [c.name for c in self.chains]
        for kind, names in (("set", set_names), ("chain", chain_names)):
            # Counted in one pass: a table of a host with many workloads has thousands of
            # chains, and it is built again on every compile (list.count per name was
            # quadratic: 0.4 s for 5000 chains).
            dupes = sorted(name for name, count in Counter(names).items() if count > 1)
            if dupes:
                raise ValueError(f"duplicate {kind} names: {', '.join(dupes)}")
        families = {s.name: s.family for s in self.sets}
        chains = {c.name: c for c in self.chains}
        for chain in self.chains:
            for target in chain.targets():
                if target not in chains:
                    raise ValueError(f"chain {chain.name} jumps to unknown chain {target}")
                if chains[target].hook is not None:
                    raise ValueError(f"chain {chain.name} jumps to base chain {target}")
            for rule in chain.rules:
                for match in rule.matches:
                    if isinstance(match, AddrInSet):
                        if match.set_name not in families:
                            raise ValueError(
                                f"chain {chain.name} looks up unknown set {match.set_name}"
                            )
                        if families[match.set_name] != match.family:
                            raise ValueError(
                                f"chain {chain.name}: IPv{match.family} lookup in "
                                f"IPv{families[match.set_name]} set {match.set_name}"
                            )
        self.dependency_order()  # raises on a cycle

    def set(self, name: str) -> IntervalSet:
        for item in self.sets:
            if item.name == name:
                return item
        raise KeyError(name)

    def chain(self, name: str) -> Chain:
        for item in self.chains:
            if item.name == name:
                return item
        raise KeyError(name)

    def dependency_order(self) -> tuple[Chain, ...]:
        """Chains with every jump target before the chain that jumps to it.

        ``nft`` resolves a ``jump`` when it reads it, so callees are defined first; among
        chains with no order between them the table's own order is kept (stable output).
        """
        chains = {c.name: c for c in self.chains}
        done: dict[str, Chain] = {}
        visiting: set[str] = set()

        def visit(chain: Chain) -> None:
            if chain.name in done:
                return
            if chain.name in visiting:
                raise ValueError(f"chain {chain.name} is part of a jump cycle")
            visiting.add(chain.name)
            for target in chain.targets():
                visit(chains[target])
            visiting.discard(chain.name)
            done[chain.name] = chain

        for chain in self.chains:
            visit(chain)
        return tuple(done.values())
