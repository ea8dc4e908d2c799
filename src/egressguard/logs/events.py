"""Values the log parser produces: ``Event`` (one logged packet), ``Packet`` (the header embedded
in an ICMP error) and ``Issue`` (a rejected line).

Events are built hundreds of thousands of times per second, so their storage is chosen for the
cost of building one: a frozen dataclass of 77 fields costs ~10 µs, a 77-field ``NamedTuple``
~0.8 µs (the tuple is too large for Python's small-object allocator and is assembled from
unpacked pieces). An ``Event`` is a tuple of 23 slots instead: the fields that vary from packet
to packet are slots of their own, and each run of fields that a node repeats (the prefix and
link header, the IPv4 header's LEN/TOS/PREC/TTL, the IP flags with the protocol, the TCP
header, the rare tail, the enrichment) is one nested tuple the parser takes from its caches as
it is, so an event costs one small tuple display (~0.2 µs). The layout is fixed, so two events
are equal exactly when all their fields are; reading a field is one index (flat fields) or two
(fields in a run).

It is still immutable, typed and keyword-constructible, with ``NamedTuple``'s ``_fields``,
``_field_defaults``, ``_asdict()`` and ``_replace()`` (the enrichment step adds its fields with
``event._replace(set=..., country=...)``). Only its positional form differs: ``len``, indexing
and iteration see the 23 slots, not the fields; ``_values()`` gives the fields in order.

Field names follow the kernel's own order (``nf_log_syslog.c``); ``docs/log-events.md`` is the
schema reference. Values are normalised: addresses as ``ipaddress`` prints them (IPv6
compressed), numbers as ``int`` (hex fields too), flags as tuples of the kernel's words in the
kernel's order, and absent fields as ``None``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, tzinfo
from operator import itemgetter
from typing import Any, ClassVar, NamedTuple, Self, dataclass_transform

__all__ = [
    "ISSUE_CODES",
    "WRAPPERS",
    "Event",
    "Issue",
    "Packet",
    "event_epoch",
    "event_to_json",
    "issue_to_json",
    "packet_to_json",
    "parse_time",
]

#: Layer-1 wrapper kinds, as ``Event.wrapper`` names them.
WRAPPERS = (
    "iso8601",  # rsyslog RSYSLOG_FileFormat: 2025-01-19T16:13:46.406155+00:00 host kernel: msg
    "rfc3164",  # Jan 19 16:13:46 host kernel: msg   (optionally <PRI> first)
    "rfc5424",  # <5>1 2025-01-19T16:13:46.406155Z host kernel - - - msg
    "journald",  # journalctl -o json, _TRANSPORT=kernel
    "dmesg",  # [ 6236.551431] msg
    "dmesg-T",  # [Sun Jan 19 16:13:46 2025] msg
    "kmsg",  # /dev/kmsg: 5,344,107477159,-;msg
    "bare",  # msg alone
)

#: ``Issue.code`` values: a fixed, small set, so they can label a metric.
ISSUE_CODES = (
    "not-kernel",  # written by something else than the kernel (syslog tag, transport, facility)
    "bad-wrapper",  # the syslog/journald/kmsg wrapper is malformed (timestamp, JSON, header)
    "bad-address",  # an address is not a valid IPv4/IPv6 address (truncated, redacted)
    "bad-field",  # a number or hex value is malformed or out of range
    "grammar",  # fields missing, out of the kernel's order, or unknown
    "glued",  # two records run together in one line
    "no-payload",  # looks like a packet log but carries no netfilter payload (eBPF, placeholders)
)


class Packet(NamedTuple):
    """An IP header dump: the inner packet quoted by an ICMP/ICMPv6 error (``[SRC=... ]``).

    Same meaning as the fields of the same name on ``Event``.
    """

    family: int | None = None
    src: str | None = None
    dst: str | None = None
    length: int | None = None
    tos: int | None = None
    prec: int | None = None
    ttl: int | None = None
    ip_id: int | None = None
    tc: int | None = None
    hoplimit: int | None = None
    flowlabel: int | None = None
    ip_flags: tuple[str, ...] = ()
    fragment: int | None = None
    frag_id: int | None = None
    ip_options: str | None = None
    ext_headers: str | None = None
    proto: str | None = None
    proto_num: int | None = None
    src_port: int | None = None
    dst_port: int | None = None
    tcp_seq: int | None = None
    tcp_ack: int | None = None
    window: int | None = None
    tcp_res: int | None = None
    tcp_flags: tuple[str, ...] = ()
    urgp: int | None = None
    tcp_options: str | None = None
    udp_len: int | None = None
    icmp_type: int | None = None
    icmp_code: int | None = None
    icmp_id: int | None = None
    icmp_seq: int | None = None
    icmp_parameter: int | None = None
    icmp_gateway: str | None = None
    mtu: int | None = None
    spi: int | None = None
    incomplete: int | None = None
    truncated: bool = False


def _run_getter(slot: int, index: int) -> Callable[[tuple[Any, ...]], Any]:
    def get(self: tuple[Any, ...]) -> Any:
        return self[slot][index]

    return get


def _constructor(
    cls: type, names: tuple[str, ...], defaults: dict[str, Any], layout: list[tuple[int, int, bool]]
) -> Callable[..., Any]:
    """``cls.__new__``: one parameter per field, with its default, returning the slots.

    Generated from source, as ``collections.namedtuple`` and ``dataclasses`` generate their
    constructors: Python itself then checks the arguments, and the body is one tuple display
    (~1.2 µs for an event of 17 keywords, against ~5 µs for a loop over ``**kwargs`` that
    packs the runs); the parser's general path builds every event through it.
    """
    if any(not name.isidentifier() or name.startswith("_") for name in names):
        raise TypeError(f"{cls.__name__}: field names must be identifiers without a leading _")
    slots = [
        f"({', '.join(names[first:stop])},)" if run else names[first] for first, stop, run in layout
    ]
    source = (
        f"def __new__(_cls, {', '.join(names)}):\n    return _new(_cls, ({', '.join(slots)},))\n"
    )
    namespace: dict[str, Any] = {"_new": tuple.__new__}
    exec(source, namespace)  # noqa: S102  (the text is made of this class's own field names)
    new: Callable[..., Any] = namespace["__new__"]
    new.__defaults__ = tuple(defaults.values())
    new.__qualname__ = f"{cls.__qualname__}.__new__"
    new.__doc__ = f"A new {cls.__name__}: every field may be given by name or in field order."
    return new


def _readers(
    names: tuple[str, ...], layout: list[tuple[int, int, bool]]
) -> tuple[Callable[..., tuple[Any, ...]], Callable[..., dict[str, Any]]]:
    """``_values`` and ``_asdict``, generated like the constructor: one tuple display and one
    dict display reading every field from its slot (~1.3 and ~3.8 µs for an event, most of
    the latter building the 77-entry dict; loops over the slots cost ~1-2 µs more).
    ``event_to_json`` and the CLI read events through them."""
    runs: list[str] = []
    reads: list[str] = []
    for slot, (first, stop, run) in enumerate(layout):
        if run:
            runs.append(f"    r{slot} = self[{slot}]\n")
            reads.extend(f"r{slot}[{i - first}]" for i in range(first, stop))
        else:
            reads.append(f"self[{slot}]")
    mapping = ", ".join(f"{name!r}: {read}" for name, read in zip(names, reads, strict=True))
    source = (
        f"def _values(self):\n{''.join(runs)}    return ({', '.join(reads)},)\n"
        f"def _asdict(self):\n{''.join(runs)}    return {{{mapping}}}\n"
    )
    namespace: dict[str, Any] = {}
    exec(source, namespace)  # noqa: S102  (the text is made of this class's own field names)
    namespace["_values"].__doc__ = "Every field's value, in field order."
    namespace["_asdict"].__doc__ = "Every field by name, in field order."
    return namespace["_values"], namespace["_asdict"]


@dataclass_transform(frozen_default=True)
class _Record(tuple[Any, ...]):
    """A record kept as a tuple of slots: a field has a slot of its own, or belongs to a run
    of consecutive fields (``_runs``: first and last name) stored as one nested tuple.

    Subclasses declare every field as an annotated class attribute with its default, in order,
    as for a ``NamedTuple``; ``__init_subclass__`` turns each into a read-only property (one
    index, or two for a field in a run) and generates the constructor, ``_values`` and ``_asdict``.
    """

    __slots__ = ()
    _fields: ClassVar[tuple[str, ...]]
    _field_defaults: ClassVar[dict[str, Any]]
    _runs: ClassVar[tuple[tuple[str, str], ...]] = ()
    #: per slot: the field indices it holds (start, stop) and whether they are a run
    _layout: ClassVar[tuple[tuple[int, int, bool], ...]]
    #: field name -> (slot, index in its run, or -1 when the slot is the field's own)
    _where: ClassVar[dict[str, tuple[int, int]]]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        names = tuple(cls.__annotations__)
        defaults = {name: cls.__dict__[name] for name in names}
        ends = {names.index(first): names.index(last) + 1 for first, last in cls._runs}
        layout: list[tuple[int, int, bool]] = []
        i = 0
        while i < len(names):
            stop = ends.get(i)
            layout.append((i, stop, True) if stop is not None else (i, i + 1, False))
            i = stop if stop is not None else i + 1
        where: dict[str, tuple[int, int]] = {}
        for slot, (first, stop, run) in enumerate(layout):
            for i in range(first, stop):
                where[names[i]] = (slot, i - first if run else -1)
                getter = _run_getter(slot, i - first) if run else itemgetter(slot)
                setattr(cls, names[i], property(getter, doc=f"The field {names[i]!r}."))
        cls._fields = names
        cls._field_defaults = defaults
        cls._layout = tuple(layout)
        cls._where = where
        new = _constructor(cls, names, defaults, layout)
        cls.__new__ = staticmethod(new)  # type: ignore[method-assign]
        cls._values, cls._asdict = _readers(names, layout)  # type: ignore[method-assign]

    def __new__(cls, *args: Any, **kwargs: Any) -> Self:
        # Replaced in every subclass by the constructor __init_subclass__ generates.
        raise TypeError(f"{cls.__name__} declares no fields")

    def _values(self) -> tuple[Any, ...]:
        """Every field's value, in field order (generated per subclass)."""
        raise NotImplementedError

    def _asdict(self) -> dict[str, Any]:
        """Every field by name, in field order (generated per subclass)."""
        raise NotImplementedError

    def _replace(self, **changes: Any) -> Self:
        """A copy with the named fields changed (``ValueError`` for an unknown name)."""
        slots = list(self)
        runs: dict[int, list[Any]] = {}
        for name, value in changes.items():
            place = self._where.get(name)
            if place is None:
                raise ValueError(
                    f"Got unexpected field names: {sorted(set(changes) - set(self._where))!r}"
                )
            slot, index = place
            if index < 0:
                slots[slot] = value
            else:
                run = runs.get(slot)
                if run is None:
                    run = runs[slot] = list(slots[slot])
                run[index] = value
        for slot, run in runs.items():
            slots[slot] = tuple(run)
        return tuple.__new__(type(self), slots)

    def __getnewargs__(self) -> tuple[Any, ...]:  # pickle and copy rebuild from the fields
        return self._values()

    def __repr__(self) -> str:
        shown = ", ".join(f"{n}={v!r}" for n, v in zip(self._fields, self._values(), strict=True))
        return f"{type(self).__name__}({shown})"


class Event(_Record):
    """One packet the kernel logged, with where the line came from.

    Layer 1 (wrapper): ``line_no``, ``wrapper``, ``time`` (ISO 8601; RFC 3164 and ``dmesg -T``
    times have no offset: local wall clock), ``host``, ``priority`` (syslog PRI or kmsg
    prefix: facility*8+severity), ``uptime`` (seconds since boot from ``[ 123.456]``, kmsg or
    journald), ``seq`` (kmsg sequence number).

    Prefix: ``prefix`` (trailing ``": "`` removed) and, when the configured template decodes
    it, ``tier``/``policy_kind``/``policy``/``policy_namespace``.

    Layer 2 (netfilter payload), in the kernel's order: interfaces, link layer, IP header,
    transport header, ICMP details with ``inner`` for the quoted header, trailer
    (``uid``/``gid``/``mark``). ``family`` is 4, 6 or ``None`` (ARP and non-IP frames).
    ``proto`` is the upper-case protocol name (``TCP``, ``UDP``, ``UDPLITE``, ``ICMP``,
    ``ICMPV6``, ``ESP``, ``AH``, ``GRE``, …; the number as text when unnamed) and
    ``proto_num`` its number. ``fragment`` is the fragment offset in bytes (the kernel prints
    8-byte units for IPv4). ``incomplete`` is N from ``INCOMPLETE [N bytes]``; ``truncated``
    means the kernel could not read a header (``TRUNCATED``).

    Enrichment (filled later, never by the parser): ``set``, ``feeds``, ``country``,
    ``src_pod``, ``src_namespace``, ``repeat_count``.
    """

    _runs = (
        ("prefix", "family"),
        ("length", "ttl"),
        ("tc", "proto_num"),
        ("tcp_seq", "tcp_options"),
        ("icmp_parameter", "mark"),
        ("set", "repeat_count"),
    )

    line_no: int = 0
    wrapper: str = "bare"
    time: str | None = None
    host: str | None = None
    priority: int | None = None
    uptime: float | None = None
    seq: int | None = None
    prefix: str = ""
    tier: str | None = None
    policy_kind: str | None = None
    policy: str | None = None
    policy_namespace: str | None = None
    in_iface: str | None = None
    out_iface: str | None = None
    physin: str | None = None
    physout: str | None = None
    mac: str | None = None
    mac_dst: str | None = None
    mac_src: str | None = None
    ethertype: int | None = None
    vlan_proto: int | None = None
    vlan_id: int | None = None
    tunnel_src: str | None = None
    tunnel_dst: str | None = None
    family: int | None = None
    src: str | None = None
    dst: str | None = None
    length: int | None = None
    tos: int | None = None
    prec: int | None = None
    ttl: int | None = None
    ip_id: int | None = None
    tc: int | None = None
    hoplimit: int | None = None
    flowlabel: int | None = None
    ip_flags: tuple[str, ...] = ()
    fragment: int | None = None
    frag_id: int | None = None
    ip_options: str | None = None
    ext_headers: str | None = None
    proto: str | None = None
    proto_num: int | None = None
    src_port: int | None = None
    dst_port: int | None = None
    tcp_seq: int | None = None
    tcp_ack: int | None = None
    window: int | None = None
    tcp_res: int | None = None
    tcp_flags: tuple[str, ...] = ()
    urgp: int | None = None
    tcp_options: str | None = None
    udp_len: int | None = None
    icmp_type: int | None = None
    icmp_code: int | None = None
    icmp_id: int | None = None
    icmp_seq: int | None = None
    icmp_parameter: int | None = None
    icmp_gateway: str | None = None
    mtu: int | None = None
    spi: int | None = None
    incomplete: int | None = None
    truncated: bool = False
    inner: Packet | None = None
    arp_htype: int | None = None
    arp_ptype: int | None = None
    arp_opcode: int | None = None
    arp_sha: str | None = None
    arp_tha: str | None = None
    uid: int | None = None
    gid: int | None = None
    mark: int | None = None
    # enrichment
    set: str | None = None
    feeds: tuple[str, ...] = ()
    country: str | None = None
    src_pod: str | None = None
    src_namespace: str | None = None
    repeat_count: int | None = None


class Issue(NamedTuple):
    """A line that looked like a packet log but was rejected; never an event.

    ``code`` is one of ``ISSUE_CODES``; ``issue`` says what is wrong in words; ``prefix`` is the
    log prefix when it could be found (so ``--prefix`` can filter issues too).
    """

    line_no: int
    code: str
    issue: str
    prefix: str | None = None


_TUPLE_FIELDS = frozenset({"ip_flags", "tcp_flags", "feeds"})


def packet_to_json(packet: Packet) -> dict[str, Any]:
    """``packet`` as a JSON-ready dict (tuples become lists)."""
    out: dict[str, Any] = packet._asdict()
    out["ip_flags"] = list(packet.ip_flags)
    out["tcp_flags"] = list(packet.tcp_flags)
    return out


def event_to_json(event: Event) -> dict[str, Any]:
    """``event`` as a JSON-ready dict: every field, ``None`` as null, ``inner`` nested."""
    out: dict[str, Any] = event._asdict()
    for name in _TUPLE_FIELDS:
        out[name] = list(out[name])
    if event.inner is not None:
        out["inner"] = packet_to_json(event.inner)
    return out


def issue_to_json(issue: Issue, *, source: str | None = None) -> dict[str, Any]:
    """``{"line_no": N, "code": ..., "issue": ...}`` (plus ``prefix``/``source`` when known)."""
    out: dict[str, Any] = {"line_no": issue.line_no, "code": issue.code, "issue": issue.issue}
    if issue.prefix is not None:
        out["prefix"] = issue.prefix
    if source is not None:
        out["source"] = source
    return out


def parse_time(text: object, *, naive_tz: tzinfo = UTC) -> float | None:
    """Seconds since the epoch of an ISO 8601 / RFC 3339 time (an event's ``time``, a
    Kubernetes timestamp); ``None`` for anything that is not one.

    Times without an offset (RFC 3164, ``dmesg -T``) are read in ``naive_tz``: the caller
    knows the host's zone, the pure core does not.
    """
    if not isinstance(text, str) or not text:
        return None
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=naive_tz)
    return when.timestamp()


def event_epoch(event: Event, *, naive_tz: tzinfo = UTC) -> float | None:
    """Seconds since the epoch of ``event.time`` (``parse_time``); ``None`` without a time."""
    return parse_time(event.time, naive_tz=naive_tz)
