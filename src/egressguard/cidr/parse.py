"""Parse address lists (one entry per line) into an ``AddressSet``, fast, with located issues.

Accepted, one per line: an address (``192.0.2.1``, ``2001:db8::1``), a CIDR (``192.0.2.0/24``,
IPv4 netmask form ``192.0.2.0/255.255.255.0``), or a range ``A - B`` / ``A-B`` whose ends are
addresses or CIDRs (the range runs from the first address of A to the last of B, as in
``iprange``). ``#`` and ``;`` start comments, also after an entry (``1.10.16.0/20 ; SBL256894``);
blank lines, surrounding spaces/tabs, CRLF line ends and a UTF-8 BOM are ignored.

What is *not* accepted becomes a :class:`ParseIssue` (line number, text, reason) and the line is
skipped: hostnames (never resolved), leading zeros in IPv4 octets (octal to ``inet_aton``, see
:mod:`egressguard.cidr.addresses`), octets above 255, prefixes beyond /32 or /128, reversed
ranges (``iprange`` silently swaps them; we report them), ranges mixing families, zone indexes,
and anything else. With ``strict=True`` the first issue raises :class:`CidrError` instead.

Accepted with a *note* (``ParseResult.notes``, never fatal): host bits in a CIDR
(``192.0.2.7/24`` is read as ``192.0.2.0/24``, as ``iprange`` and ``ip_network(strict=False)``
do) and IPv4-mapped IPv6 addresses (kept as IPv6, which is probably not what a blocklist meant).

``/0`` is accepted: refusing to block the whole internet is the build's guard rail, not the
parser's.

How it is fast: the whole buffer is parsed with NumPy. Lines that are exactly ``D.D.D.D`` or
``D.D.D.D/D`` (the bulk of every real list) and plain hex/colon IPv6 lines are recognised,
validated and converted with array arithmetic; every other line (comments after entries, ranges,
IPv4 tails, errors) goes through :func:`parse_line`, the reference grammar, which keeps exact
line numbers. A property test checks that both paths agree on arbitrary input.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from egressguard.cidr import _engine as eng
from egressguard.cidr.addresses import (
    MAX_PREFIX,
    CidrError,
    Family,
    format_address,
    parse_address,
    parse_cidr,
)
from egressguard.cidr.sets import AddressSet, CidrSet
from egressguard.problems import Problem

__all__ = ["ParseIssue", "ParseResult", "parse", "parse_line", "parse_many"]

_WS: Final = " \t\r\n\v\f"
_MAX_TEXT: Final = 200
_CHUNK: Final = 1 << 15  # lines per slice of the IPv4 fast path
_PAD: Final = b"\x00\x00\x00\x00"
_BOM: Final = b"\xef\xbb\xbf"
_MAPPED_FIRST: Final = 0xFFFF << 32  # ::ffff:0:0/96
_MAPPED_LAST: Final = _MAPPED_FIRST | 0xFFFFFFFF
_ADDRESS_CHARS: Final = frozenset("0123456789abcdefABCDEF.:/-% \t\r\n\v\f")
_HOSTNAME_CHARS: Final = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._"
)

_HEXVAL = np.full(256, 16, dtype=np.uint8)
for _i, _c in enumerate(b"0123456789abcdef"):
    _HEXVAL[_c] = _i
for _i, _c in enumerate(b"ABCDEF"):
    _HEXVAL[_c] = 10 + _i
_HEXVAL.setflags(write=False)

_NL, _CR, _HASH, _SEMI, _DOT, _SLASH, _COLON, _SPACE, _TAB = 10, 13, 35, 59, 46, 47, 58, 32, 9


@dataclass(frozen=True, slots=True)
class ParseIssue:
    """One line that was rejected (an issue) or accepted with a remark (a note).

    ``line`` is 1-based within ``source`` (a file name, URL or ``None``); ``text`` is the line as
    found (cut at 200 characters); ``reason`` says what is wrong and, where useful, what to do.
    """

    line: int
    text: str
    reason: str
    source: str | None = None

    def where(self) -> str:
        return f"{self.source}:{self.line}" if self.source else f"line {self.line}"

    def __str__(self) -> str:
        return f"{self.where()}: {self.reason}: {self.text!r}"

    def to_problem(self) -> Problem:
        return Problem(
            path="", message=f"{self.reason}: {self.text!r}", file=self.source, line=self.line
        )


@dataclass(frozen=True, slots=True)
class ParseResult:
    """What a parse produced: the addresses, the rejected lines and the notes.

    ``entries`` counts lines that contributed addresses; ``lines`` counts all lines read.
    """

    addresses: AddressSet
    issues: tuple[ParseIssue, ...] = ()
    notes: tuple[ParseIssue, ...] = ()
    entries: int = 0
    lines: int = 0
    sources: tuple[str | None, ...] = field(default=())

    @property
    def v4(self) -> CidrSet:
        return self.addresses.v4

    @property
    def v6(self) -> CidrSet:
        return self.addresses.v6

    @property
    def ok(self) -> bool:
        return not self.issues


# ----------------------------------------------------------------------------------------------
# The reference grammar, one line at a time


def _endpoint(token: str) -> tuple[Family, int, int, str | None]:
    """An address or CIDR → (family, first, last, note)."""
    if not token:
        raise CidrError("empty range end")
    addr, slash, _plen = token.partition("/")
    family, value = parse_address(addr)
    width = MAX_PREFIX[family]
    if slash:
        cidr = parse_cidr(token)
        first, last, prefixlen = cidr.first, cidr.last, cidr.prefixlen
    else:
        first = last = value
        prefixlen = width
    note = None
    if first != value:
        note = f"host bits set in {token}: read as {format_address(family, first)}/{prefixlen}"
    return family, first, last, note


def _mapped_note(family: Family, first: int, last: int) -> str | None:
    if family == 6 and first >= _MAPPED_FIRST and last <= _MAPPED_LAST:
        v4 = format_address(4, first & 0xFFFFFFFF)
        if last != first:
            v4 = f"{v4}-{format_address(4, last & 0xFFFFFFFF)}"
        return f"IPv4-mapped IPv6 address kept as IPv6 (to block IPv4, write {v4})"
    return None


def parse_line(text: str) -> tuple[Family, int, int, str | None] | None:
    """Parse one line: ``None`` for a blank or comment line, else ``(family, first, last, note)``.

    ``first``/``last`` are inclusive ints; ``note`` is a remark for an accepted line (host bits,
    IPv4-mapped) or ``None``. Raises :class:`CidrError` with the reason for a bad line.
    """
    cut = len(text)
    for mark in "#;":
        at = text.find(mark)
        if 0 <= at < cut:
            cut = at
    body = text[:cut].strip(_WS)
    if not body:
        return None
    if ":" not in body and not set(body) - _HOSTNAME_CHARS and any(c.isalpha() for c in body):
        raise CidrError("not an IP address (hostnames are not resolved)")
    if not set(body) <= _ADDRESS_CHARS and "%" not in body:  # '%': a zone, explained below
        raise CidrError("not an IP address, CIDR or range")
    if "-" in body:
        left, _, right = body.partition("-")
        if "-" in right:
            raise CidrError("more than one '-' in a range")
        fa, first, _, note_a = _endpoint(left.strip(_WS))
        fb, _, last, note_b = _endpoint(right.strip(_WS))
        if fa != fb:
            raise CidrError("range ends are of different address families")
        if first > last:
            raise CidrError(
                "reversed range (first address above the last)",
            )
        note = note_a or note_b or _mapped_note(fa, first, last)
        return fa, first, last, note
    if any(c in _WS for c in body):
        raise CidrError("unexpected text after the entry (comments start with # or ;)")
    family, first, last, note = _endpoint(body)
    return family, first, last, note or _mapped_note(family, first, last)


# ----------------------------------------------------------------------------------------------
# Bulk parsing


@dataclass(slots=True)
class _Collected:
    v4_first: list[npt.NDArray[np.int64]] = field(default_factory=list)
    v4_last: list[npt.NDArray[np.int64]] = field(default_factory=list)
    v6_first: list[npt.NDArray[np.uint64]] = field(default_factory=list)
    v6_last: list[npt.NDArray[np.uint64]] = field(default_factory=list)
    issues: list[tuple[int, str]] = field(default_factory=list)  # (line index, reason)
    notes: list[tuple[int, str]] = field(default_factory=list)
    entries: int = 0


def _runs(mask: npt.NDArray[np.bool_]) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Start and end (exclusive) offsets of the maximal runs of True. The buffer ends with
    padding, so every run also ends."""
    edges = np.flatnonzero(mask[1:] != mask[:-1]) + 1
    if mask[0]:
        edges = np.concatenate((np.zeros(1, dtype=edges.dtype), edges))
    return edges[0::2], edges[1::2]


def _fast_v4(
    a: npt.NDArray[np.uint8],
    starts: npt.NDArray[np.int64],
    ends: npt.NDArray[np.int64],
    *,
    events: tuple[npt.NDArray[np.integer[Any]], npt.NDArray[np.int64], int],
    pending: npt.NDArray[np.bool_],
    out: _Collected,
    line_base: int = 0,
) -> None:
    """Lines that are exactly D.D.D.D or D.D.D.D/D; marks the ones it took as done.

    ``events`` are the offsets of every '.', '/' and newline in the buffer, the index of each
    of these lines' newline among them, and the index of the first event of the first line: a
    line's separators are the events just before its newline, so cutting lines into fields needs
    no search. The lines may be a slice of the buffer's lines starting at ``line_base``.

    A line qualifies when it has 3 dots (and maybe one '/' last), every field is 1-3 (prefix
    1-2) digits without a leading zero, octets <= 255 and the prefix <= 32. Anything else stays
    pending for the reference grammar.
    """
    ev, nl_ev, first_event = events
    length = ends - starts
    li = np.flatnonzero(pending & (length >= 7) & (length <= 18))
    if li.size == 0:
        return
    s = starts[li]
    e = ends[li]
    k0 = np.empty(li.size, dtype=np.int64)  # index in ev of the line's first separator
    k0[:] = nl_ev[li - 1] + 1
    if li[0] == 0:
        k0[0] = first_event
    ns = nl_ev[li] - k0  # separators in the line
    keep = (ns == 3) | (ns == 4)
    if not keep.all():
        li, s, e, k0, ns = li[keep], s[keep], e[keep], k0[keep], ns[keep]
    n = li.size
    if n == 0:
        return
    # field-major (rows are fields) so that every per-field operation is contiguous; offsets in
    # the narrowest type that holds them (less memory to fault in and to stream through)
    pos = ev.dtype
    sep = ev[k0 + np.arange(4)[:, None]]  # (4, n); a 3-dot line's 4th is its newline
    has_p = ns == 4
    fs = np.empty((5, n), dtype=pos)  # field starts
    fe = np.empty((5, n), dtype=pos)  # field ends (exclusive)
    fs[0] = s
    np.add(sep, 1, out=fs[1:])
    fe[:3] = sep[:3]
    fe[3] = np.where(has_p, sep[3], e)
    fe[4] = e
    fs[4] = np.where(has_p, fs[4], e - 1)  # no prefix: a harmless 1-char field
    flen = (fe - fs).astype(np.int16)
    del fe
    d0 = a[fs].astype(np.int16)
    fs += 1
    d1 = a[fs].astype(np.int16)
    fs += 1
    d2 = a[fs].astype(np.int16)
    del fs
    d0 -= 48
    d1 -= 48
    d2 -= 48
    good = (d0 >= 0) & (d0 < 10) & ((flen < 2) | ((d1 >= 0) & (d1 < 10)))
    good &= (flen < 3) | ((d2 >= 0) & (d2 < 10))
    good &= (flen >= 1) & (flen <= 3) & ((flen == 1) | (d0 != 0))
    val = np.where(flen == 1, d0, np.where(flen == 2, d0 * 10 + d1, d0 * 100 + d1 * 10 + d2))
    good[:4] &= val[:4] <= 255
    dots = a[sep[:3]] == _DOT
    ok = good[0] & good[1] & good[2] & good[3] & dots[0] & dots[1] & dots[2]
    p_ok = (a[sep[3]] == _SLASH) & good[4] & (flen[4] <= 2) & (val[4] <= 32)
    ok &= ~has_p | p_ok
    if ok.all():
        take = None
        v = val.astype(np.int64)
        lines = li
    else:
        take = np.flatnonzero(ok)
        if take.size == 0:
            return
        v = val[:, take].astype(np.int64)
        lines = li[take]
        has_p = has_p[take]
    value = (v[0] << 24) | (v[1] << 16) | (v[2] << 8) | v[3]
    prefix = np.where(has_p, v[4], 32)
    size = np.left_shift(np.int64(1), 32 - prefix)
    first = value & ~(size - 1)
    out.v4_first.append(first)
    out.v4_last.append(first + (size - 1))
    pending[lines] = False
    out.entries += int(lines.size)
    host = np.flatnonzero(first != value)
    for i in host.tolist():
        out.notes.append((line_base + int(lines[i]), "host bits"))


def _fast_v6(
    a: npt.NDArray[np.uint8],
    starts: npt.NDArray[np.int64],
    ends: npt.NDArray[np.int64],
    *,
    hex_runs: tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64], npt.NDArray[np.int64]],
    pending: npt.NDArray[np.bool_],
    out: _Collected,
    line_base: int = 0,
) -> None:
    """Lines made only of hex groups, ':' / '::' and an optional decimal /prefix.

    ``hex_runs`` are the hex value of every byte and the start and end of every run of hex
    digits in the buffer; the lines may be a slice of the buffer's lines from ``line_base``.
    """
    length = ends - starts
    li = np.flatnonzero(pending & (length >= 2) & (length <= 43))
    if li.size == 0:
        return
    hv, rs, re_ = hex_runs
    s = starts[li]
    e = ends[li]
    k0 = np.searchsorted(rs, s)
    nr = np.searchsorted(rs, e) - k0
    keep = (nr >= 1) & (nr <= 9)
    li, s, e, k0, nr = li[keep], s[keep], e[keep], k0[keep], nr[keep]
    if li.size == 0:
        return
    # one row per run, grouped by line
    offs = np.cumsum(nr) - nr
    line_of = np.repeat(np.arange(li.size), nr)
    ordinal = np.arange(line_of.size) - offs[line_of]
    run = k0[line_of] + ordinal
    r_s = rs[run]
    r_e = re_[run]
    r_n = r_e - r_s
    first_run = ordinal == 0
    prev_end = np.where(first_run, s[line_of], re_[np.maximum(run - 1, 0)])
    gap = r_s - prev_end
    g0 = a[prev_end]
    g1 = a[prev_end + 1]
    g2 = a[prev_end + 2]
    k_none = gap == 0
    k_col = (gap == 1) & (g0 == _COLON)
    k_dcol = (gap == 2) & (g0 == _COLON) & (g1 == _COLON)
    k_sl = (gap == 1) & (g0 == _SLASH)
    k_dcsl = (gap == 3) & (g0 == _COLON) & (g1 == _COLON) & (g2 == _SLASH)
    is_prefix = k_sl | k_dcsl
    is_last = ordinal == nr[line_of] - 1
    gap_ok = np.where(first_run, k_none | k_dcol | k_dcsl, k_col | k_dcol | k_sl | k_dcsl)
    # a prefix run: last, decimal, 1-3 digits, no leading zero, <= 128
    h0 = hv[r_s].astype(np.int64)
    h1 = hv[r_s + 1].astype(np.int64)
    h2 = hv[r_s + 2].astype(np.int64)
    h3 = hv[r_s + 3].astype(np.int64)
    decimal = (h0 < 10) & ((r_n < 2) | (h1 < 10)) & ((r_n < 3) | (h2 < 10))
    pval = np.where(r_n == 1, h0, np.where(r_n == 2, h0 * 10 + h1, h0 * 100 + h1 * 10 + h2))
    prefix_ok = is_last & (r_n <= 3) & decimal & ~((r_n > 1) & (h0 == 0)) & (pval <= 128)
    run_ok = gap_ok & np.where(is_prefix, prefix_ok, r_n <= 4)
    bad = np.add.reduceat((~run_ok).astype(np.int64), offs) > 0
    n_dc = np.add.reduceat((k_dcol | k_dcsl).astype(np.int64), offs)
    has_p = np.add.reduceat(is_prefix.astype(np.int64), offs)
    last_end = re_[k0 + nr - 1]
    tail = e - last_end
    tail_dc = (tail == 2) & (a[last_end] == _COLON) & (a[last_end + 1] == _COLON) & (has_p == 0)
    n_dc = n_dc + tail_dc
    groups = nr - has_p
    ok = ~bad & ((tail == 0) | tail_dc)
    ok &= ((n_dc == 0) & (groups == 8)) | ((n_dc == 1) & (groups <= 7))
    if not ok.any():
        return
    # place each group: groups after '::' shift right by the number of zero groups it stands for
    dc_seen = np.cumsum(k_dcol.astype(np.int64))
    dc_before_line = dc_seen[offs] - k_dcol[offs]
    after = (dc_seen - dc_before_line[line_of]) > 0
    col = ordinal + np.where(after, 8 - groups[line_of], 0)
    gval = np.where(r_n >= 1, h0, 0)
    gval = np.where(r_n >= 2, gval * 16 + h1, gval)
    gval = np.where(r_n >= 3, gval * 16 + h2, gval)
    gval = np.where(r_n >= 4, gval * 16 + h3, gval)
    use = ok[line_of] & ~is_prefix
    mat = np.zeros((li.size, 8), dtype=np.uint64)
    mat[line_of[use], col[use]] = gval[use].astype(np.uint64)
    prefix = np.full(li.size, 128, dtype=np.int64)
    pu = ok[line_of] & is_prefix
    prefix[line_of[pu]] = pval[pu]
    take = np.flatnonzero(ok)
    mat = mat[take]
    prefix = prefix[take]
    hi = (mat[:, 0] << np.uint64(48)) | (mat[:, 1] << np.uint64(32))
    hi |= (mat[:, 2] << np.uint64(16)) | mat[:, 3]
    lo = (mat[:, 4] << np.uint64(48)) | (mat[:, 5] << np.uint64(32))
    lo |= (mat[:, 6] << np.uint64(16)) | mat[:, 7]
    m_hi, m_lo = eng.v6_host_masks(prefix)
    f_hi = hi & ~m_hi
    f_lo = lo & ~m_lo
    out.v6_first.append(np.stack((f_hi, f_lo), axis=1))
    out.v6_last.append(np.stack((f_hi | m_hi, f_lo | m_lo), axis=1))
    lines = li[take]
    pending[lines] = False
    out.entries += int(take.size)
    host = np.flatnonzero((f_hi != hi) | (f_lo != lo))
    for i in host.tolist():
        out.notes.append((line_base + int(lines[i]), "host bits"))
    mapped = (f_hi == 0) & ((f_lo >> np.uint64(32)) == np.uint64(0xFFFF)) & (prefix >= 96)
    for i in np.flatnonzero(mapped).tolist():
        out.notes.append((line_base + int(lines[i]), "mapped"))


def _line_text(buf: bytes, start: int, end: int) -> str:
    raw = buf[start:end]
    text = raw.decode("utf-8", errors="replace").rstrip("\r\n")
    return text if len(text) <= _MAX_TEXT else text[:_MAX_TEXT] + "..."


def _parse_buffer(buf: bytes) -> tuple[_Collected, npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    a = np.frombuffer(buf, dtype=np.uint8)
    is_nl = a == _NL
    mark = a == _DOT
    mark |= a == _SLASH
    mark |= is_nl
    ev = np.flatnonzero(mark)
    del mark
    if a.size < 2**31:
        ev = ev.astype(np.int32)
    nl_ev = np.flatnonzero(is_nl[ev])
    del is_nl
    nl = ev[nl_ev]
    line_starts = np.empty(nl.size, dtype=np.int64)
    if nl.size:
        line_starts[0] = 0
        line_starts[1:] = nl[:-1] + 1
    line_ends = nl.astype(np.int64)
    # content bounds: trailing blanks and CR, leading blanks off (a few rounds; the reference
    # grammar strips whatever is left)
    starts = line_starts
    ends = line_ends
    for _ in range(4):
        last = a[ends - 1]
        cut = (ends > starts) & ((last == _SPACE) | (last == _TAB) | (last == _CR))
        if not cut.any():
            break
        ends = ends - cut
    for _ in range(4):
        head = a[starts]
        cut = (ends > starts) & ((head == _SPACE) | (head == _TAB))
        if not cut.any():
            break
        starts = starts + cut
    first = a[starts]
    pending = (ends > starts) & (first != _HASH) & (first != _SEMI)
    out = _Collected()
    # in slices of lines: the per-line work arrays stay small (in cache, few page faults)
    for lo in range(0, int(nl.size), _CHUNK):
        hi = min(lo + _CHUNK, int(nl.size))
        _fast_v4(
            a,
            starts[lo:hi],
            ends[lo:hi],
            events=(ev, nl_ev[lo:hi], int(nl_ev[lo - 1]) + 1 if lo else 0),
            pending=pending[lo:hi],
            out=out,
            line_base=lo,
        )
    if np.count_nonzero(pending) >= 16:
        hv = _HEXVAL[a]
        rs, re_ = _runs(hv < 16)
        for lo in range(0, int(nl.size), _CHUNK // 4):
            hi = min(lo + _CHUNK // 4, int(nl.size))
            if pending[lo:hi].any():
                _fast_v6(
                    a,
                    starts[lo:hi],
                    ends[lo:hi],
                    hex_runs=(hv, rs, re_),
                    pending=pending[lo:hi],
                    out=out,
                    line_base=lo,
                )
    v4f: list[int] = []
    v4l: list[int] = []
    v6f: list[int] = []
    v6l: list[int] = []
    for i in np.flatnonzero(pending).tolist():
        text = buf[starts[i] : ends[i]].decode("utf-8", errors="replace")
        try:
            got = parse_line(text)
        except CidrError as exc:
            out.issues.append((i, exc.message))
            continue
        if got is None:
            continue
        family, lo, hi, note = got
        out.entries += 1
        if family == 4:
            v4f.append(lo)
            v4l.append(hi)
        else:
            v6f.append(lo)
            v6l.append(hi)
        if note:
            out.notes.append((i, note))
    if v4f:
        out.v4_first.append(np.array(v4f, dtype=np.int64))
        out.v4_last.append(np.array(v4l, dtype=np.int64))
    if v6f:
        m = (1 << 64) - 1
        out.v6_first.append(np.array([(x >> 64, x & m) for x in v6f], dtype=np.uint64))
        out.v6_last.append(np.array([(x >> 64, x & m) for x in v6l], dtype=np.uint64))
    return out, line_starts, line_ends


def _note_reason(kind: str, text: str) -> str:
    """Turn a fast-path note marker into the same sentence the reference grammar writes."""
    got = parse_line(text)
    if got is not None and got[3]:
        return got[3]
    return kind  # pragma: no cover - the fast paths only mark lines the grammar also notes


def parse_many(
    inputs: Iterable[tuple[str | None, bytes | str]], *, strict: bool = False
) -> ParseResult:
    """Parse several inputs (``(source, content)`` pairs) into one result.

    Issues and notes carry their ``source`` and 1-based line. This is cheaper than parsing each
    input on its own (one pass over one buffer) and is what ``egressguard aggregate`` uses.
    """
    chunks: list[bytes] = []
    sources: list[str | None] = []
    bases: list[int] = []
    line_count = 0
    for source, content in inputs:
        data = content.encode("utf-8", errors="replace") if isinstance(content, str) else content
        if data.startswith(_BOM):
            data = data[len(_BOM) :]
        sources.append(source)
        bases.append(line_count)
        chunks.append(data)
        if data and not data.endswith(b"\n"):
            chunks.append(b"\n")
        line_count += data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)
    chunks.append(_PAD)
    buf = b"".join(chunks)
    got, starts, ends = _parse_buffer(buf)

    def locate(i: int, reason: str) -> ParseIssue:
        k = bisect.bisect_right(bases, i) - 1
        return ParseIssue(
            line=i - bases[k] + 1,
            text=_line_text(buf, int(starts[i]), int(ends[i])),
            reason=reason,
            source=sources[k],
        )

    issues = tuple(locate(i, r) for i, r in sorted(got.issues))
    if strict and issues:
        first = issues[0]
        raise CidrError(str(first), hint="fix or remove the line, or parse leniently", issue=first)
    notes = []
    noted: set[int] = set()
    for i, kind in sorted(got.notes):
        if i in noted:
            continue  # one note per line, as the reference grammar gives
        noted.add(i)
        reason = kind
        if kind in ("host bits", "mapped"):
            reason = _note_reason(kind, buf[starts[i] : ends[i]].decode("ascii"))
        notes.append(locate(i, reason))
    v4 = _build(4, got.v4_first, got.v4_last)
    v6 = _build(6, got.v6_first, got.v6_last)
    return ParseResult(
        addresses=AddressSet(v4, v6),
        issues=issues,
        notes=tuple(notes),
        entries=got.entries,
        lines=line_count,
        sources=tuple(sources),
    )


def _build(family: Family, firsts: list[Any], lasts: list[Any]) -> CidrSet:
    if not firsts:
        return CidrSet.empty(family)
    if len(firsts) == 1:
        return CidrSet.from_range_arrays(family, firsts[0], lasts[0])
    return CidrSet.from_range_arrays(family, np.concatenate(firsts), np.concatenate(lasts))


def parse(data: bytes | str, *, source: str | None = None, strict: bool = False) -> ParseResult:
    """Parse one list (bytes or text). See the module docstring for the accepted grammar."""
    return parse_many([(source, data)], strict=strict)
