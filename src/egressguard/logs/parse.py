"""Kernel log lines → ``Event`` / ``Issue``: the two layers joined, with a fast path.

``LogParser.parse(line, line_no)`` returns an ``Event``, an ``Issue`` (the line looked like a
packet log but is not acceptable) or ``None`` (not a packet log at all, e.g. an sshd line in
/var/log/syslog, or an event filtered out by ``prefix``). Nothing raises on any input.

Speed: the reference shape (rsyslog ISO wrapper, optional dmesg stamp, Calico prefix, IPv4
TCP/UDP/ICMP-echo payload without options) is matched by one anchored regular expression that
validates everything the general path validates (dotted quads and port ranges by the pattern,
TOS/PREC/RES masks, TCP flag order and the calendar day by cached checks), and the event tuple
is built directly from its groups; after any other wrapper, the payload part of that expression
is tried on the message. Every other line, and any line the fast path has a doubt about, takes
the general two-layer path (``wrapper.unwrap`` + ``payload.parse_fields``). Property tests
check that both paths agree. bench/logs.py measures it: the validating match alone runs at
about two thirds of a naive unvalidated regex, building the 81-field typed event halves that.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any, NamedTuple

from egressguard import logprefix
from egressguard.logs import payload as _payload
from egressguard.logs.events import Event, Issue, Packet
from egressguard.logs.wrapper import ISO_TIME, Rejected, unwrap, valid_date
from egressguard.logs.wrapper import _valid_dates as _DATES

__all__ = ["LogParser", "ParseStats", "parse_line", "parse_lines", "prefix_matches"]

#: Longest line considered at all (journald JSON records are a few KiB; kernel records < 1 KiB).
MAX_LINE = 65536

_U8 = r"(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_U8N = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_IP4 = rf"({_U8N}\.{_U8N}\.{_U8N}\.{_U8N})"
# 0-65535 exactly, so the fast path needs no range check in Python
_U16 = r"([1-5]\d{4}|[1-9]\d{0,3}|0|6(?:553[0-5]|55[0-2]\d|5[0-4]\d\d|[0-4]\d{3}))"

# The common payload: Calico-charset prefix, IPv4, TCP / UDP / ICMP echo, nothing optional but
# MAC, the IP flags and MARK. Group numbers (1-based, relative) are used by LogParser._build.
_PAYLOAD = (
    r"([A-Za-z0-9%:/_. -]{0,127})"  # 1 prefix (Calico's charset, plus '.')
    r"IN=([^\s/:]{0,15}) OUT=([^\s/:]{0,15}) "  # 2 3
    r"(?:MAC=([0-9a-f:]{41}) )?"  # 4 a full Ethernet header (colons checked in _build)
    rf"SRC={_IP4} DST={_IP4} LEN=(0|[1-9]\d{{0,8}}) "  # 5 6 7 (longer LEN: slow path)
    r"TOS=0x([01][02468ACE]) PREC=0x([02468ACE]0) "  # 8 9 (the kernel's masks)
    rf"TTL={_U8} ID={_U16} ((?:CE )?(?:DF )?(?:MF )?)"  # 10 11 12
    r"PROTO=(?:"
    rf"TCP SPT={_U16} DPT={_U16} WINDOW={_U16} RES=0x([0-3][048c]) "  # 13 14 15 16
    r"((?:[A-Z]{2,3} )*)"  # 17 TCP flags (order checked in _build, once per combination)
    rf"URGP={_U16}"  # 18
    rf"|UDP SPT={_U16} DPT={_U16} LEN={_U16}"  # 19 20 21
    rf"|ICMP TYPE=([08]) CODE={_U8} ID={_U16} SEQ={_U16})"  # 22 23 24 25
    r"(?: MARK=0x([1-9a-f][0-9a-f]{0,7}))? ?\n?\Z"  # 26
)
_FAST_MESSAGE = re.compile(_PAYLOAD)
# rsyslog's high-precision format around it: time (1), date (2), host (3), uptime (4).
_FAST_LINE = re.compile(rf"({ISO_TIME}) ([^\s:]+) kernel: (?:\[ *(\d+\.\d+)\] )?" + _PAYLOAD)
_HEX2 = {f"{i:02X}": i for i in range(256)} | {f"{i:02x}": i for i in range(256)}

_IP_FLAG_WORDS: dict[str, tuple[str, ...]] = {}
for _ce in ("", "CE "):
    for _df in ("", "DF "):
        for _mf in ("", "MF "):
            _IP_FLAG_WORDS[_ce + _df + _mf] = tuple((_ce + _df + _mf).split())
_TCP_FLAG_WORDS: dict[str, tuple[str, ...]] = {}
_TCP_FLAG_ORDER = {flag: i for i, flag in enumerate(_payload.TCP_FLAGS)}
_COLONS = ":" * 13
#: MAC= text -> (destination, source, ethertype); a node has few distinct link headers.
_MACS: dict[str, tuple[str, str, int]] = {}


def _tcp_flags(words: str) -> tuple[str, ...] | None:
    """The flags of ``"ACK SYN "``, or ``None`` unless they are known and in the kernel's order;
    valid combinations (at most 2**9) are cached."""
    flags = tuple(words.split())
    ranks = [_TCP_FLAG_ORDER.get(flag, -1) for flag in flags]
    if -1 in ranks or ranks != sorted(set(ranks)):
        return None
    _TCP_FLAG_WORDS[words] = flags
    return flags


_IX = {name: i for i, name in enumerate(Event._fields)}
_TEMPLATE: list[Any] = list(Event())
_new_event = tuple.__new__
_FILTERED = object()
# journald exports a non-UTF-8 MESSAGE as an array of bytes: "MESSAGE":[101,103,...]
_BYTES_MESSAGE = re.compile(r'"MESSAGE"\s*:\s*\[')


def _candidate(text: str) -> bool:
    """Could ``text`` be a packet log? Everything else is skipped without an issue."""
    return "IN=" in text or "SRC=" in text or _payload.EBPF_RE.search(text) is not None


class ParseStats:
    """Counts of what the parser saw; every line is exactly one of ``events``, ``issues``,
    ``skipped`` (not a packet log) or ``filtered`` (excluded by ``prefix``)."""

    __slots__ = ("events", "filtered", "issues", "skipped")

    def __init__(self) -> None:
        self.events = 0
        self.issues = 0
        self.skipped = 0
        self.filtered = 0

    @property
    def lines(self) -> int:
        return self.events + self.issues + self.skipped + self.filtered

    def as_dict(self) -> dict[str, int]:
        out = {name: getattr(self, name) for name in self.__slots__}
        out["lines"] = self.lines
        return dict(sorted(out.items()))


class _PrefixInfo(NamedTuple):
    prefix: str
    keep: bool
    decoded: logprefix.PrefixInfo | None


def prefix_matches(prefix: str, wanted: str) -> bool:
    """``--prefix`` semantics: the event's prefix equals ``wanted``, starts with it followed by a
    space or colon, or (when ``wanted`` has ``%t %k %n %p``) decodes under it as a template."""
    if prefix == wanted:
        return True
    if prefix.startswith(wanted) and prefix[len(wanted) : len(wanted) + 1] in (" ", ":"):
        return True
    return logprefix.has_specifiers(wanted) and logprefix.decode(prefix, wanted) is not None


class LogParser:
    """Parse kernel log lines; keeps counts in ``stats``.

    ``prefix``: keep only events (and issues) whose prefix matches (see ``prefix_matches``).
    ``template``: the ``LogPrefix`` template used to fill ``tier``/``policy_kind``/``policy``/
    ``policy_namespace`` (default: ``prefix`` when it has specifiers, else Calico's default,
    which carries none). ``reference``: the year for RFC 3164 stamps (a file's mtime, or now;
    ``None`` leaves their ``time`` unset). ``boot_time``: epoch seconds of boot, to turn dmesg and
    kmsg uptimes into times.
    """

    def __init__(
        self,
        *,
        prefix: str | None = None,
        template: str | None = None,
        reference: datetime | None = None,
        boot_time: float | None = None,
    ) -> None:
        self.prefix = prefix
        if template is None:
            template = (
                prefix
                if prefix is not None and logprefix.has_specifiers(prefix)
                else logprefix.DEFAULT_TEMPLATE
            )
        self.template = template
        self.decodes = logprefix.has_specifiers(template)
        self.reference = reference
        self.boot_time = boot_time
        self.stats = ParseStats()
        self._prefixes: dict[str, _PrefixInfo] = {}

    # -- prefix ----------------------------------------------------------------------------

    def _prefix(self, raw: str) -> _PrefixInfo:
        info = self._prefixes.get(raw)
        if info is None:
            text = logprefix.normalise(raw)
            keep = self.prefix is None or prefix_matches(text, self.prefix)
            decoded = (
                logprefix.decode(raw, self.template, require_suffix=True) if self.decodes else None
            )
            info = _PrefixInfo(text, keep, decoded)
            if len(self._prefixes) > 4096:
                self._prefixes.clear()
            self._prefixes[raw] = info
        return info

    # -- entry points ----------------------------------------------------------------------

    def parse(self, line: str, line_no: int = 0) -> Event | Issue | None:
        """One line (a trailing newline is ignored) → ``Event``, ``Issue`` or ``None``."""
        m = _FAST_LINE.match(line)
        if m is not None:
            g = m.groups()
            if _DATES.get(g[1]) or valid_date(g[1]):
                stats = self.stats
                up = g[3]
                result = self._build(
                    g, 4, line_no, "iso8601", g[0], g[2], None,
                    float(up) if up is not None else None, None,
                )  # fmt: skip
                if result is _FILTERED:
                    stats.filtered += 1
                    return None
                if result is not None:
                    stats.events += 1
                    return result  # type: ignore[return-value]
        return self._slow(line, line_no)

    def parse_lines(self, lines: Iterable[str], *, start: int = 1) -> Iterator[Event | Issue]:
        """Events and issues of ``lines``, numbered from ``start``."""
        parse = self.parse
        for line_no, line in enumerate(lines, start):
            result = parse(line, line_no)
            if result is not None:
                yield result

    # -- fast path -------------------------------------------------------------------------

    def _build(  # noqa: PLR0917  (the hot path: positional calls are measurably cheaper)
        self,
        g: tuple[Any, ...],
        o: int,
        line_no: int,
        wrapper: str,
        time: str | None,
        host: str | None,
        priority: int | None,
        uptime: float | None,
        seq: int | None,
    ) -> Event | object | None:
        """The event from the groups ``g`` of a fast-path match (payload groups start at
        ``g[o]``); ``_FILTERED`` when ``prefix`` excludes it; ``None`` when the general path
        must decide (a prefix that shows a glued record)."""
        raw_prefix = g[o]
        info = self._prefixes.get(raw_prefix)
        if info is None:
            if "kernel:" in raw_prefix:
                return None  # a second record glued in front; the slow path says so
            info = self._prefix(raw_prefix)
        if not info.keep:
            return _FILTERED
        v = _TEMPLATE.copy()
        v[_LINE_NO] = line_no
        v[_WRAPPER] = wrapper
        v[_TIME] = time
        v[_HOST] = host
        v[_PRIORITY] = priority
        v[_UPTIME] = uptime
        v[_SEQ] = seq
        v[_PREFIX] = info.prefix
        if info.decoded:
            v[_TIER], v[_KIND], v[_POLICY], v[_NAMESPACE] = info.decoded
        v[_IN] = g[o + 1] or None
        v[_OUT] = g[o + 2] or None
        mac = g[o + 3]
        if mac is not None:
            split = _MACS.get(mac)
            if split is None:
                if mac[2::3] != _COLONS:
                    return None
                split = (mac[:17], mac[18:35], int(mac[36:38] + mac[39:41], 16))
                if len(_MACS) > 4096:
                    _MACS.clear()
                _MACS[mac] = split
            v[_MAC] = mac
            v[_MAC_DST], v[_MAC_SRC], v[_ETHERTYPE] = split
        v[_FAMILY] = 4
        v[_SRC] = g[o + 4]
        v[_DST] = g[o + 5]
        v[_LENGTH] = int(g[o + 6])
        v[_TOS] = _HEX2[g[o + 7]]
        v[_PREC] = _HEX2[g[o + 8]]
        v[_TTL] = int(g[o + 9])
        v[_IP_ID] = int(g[o + 10])
        flags = _IP_FLAG_WORDS[g[o + 11]]
        v[_IP_FLAGS] = flags
        if "MF" in flags:
            v[_FRAGMENT] = 0
        sport = g[o + 12]
        if sport is not None:  # TCP
            words = g[o + 16]
            tflags = _TCP_FLAG_WORDS.get(words)
            if tflags is None:
                tflags = _tcp_flags(words)
                if tflags is None:
                    return None
            v[_PROTO] = "TCP"
            v[_PROTO_NUM] = 6
            v[_SRC_PORT] = int(sport)
            v[_DST_PORT] = int(g[o + 13])
            v[_WINDOW] = int(g[o + 14])
            v[_TCP_RES] = _HEX2[g[o + 15]]
            v[_TCP_FLAGS] = tflags
            v[_URGP] = int(g[o + 17])
        elif g[o + 18] is not None:  # UDP
            v[_PROTO] = "UDP"
            v[_PROTO_NUM] = 17
            v[_SRC_PORT] = int(g[o + 18])
            v[_DST_PORT] = int(g[o + 19])
            v[_UDP_LEN] = int(g[o + 20])
        else:  # ICMP echo request / reply
            v[_PROTO] = "ICMP"
            v[_PROTO_NUM] = 1
            v[_ICMP_TYPE] = int(g[o + 21])
            v[_ICMP_CODE] = int(g[o + 22])
            v[_ICMP_ID] = int(g[o + 23])
            v[_ICMP_SEQ] = int(g[o + 24])
        mark = g[o + 25]
        if mark is not None:
            v[_MARK] = int(mark, 16)
        return _new_event(Event, v)

    # -- general path ----------------------------------------------------------------------

    def _slow(self, line: str, line_no: int) -> Event | Issue | None:
        stats = self.stats
        if line.endswith("\n"):
            line = line[:-1]
            if line.endswith("\r"):
                line = line[:-1]
        if not _candidate(line) and not (line[:1] == "{" and _BYTES_MESSAGE.search(line)):
            stats.skipped += 1
            return None
        prefix: str | None = None
        try:
            if len(line) > MAX_LINE:
                raise Rejected("bad-wrapper", f"line is {len(line)} characters long")
            w = unwrap(line, reference=self.reference, boot_time=self.boot_time)
            message = w.message
            if message is not line and not _candidate(message):
                stats.skipped += 1  # e.g. a journald record of another kernel message
                return None
            if "\n" in message:
                raise Rejected("glued", "the message holds a line break: two records in one")
            if len(message) > _payload.MAX_MESSAGE:
                raise Rejected(
                    "glued",
                    f"message is {len(message)} characters; one kernel record is at most "
                    f"{_payload.MAX_MESSAGE}",
                )
            fm = _FAST_MESSAGE.match(message)
            fast = (
                self._build(
                    fm.groups(), 0, line_no, w.kind, w.time, w.host, w.priority, w.uptime, w.seq
                )
                if fm is not None
                else None
            )
            if fast is _FILTERED:
                stats.filtered += 1
                return None
            if isinstance(fast, Event):
                stats.events += 1
                return fast
            raw_prefix, start = _payload.find_payload(message)
            prefix = logprefix.normalise(raw_prefix)
            fields = _payload.parse_fields(message[start:])
        except Rejected as exc:
            return self._issue(line_no, exc.code, exc.message, prefix)
        except (ValueError, OverflowError, IndexError) as exc:  # defensive: never escape
            return self._issue(line_no, "grammar", f"unparsable: {exc}", prefix)
        info = self._prefix(raw_prefix)
        if not info.keep:
            stats.filtered += 1
            return None
        inner = fields.pop("inner", None)
        if inner is not None:
            fields["inner"] = Packet(**inner)
        if info.decoded is not None:
            tier, kind, name, namespace = info.decoded
            fields.update(tier=tier, policy_kind=kind, policy=name, policy_namespace=namespace)
        stats.events += 1
        return Event(
            line_no=line_no,
            wrapper=w.kind,
            time=w.time,
            host=w.host,
            priority=w.priority,
            uptime=w.uptime,
            seq=w.seq,
            prefix=info.prefix,
            **fields,
        )

    def _issue(self, line_no: int, code: str, message: str, prefix: str | None) -> Issue | None:
        if (
            prefix is not None
            and self.prefix is not None
            and not prefix_matches(prefix, self.prefix)
        ):
            self.stats.filtered += 1
            return None
        self.stats.issues += 1
        return Issue(line_no, code, message, prefix)


_LINE_NO, _WRAPPER, _TIME, _HOST = _IX["line_no"], _IX["wrapper"], _IX["time"], _IX["host"]
_PRIORITY, _UPTIME, _SEQ, _PREFIX = _IX["priority"], _IX["uptime"], _IX["seq"], _IX["prefix"]
_TIER, _KIND, _POLICY = _IX["tier"], _IX["policy_kind"], _IX["policy"]
_NAMESPACE, _IN, _OUT, _MAC = _IX["policy_namespace"], _IX["in_iface"], _IX["out_iface"], _IX["mac"]
_MAC_DST, _MAC_SRC, _ETHERTYPE = _IX["mac_dst"], _IX["mac_src"], _IX["ethertype"]
_FAMILY, _SRC, _DST, _LENGTH = _IX["family"], _IX["src"], _IX["dst"], _IX["length"]
_TOS, _PREC, _TTL, _IP_ID = _IX["tos"], _IX["prec"], _IX["ttl"], _IX["ip_id"]
_IP_FLAGS, _FRAGMENT, _PROTO = _IX["ip_flags"], _IX["fragment"], _IX["proto"]
_PROTO_NUM, _SRC_PORT, _DST_PORT = _IX["proto_num"], _IX["src_port"], _IX["dst_port"]
_WINDOW, _TCP_RES, _TCP_FLAGS, _URGP = _IX["window"], _IX["tcp_res"], _IX["tcp_flags"], _IX["urgp"]
_UDP_LEN, _ICMP_TYPE, _ICMP_CODE = _IX["udp_len"], _IX["icmp_type"], _IX["icmp_code"]
_ICMP_ID, _ICMP_SEQ, _MARK = _IX["icmp_id"], _IX["icmp_seq"], _IX["mark"]


def parse_line(line: str, line_no: int = 1, **options: Any) -> Event | Issue | None:
    """One line with a throw-away ``LogParser(**options)``."""
    return LogParser(**options).parse(line, line_no)


def parse_lines(lines: Iterable[str], **options: Any) -> Iterator[Event | Issue]:
    """Events and issues of ``lines`` (numbered from 1) with ``LogParser(**options)``."""
    return LogParser(**options).parse_lines(lines)
