r"""Kernel log lines → ``Event`` / ``Issue``: the two layers joined, with a fast path.

``LogParser.parse(line, line_no)`` returns an ``Event``, an ``Issue`` (the line looked like a
packet log but is not acceptable) or ``None`` (not a packet log at all, e.g. an sshd line in
/var/log/syslog, or an event filtered out by ``prefix``). Nothing raises on any input.

Speed: the reference shape (rsyslog ISO wrapper, optional dmesg stamp, Calico prefix, IPv4
TCP/UDP/ICMP-echo payload without options) is cut into fields by one anchored regular expression
built from the cheapest constructs the regex engine has (literals, ``[0-9]``, possessive runs of
``[^ ]``; see ``_PAYLOAD``). Each field is then validated exactly as the general path would,
mostly by one dict lookup: the texts that repeat on a node (host, prefix + interfaces + MAC,
LEN/TOS/PREC/TTL, the TCP tail, ICMP type/code, addresses) are checked once with exact
expressions and remembered (bounded caches), numbers are range-checked where they are
converted. The event is one tuple display of the per-line values and the cached runs
(``events.Event`` stores each run of repeated fields as one nested tuple). ``parse_block``
inlines that for all three protocols over a list of lines; ``parse_lines`` feeds it blocks of
``BLOCK`` lines and chains the resulting lists; ``parse`` goes through a small general builder;
after any other wrapper the payload part of the expression is tried on the message. Every other
line, and any line the fast path has a doubt about, takes the general two-layer path
(``wrapper.unwrap`` + ``payload.parse_fields``); tests and properties check that both paths
agree. ``bench/logs.py`` measures it: of ~2.9 µs per reference line, the match with its groups
takes ~1.3 µs (faster than a naive unvalidated regex), the float of the uptime, the two ints,
building the event and the eight cache lookups ~0.2-0.3 µs each.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from itertools import chain, islice
from typing import Any, NamedTuple, TypeVar

from egressguard import logprefix
from egressguard.logs import payload as _payload
from egressguard.logs.events import Event, Issue, Packet
from egressguard.logs.wrapper import ISO_TIME, Rejected, unwrap, valid_date
from egressguard.logs.wrapper import _valid_dates as _DATES

__all__ = ["LogParser", "ParseStats", "parse_line", "parse_lines", "prefix_matches"]

#: Longest line considered at all (journald JSON records are a few KiB; kernel records < 1 KiB).
MAX_LINE = 65536
#: Lines ``parse_lines`` takes at a time (small enough that a block's events stay in cache).
BLOCK = 64

# A number as the kernel prints it (%u: no sign, no leading zero), at most five digits; the
# range (0-65535) is checked in Python, where the int is made anyway.
_N16 = r"([1-9][0-9]{0,4}+|0)"

# The common payload: IPv4, TCP / UDP / ICMP echo, nothing optional but MAC, the IP flags and
# MARK. The expression only finds the fields, with the cheapest constructs the regex engine
# has: literals, [0-9] and possessive runs of [^ ] or [^=] (nothing to backtrack into: the
# character they stop at follows). A negated single character is a plain comparison per
# character in the engine's inner loop; \S and \d are Unicode category lookups (in a str
# pattern \d is any Unicode decimal digit, and the kernel only prints ASCII): they made the
# expression half again as slow. Alternations per octet cost more than the rest of the line.
# A field may therefore hold tabs or other whitespace; every field is checked exactly below.
# Everything a group holds is then validated exactly in Python, through caches of texts
# already seen valid (a node logs few distinct link headers, TOS/TTL combinations, TCP tails
# and destinations), so each check is one dict lookup:
#   host                     -> _HOSTS ([^\s:]+ as the wrapper reads it)
#   1 prefix + IN/OUT/MAC    -> LogParser._links (prefix charset and length, interface names,
#                               MAC shape); the prefix is the text before the first '='
#   2 3 SRC DST              -> _V4 (dotted quads, 0-255 without leading zeros)
#   4 LEN TOS PREC TTL       -> _L3 (LEN as the general path reads it, the kernel's masks, u8)
#   5 ID, 7 SPT, 9-11, 13 14 -> int() and <= 65535 (the pattern excludes leading zeros)
#   6 IP flags               -> _IP_TCP/_IP_UDP/_IP_ICMP (CE DF MF in this order)
#   8 TCP tail               -> _TCP_TAILS (DPT WINDOW RES flags URGP: ranges, mask, order;
#                               the pattern reads the flags up to the next '=')
#   12 ICMP TYPE CODE        -> _ICMP_TC
#   15 MARK                  -> %x without leading zeros, by the pattern
_PAYLOAD = (
    r"([^=]{0,127}IN=[^ ]*+ OUT=[^ ]*+ (?:MAC=[^ ]*+ )?)"  # 1
    r"SRC=([^ ]++) DST=([^ ]++) "  # 2 3
    r"LEN=([0-9]++ TOS=0x[^ ][^ ] PREC=0x[^ ][^ ] TTL=[0-9]++) "  # 4
    rf"ID={_N16} ([CDFME ]*+)PROTO=(?:"  # 5 6
    rf"TCP SPT={_N16} (DPT=[0-9]++ WINDOW=[0-9]++ RES=0x[^ ][^ ] [^=]*+=[0-9]++)"  # 7 8
    rf"|UDP SPT={_N16} DPT={_N16} LEN={_N16}"  # 9 10 11
    rf"|ICMP (TYPE=[08] CODE=[0-9]++) ID={_N16} SEQ={_N16})"  # 12 13 14
    r"(?: MARK=0x([1-9a-f][0-9a-f]{0,7}))? ?\n?\Z"  # 15
)
_FAST_MESSAGE = re.compile(_PAYLOAD)
# rsyslog's high-precision format around it: time (1), date (2), host (3), uptime (4); the
# wrapper's own expression for the time.
_ISO = ISO_TIME.replace("(?P<date>", "(")
# The uptime's length is bounded (as the host's is, by _host_ok) so that no line the fast path
# takes is longer than MAX_LINE: every other field is bounded by its check.
_FAST_LINE = re.compile(
    rf"({_ISO}) ([^ ]++) kernel: (?:\[ {{0,20}}+([0-9]{{1,20}}+\.[0-9]{{1,20}}+)\] )?" + _PAYLOAD
)

# The exact forms, applied once per distinct text (cache misses).
_U8 = f"({_payload.OCTET})"
_U16 = r"([1-9][0-9]{0,4}|0)"
_LINK_RE = re.compile(
    r"([A-Za-z0-9%:/_. -]{0,127})IN=([^\s/:]{0,15}) OUT=([^\s/:]{0,15}) "
    r"(?:MAC=([0-9a-f]{2}(?::[0-9a-f]{2}){13}) )?\Z"
)
_L3_RE = re.compile(
    rf"(0|[1-9][0-9]{{0,8}}) TOS=0x([01][02468ACE]) PREC=0x([02468ACE]0) TTL={_U8}\Z"
)
_TCP_TAIL_RE = re.compile(
    rf"DPT={_U16} WINDOW={_U16} RES=0x([0-3][048c]) ((?:[A-Z]{{2,3}} )*)URGP={_U16}\Z"
)
_ICMP_TC_RE = re.compile(rf"TYPE=([08]) CODE={_U8}\Z")
_HEX2 = {f"{i:02X}": i for i in range(256)} | {f"{i:02x}": i for i in range(256)}
_TCP_FLAG_ORDER = {flag: i for i, flag in enumerate(_payload.TCP_FLAGS)}
#: Entries each cache may hold before it starts over (a node has far fewer distinct texts).
_CACHE_LIMIT = 4096
_V4_LIMIT = 1 << 16

#: Dotted quads seen valid.
_V4: dict[str, bool] = {}
#: Longest syslog host name the fast path takes (RFC 5424's limit; the general path decides
#: about longer ones).
MAX_HOST = 255
#: Syslog host names seen, and whether the fast path takes them ([^\s:]+, <= MAX_HOST).
_HOSTS: dict[str, bool] = {}
_HOST_RE = re.compile(r"[^\s:]+\Z")
#: "60 TOS=0x00 PREC=0x00 TTL=63" -> (length, tos, prec, ttl)
_L3: dict[str, tuple[int, int, int, int] | None] = {}
#: "DPT=443 WINDOW=64240 RES=0x00 SYN URGP=0" -> (dst_port, the TCP run tcp_seq .. tcp_options)
_TCP_TAILS: dict[str, tuple[int, tuple[Any, ...]] | None] = {}
#: "TYPE=8 CODE=0" -> (type, code)
_ICMP_TC: dict[str, tuple[int, int] | None] = {}


_V = TypeVar("_V")


def _remember(cache: dict[str, _V], key: str, value: _V, limit: int = _CACHE_LIMIT) -> _V:
    """``cache[key] = value``, starting the cache over once it holds ``limit`` entries."""
    if len(cache) >= limit:
        cache.clear()
    cache[key] = value
    return value


def _v4_ok(text: str) -> bool:
    """Is ``text`` a dotted quad (remembered when it is)?"""
    return _payload.V4_RE.match(text) is not None and _remember(_V4, text, True, _V4_LIMIT)


def _host_ok(text: str) -> bool:
    """Is ``text`` a syslog host name as the wrapper reads one (remembered)?"""
    ok = len(text) <= MAX_HOST and _HOST_RE.match(text) is not None
    return _remember(_HOSTS, text, ok)


def _l3(text: str) -> tuple[int, int, int, int] | None:
    m = _L3_RE.match(text)
    value = None
    if m is not None:
        length, tos, prec, ttl = m.groups()
        value = (int(length), _HEX2[tos], _HEX2[prec], int(ttl))
    return _remember(_L3, text, value)


def _tcp_flags(words: str) -> tuple[str, ...] | None:
    """The flags of ``"ACK SYN "``, or ``None`` unless they are known and in the kernel's order."""
    flags = tuple(words.split())
    ranks = [_TCP_FLAG_ORDER.get(flag, -1) for flag in flags]
    if -1 in ranks or ranks != sorted(set(ranks)):
        return None
    return flags


def _tcp_tail(text: str) -> tuple[int, tuple[Any, ...]] | None:
    m = _TCP_TAIL_RE.match(text)
    value = None
    if m is not None:
        dpt, window, res, words, urgp = m.groups()
        numbers = (int(dpt), int(window), int(urgp))
        flags = _tcp_flags(words)
        if flags is not None and max(numbers) <= 0xFFFF:
            value = (numbers[0], (None, None, numbers[1], _HEX2[res], flags, numbers[2], None))
    return _remember(_TCP_TAILS, text, value)


def _icmp_tc(text: str) -> tuple[int, int] | None:
    m = _ICMP_TC_RE.match(text)
    value = (int(m.group(1)), int(m.group(2))) if m is not None else None
    return _remember(_ICMP_TC, text, value)


_new_event = tuple.__new__
_FILTERED = object()

# The fast path writes an event's 23 slots itself, in the order of events.Event's layout:
#   line_no wrapper time host priority uptime seq, (prefix .. family), src, dst,
#   (length tos prec ttl), ip_id, (tc .. proto_num), src_port, dst_port,
#   (tcp_seq .. tcp_options), udp_len, icmp_type, icmp_code, icmp_id, icmp_seq,
#   (icmp_parameter .. mark), (set .. repeat_count)
# where each parenthesised run is one nested tuple, taken as it is from a cache or a constant.
# (tests/unit/logs/test_parse_fastpath.py compares every such event with the general path's.)
_DEFAULT = Event()
#: The default runs: TCP header (not TCP), the rare tail (ICMP errors, ARP, UID/GID, MARK) and
#: the enrichment; where MARK sits in the rare tail.
_NO_TCP = _DEFAULT[Event._where["tcp_seq"][0]]
_REST = _DEFAULT[Event._where["mark"][0]]
_ENRICHMENT = _DEFAULT[Event._where["set"][0]]
_MARK = Event._where["mark"][1]


def _ip_chunks(proto: str, number: int) -> dict[str, tuple[Any, ...]]:
    """IP flag words ("DF ") -> Event fields tc .. proto_num for ``proto``; only the kernel's
    orders are keys (``CE DF MF``), so anything else misses and takes the general path."""
    out: dict[str, tuple[Any, ...]] = {}
    for ce in ("", "CE "):
        for df in ("", "DF "):
            for mf in ("", "MF "):
                words = ce + df + mf
                flags = tuple(words.split())
                fragment = 0 if mf else None
                out[words] = (None, None, None, flags, fragment, None, None, None, proto, number)
    return out


_IP_TCP = _ip_chunks("TCP", 6)
_IP_UDP = _ip_chunks("UDP", 17)
_IP_ICMP = _ip_chunks("ICMP", 1)
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
        self._links: dict[str, tuple[Any, ...] | None] = {}

    # -- prefix ----------------------------------------------------------------------------

    def _prefix(self, raw: str) -> _PrefixInfo:
        info = self._prefixes.get(raw)
        if info is None:
            text = logprefix.normalise(raw)
            keep = self.prefix is None or prefix_matches(text, self.prefix)
            decoded = (
                logprefix.decode(raw, self.template, require_suffix=True) if self.decodes else None
            )
            info = _remember(self._prefixes, raw, _PrefixInfo(text, keep, decoded))
        return info

    def _link(self, text: str) -> tuple[Any, ...] | None:
        """Event fields prefix .. family for the fast path's first group (prefix, IN, OUT,
        MAC), or ``None`` when the general path must decide; remembered per text. A filtered
        prefix gives ``()``."""
        m = _LINK_RE.match(text)
        value: tuple[Any, ...] | None = None
        if m is not None and "kernel:" not in text:  # else a second record glued in front
            raw_prefix, in_iface, out_iface, mac = m.groups()
            info = self._prefix(raw_prefix)
            if not info.keep:
                value = ()
            else:
                decoded = info.decoded or (None, None, None, None)
                link: tuple[Any, ...]
                if mac is not None:
                    link = (mac, mac[:17], mac[18:35], int(mac[36:38] + mac[39:41], 16))
                else:
                    link = (None, None, None, None)
                value = (
                    info.prefix,
                    *decoded,
                    in_iface or None,
                    out_iface or None,
                    None,
                    None,
                    *link,
                    None,
                    None,
                    None,
                    None,
                    4,
                )
        return _remember(self._links, text, value)

    # -- entry points ----------------------------------------------------------------------

    def parse(self, line: str, line_no: int = 0) -> Event | Issue | None:
        """One line (a trailing newline is ignored) → ``Event``, ``Issue`` or ``None``.

        ``parse_lines`` gives the same results for many lines, faster."""
        m = _FAST_LINE.match(line)
        if m is None:
            return self._slow(line, line_no)
        return self._matched(m, line, line_no)

    def _matched(self, m: re.Match[str], line: str, line_no: int) -> Event | Issue | None:
        """UDP, ICMP, MARK, a first sight, or a doubt: the fast line's groups through the
        general builder, and the general path when that cannot decide."""
        g = m.groups()
        up = g[3]
        host = g[2]
        if (_HOSTS.get(host) or (host not in _HOSTS and _host_ok(host))) and (
            _DATES.get(g[1]) or valid_date(g[1])
        ):
            result = self._build(
                g, 4, (line_no, "iso8601", g[0], g[2], None, up and float(up), None)
            )
            if result is _FILTERED:
                self.stats.filtered += 1
                return None
            if result is not None:
                self.stats.events += 1
                return result  # type: ignore[return-value]
        return self._slow(line, line_no)

    def parse_lines(self, lines: Iterable[str], *, start: int = 1) -> Iterator[Event | Issue]:
        """Events and issues of ``lines``, numbered from ``start``.

        The same results as ``parse`` line by line, faster. Lines are taken in blocks of
        ``BLOCK`` (so ``stats`` and the reading run up to a block ahead of the consumer);
        ``parse_block`` is the work on one block."""
        return chain.from_iterable(self._blocks(iter(lines), start))

    def _blocks(self, lines: Iterator[str], start: int) -> Iterator[list[Event | Issue]]:
        block = list(islice(lines, BLOCK))
        while block:
            yield self.parse_block(block, start)
            start += len(block)
            block = list(islice(lines, BLOCK))

    def parse_block(self, lines: Sequence[str], start: int = 1) -> list[Event | Issue]:
        """Events and issues of ``lines`` (numbered from ``start``) as one list.

        The reference shape (TCP, UDP, ICMP echo; see ``_PAYLOAD``) is assembled inline from
        texts already validated, with every lookup bound to a local, and the event's runs taken
        from the caches as they are. A line seen for the first time, or anything else in it,
        goes through ``parse``'s own steps. One list per block instead of a generator step
        per line: the consumer iterates it in C (``parse_lines`` chains the blocks)."""
        match = _FAST_LINE.match
        dates, hosts, v4, l3s, tails, icmp_tcs = _DATES, _HOSTS, _V4, _L3, _TCP_TAILS, _ICMP_TC
        ip_tcp, ip_udp, ip_icmp = _IP_TCP, _IP_UDP, _IP_ICMP
        no_tcp, rest, enrichment = _NO_TCP, _REST, _ENRICHMENT
        links = self._links
        matched, slow = self._matched, self._slow
        new, event, to_float = _new_event, Event, float
        out: list[Event | Issue] = []
        append = out.append
        counted = 0  # results of matched/slow, which count themselves in stats
        for line_no, line in enumerate(lines, start):
            m = match(line)
            if m is None:
                result = slow(line, line_no)
                if result is not None:
                    append(result)
                    counted += 1
                continue
            (time, date, host, up, link, src, dst, l3, ip_id, ipf, spt, tail,
             usp, udp, ulen, icmp, iid, iseq, mark) = m.groups()  # fmt: skip
            chunk = links.get(link)
            ip = l3s.get(l3)
            if (
                chunk
                and ip
                and mark is None
                and src in v4
                and dst in v4
                and dates.get(date)
                and hosts.get(host)
            ):
                ident = int(ip_id)
                if spt is not None:
                    sport = int(spt)
                    tcp = tails.get(tail)
                    ipx = ip_tcp.get(ipf)
                    # a | b <= 0xFFFF: both fit in 16 bits (the pattern excludes signs)
                    if tcp and ipx and ident | sport <= 0xFFFF:
                        dport, header = tcp
                        append(new(event, (
                            line_no, "iso8601", time, host, None, up and to_float(up), None,
                            chunk, src, dst, ip, ident, ipx, sport, dport, header,
                            None, None, None, None, None, rest, enrichment,
                        )))  # fmt: skip
                        continue
                elif usp is not None:
                    sport, dport, length = int(usp), int(udp), int(ulen)
                    ipx = ip_udp.get(ipf)
                    if ipx and ident | sport | dport | length <= 0xFFFF:
                        append(new(event, (
                            line_no, "iso8601", time, host, None, up and to_float(up), None,
                            chunk, src, dst, ip, ident, ipx, sport, dport, no_tcp,
                            length, None, None, None, None, rest, enrichment,
                        )))  # fmt: skip
                        continue
                else:
                    tc = icmp_tcs.get(icmp)
                    icmp_id, icmp_seq = int(iid), int(iseq)
                    ipx = ip_icmp.get(ipf)
                    if tc and ipx and ident | icmp_id | icmp_seq <= 0xFFFF:
                        icmp_type, icmp_code = tc
                        append(new(event, (
                            line_no, "iso8601", time, host, None, up and to_float(up), None,
                            chunk, src, dst, ip, ident, ipx, None, None, no_tcp,
                            None, icmp_type, icmp_code, icmp_id, icmp_seq, rest, enrichment,
                        )))  # fmt: skip
                        continue
            result = matched(m, line, line_no)
            if result is not None:
                append(result)
                counted += 1
        self.stats.events += len(out) - counted
        return out

    # -- fast path -------------------------------------------------------------------------

    def _build(self, g: tuple[Any, ...], o: int, head: tuple[Any, ...]) -> Event | object | None:
        """The event from the groups ``g`` of a fast-path match (payload groups start at
        ``g[o]``) after the wrapper fields ``head`` (line_no .. seq); ``_FILTERED`` when
        ``prefix`` excludes it; ``None`` when the general path must decide."""
        link = g[o]
        chunk = self._links.get(link)
        if chunk is None and link not in self._links:
            chunk = self._link(link)
        if chunk is None:
            return None
        src, dst = g[o + 1], g[o + 2]
        if not ((src in _V4 or _v4_ok(src)) and (dst in _V4 or _v4_ok(dst))):
            return None
        ip = _L3.get(g[o + 3]) or _l3(g[o + 3])
        ident = int(g[o + 4])
        if ip is None or ident > 0xFFFF:
            return None
        ipf = g[o + 5]
        transport: tuple[Any, ...]  # src_port .. icmp_seq
        if g[o + 6] is not None:  # TCP
            sport = int(g[o + 6])
            tcp = _TCP_TAILS.get(g[o + 7]) or _tcp_tail(g[o + 7])
            ipx = _IP_TCP.get(ipf)
            if tcp is None or ipx is None or sport > 0xFFFF:
                return None
            transport = (sport, tcp[0], tcp[1], None, None, None, None, None)
        elif g[o + 8] is not None:  # UDP
            sport, dport, ulen = int(g[o + 8]), int(g[o + 9]), int(g[o + 10])
            ipx = _IP_UDP.get(ipf)
            if ipx is None or max(sport, dport, ulen) > 0xFFFF:
                return None
            transport = (sport, dport, _NO_TCP, ulen, None, None, None, None)
        else:  # ICMP echo request / reply
            tc = _ICMP_TC.get(g[o + 11]) or _icmp_tc(g[o + 11])
            icmp_id, icmp_seq = int(g[o + 12]), int(g[o + 13])
            ipx = _IP_ICMP.get(ipf)
            if tc is None or ipx is None or max(icmp_id, icmp_seq) > 0xFFFF:
                return None
            transport = (None, None, _NO_TCP, None, *tc, icmp_id, icmp_seq)
        if not chunk:  # only now: the general path reports a bad field before the prefix
            return _FILTERED
        mark = g[o + 14]
        rest = _REST if mark is None else (*_REST[:_MARK], int(mark, 16), *_REST[_MARK + 1 :])
        return _new_event(
            Event, (*head, chunk, src, dst, ip, ident, ipx, *transport, rest, _ENRICHMENT)
        )

    # -- general path ----------------------------------------------------------------------

    def _slow(self, line: str, line_no: int, *, fast: bool = True) -> Event | Issue | None:
        """The other wrappers; with ``fast`` the payload is first tried with the fast path's
        expression, without it the field-by-field parser alone decides (tests compare both)."""
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
            fm = _FAST_MESSAGE.match(message) if fast else None
            built = self._build(fm.groups(), 0, (line_no, *w[:-1])) if fm is not None else None
            if built is _FILTERED:
                stats.filtered += 1
                return None
            if isinstance(built, Event):
                stats.events += 1
                return built
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


def parse_line(line: str, line_no: int = 1, **options: Any) -> Event | Issue | None:
    """One line with a throw-away ``LogParser(**options)``."""
    return LogParser(**options).parse(line, line_no)


def parse_lines(lines: Iterable[str], **options: Any) -> Iterator[Event | Issue]:
    """Events and issues of ``lines`` (numbered from 1) with ``LogParser(**options)``."""
    return LogParser(**options).parse_lines(lines)
