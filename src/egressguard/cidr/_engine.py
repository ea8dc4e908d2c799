"""NumPy kernels behind ``CidrSet``: canonical ranges, set algebra, CIDR split, formatting.

Representation. A canonical set is a sorted list of disjoint, non-adjacent, half-open ranges
``[start, end)``. IPv4 keeps them as two int64 arrays of the addresses themselves (``end`` may be
2**32, which int64 holds). IPv6 needs 129 bits for ``end`` (the range ending at ``ffff:...:ffff``
ends at 2**128), so IPv6 ranges are stored inclusive as ``(n, 2)`` uint64 arrays of
``[hi, lo]`` halves, and every algorithm first maps the IPv6 bounds it touches onto int64
*coordinates* (their ranks among all bounds involved, see :func:`v6_coordinates`). Set
algorithms only compare bounds for order and equality, so they run unchanged on coordinates;
adjacency needs no ``+1`` because the ranges are half-open.

Nothing here expands a range into addresses: every kernel is a sort plus linear passes over
range bounds.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

import numpy as np
import numpy.typing as npt

__all__: list[str] = []  # internal module

I64 = npt.NDArray[np.int64]
U64 = npt.NDArray[np.uint64]
Bools = npt.NDArray[np.bool_]

_EMPTY_I64: Final = np.zeros(0, dtype=np.int64)
_ONE: Final = np.uint64(1)
_ALL: Final = np.uint64(0xFFFFFFFFFFFFFFFF)

# ----------------------------------------------------------------------------------------------
# int64 coordinate kernels (both families)


def canonical(starts: I64, ends: I64) -> tuple[I64, I64]:
    """Merge arbitrary half-open ranges (``start < end``) into canonical form.

    Sort by start, carry the running maximum of the ends, and cut wherever a start lies beyond
    everything seen so far (``start > max end``); ``start == max end`` is adjacency and merges.
    """
    if starts.size == 0:
        return _EMPTY_I64, _EMPTY_I64
    order = np.argsort(starts, kind="stable")  # timsort: cheap on pre-sorted runs (files)
    s = starts[order]
    reach = np.maximum.accumulate(ends[order])
    cut = s[1:] > reach[:-1]
    out_s = np.concatenate((s[:1], s[1:][cut]))
    out_e = np.concatenate((reach[:-1][cut], reach[-1:]))
    return out_s, out_e


def _bounds(starts: I64, ends: I64) -> I64:
    out = np.empty(starts.size * 2, dtype=np.int64)
    out[0::2] = starts
    out[1::2] = ends
    return out


def _inside(bounds: I64, points: I64) -> Bools:
    """Membership of each point in a canonical set given by its interleaved bounds."""
    return (np.searchsorted(bounds, points, side="right") & 1).astype(bool)


Op = Callable[[Bools, Bools], Bools]

OPS: Final[dict[str, Op]] = {
    "union": np.logical_or,
    "intersection": np.logical_and,
    "difference": lambda a, b: a & ~b,
    "symmetric_difference": np.logical_xor,
}


def combine(a_s: I64, a_e: I64, b_s: I64, b_e: I64, op: Op) -> tuple[I64, I64]:
    """Apply a set operation to two canonical sets (same coordinate space).

    Every bound of either set starts an elementary interval on which membership in A and in B is
    constant; evaluate ``op`` once per interval and keep the bounds where the result flips.
    """
    a = _bounds(a_s, a_e)
    b = _bounds(b_s, b_e)
    cuts = np.union1d(a, b)
    if cuts.size == 0:
        return _EMPTY_I64, _EMPTY_I64
    state = op(_inside(a, cuts), _inside(b, cuts))
    flips = np.empty(state.size, dtype=bool)
    flips[0] = state[0]
    np.not_equal(state[1:], state[:-1], out=flips[1:])
    kept = cuts[flips]
    return kept[0::2], kept[1::2]


def contains_points(starts: I64, ends: I64, points: I64) -> Bools:
    idx = np.searchsorted(starts, points, side="right") - 1
    ok = idx >= 0
    safe = np.where(ok, idx, 0)
    return ok & (points < ends[safe]) if starts.size else np.zeros(points.size, dtype=bool)


# ----------------------------------------------------------------------------------------------
# IPv6: 128-bit values as [hi, lo] uint64 pairs


def _low_mask(bits: I64) -> U64:
    """uint64 with the low ``bits`` bits set (0..64)."""
    small = np.left_shift(_ONE, np.minimum(bits, 63).astype(np.uint64)) - _ONE
    return np.where(bits >= 64, _ALL, small).astype(np.uint64)


def v6_host_masks(prefixlen: I64) -> tuple[U64, U64]:
    """The host bits of IPv6 prefix lengths as ``[hi, lo]`` uint64 masks (``/128``: 0, 0)."""
    host = 128 - prefixlen
    return _low_mask(np.maximum(host - 64, 0)), _low_mask(np.minimum(host, 64))


def v6_plus_one(v: U64) -> tuple[U64, npt.NDArray[np.uint8]]:
    """``v + 1`` for (n, 2) [hi, lo] values, with the carry out of bit 127 as a third part."""
    lo = v[:, 1] + _ONE
    wrap = lo == 0
    hi = v[:, 0] + wrap.astype(np.uint64)
    carry = (wrap & (hi == 0)).astype(np.uint8)
    return np.stack((hi, lo), axis=1), carry


def v6_minus_one(v: U64) -> U64:
    lo = v[:, 1] - _ONE
    hi = v[:, 0] - (v[:, 1] == 0).astype(np.uint64)
    return np.stack((hi, lo), axis=1)


class V6Coordinates:
    """A shared int64 coordinate system for a group of IPv6 bound arrays.

    Every value (a [hi, lo] pair plus a carry bit, so 2**128 is representable) gets its rank
    among the distinct values; ranks preserve order and equality, which is all the set kernels
    need. ``values(coords)`` maps coordinates back.
    """

    __slots__ = ("_carry", "_hi", "_lo")

    def __init__(self, hi: U64, lo: U64, carry: npt.NDArray[np.uint8]) -> None:
        self._hi = hi
        self._lo = lo
        self._carry = carry

    @staticmethod
    def build(parts: list[tuple[U64, npt.NDArray[np.uint8]]]) -> tuple[V6Coordinates, list[I64]]:
        if not parts:
            empty = np.zeros(0, dtype=np.uint64)
            return V6Coordinates(empty, empty, np.zeros(0, dtype=np.uint8)), []
        vals = np.concatenate([p[0] for p in parts])
        carry = np.concatenate([p[1] for p in parts])
        hi = vals[:, 0]
        lo = vals[:, 1]
        if hi.size == 0:
            return V6Coordinates(hi, lo, carry), [_EMPTY_I64 for _ in parts]
        order = np.lexsort((lo, hi, carry))
        hs, ls, cs = hi[order], lo[order], carry[order]
        new = np.empty(hs.size, dtype=bool)
        new[0] = True
        new[1:] = (hs[1:] != hs[:-1]) | (ls[1:] != ls[:-1]) | (cs[1:] != cs[:-1])
        ranks = np.empty(hs.size, dtype=np.int64)
        ranks[order] = np.cumsum(new) - 1
        out: list[I64] = []
        at = 0
        for p in parts:
            n = p[0].shape[0]
            out.append(ranks[at : at + n])
            at += n
        return V6Coordinates(hs[new], ls[new], cs[new]), out

    def values(self, coords: I64) -> tuple[U64, npt.NDArray[np.uint8]]:
        return np.stack((self._hi[coords], self._lo[coords]), axis=1), self._carry[coords]


def v6_to_halfopen(first: U64, last: U64) -> list[tuple[U64, npt.NDArray[np.uint8]]]:
    end, carry = v6_plus_one(last)
    return [(first, np.zeros(first.shape[0], dtype=np.uint8)), (end, carry)]


def v6_from_coords(coords: V6Coordinates, s: I64, e: I64) -> tuple[U64, U64]:
    first, _ = coords.values(s)
    end, _carry = coords.values(e)
    # end == 2**128 is stored as [0, 0] with carry 1; minus one gives all ones, as wanted.
    return first, v6_minus_one(end)


# ----------------------------------------------------------------------------------------------
# Splitting ranges into minimal CIDRs


def _ctz64(x: U64) -> I64:
    """Trailing zero count of non-zero uint64 values (exact: a power of two is exact in float)."""
    low = x & (~x + _ONE)
    return (np.frexp(low.astype(np.float64))[1] - 1).astype(np.int64)


def _flog2_64(x: U64) -> I64:
    """floor(log2(x)) of non-zero uint64 values, corrected for float rounding up."""
    e: I64 = np.minimum(np.frexp(x.astype(np.float64))[1] - 1, 63).astype(np.int64)
    too_big = x < np.left_shift(_ONE, e.astype(np.uint64))
    out: I64 = e - too_big.astype(np.int64)
    return out


def split_v4(starts: I64, ends: I64) -> tuple[I64, I64, I64]:
    """Minimal CIDRs covering half-open IPv4 ranges: (network, prefixlen, owning range index)
    arrays, in order.

    Greedy from the low end: the largest block that is aligned at the current start and does not
    pass the end; it is the unique minimal cover. Each pass handles all pending ranges at once.
    """
    nets: list[I64] = []
    plens: list[I64] = []
    order: list[I64] = []
    idx = np.arange(starts.size, dtype=np.int64)
    s = starts.copy()
    e = ends
    step = 0
    while idx.size:
        low = s & -s
        low = np.where(s == 0, np.int64(1) << 32, low)
        span = e[idx] - s
        # largest power of two <= span; exact in float64 for values below 2**53
        fit = np.left_shift(np.int64(1), (np.frexp(span.astype(np.float64))[1] - 1))
        size = np.minimum(low, fit)
        nets.append(s)
        plens.append(32 - (np.frexp(size.astype(np.float64))[1] - 1).astype(np.int64))
        # sort key: range index, then the pass number (blocks of one range come in order)
        order.append(idx * 64 + step)
        s = s + size
        more = s < e[idx]
        idx = idx[more]
        s = s[more]
        step += 1
    if not nets:
        return _EMPTY_I64, _EMPTY_I64, _EMPTY_I64
    net = np.concatenate(nets)
    plen = np.concatenate(plens)
    key = np.concatenate(order)
    o = np.argsort(key, kind="stable")
    return net[o], plen[o], key[o] // 64


def split_v6(first: U64, last: U64) -> tuple[U64, I64, I64]:
    """Minimal CIDRs covering inclusive IPv6 ranges: ((n, 2) networks, prefixlens, owning range
    index), in order."""
    nets: list[U64] = []
    plens: list[I64] = []
    order: list[I64] = []
    idx = np.arange(first.shape[0], dtype=np.int64)
    hi = first[:, 0].copy()
    lo = first[:, 1].copy()
    step = 0
    while idx.size:
        lhi = last[idx, 0]
        llo = last[idx, 1]
        # alignment: trailing zeros of the start (128 for address zero)
        tz = np.full(idx.size, 128, dtype=np.int64)
        nz_lo = lo != 0
        tz[nz_lo] = _ctz64(lo[nz_lo])
        nz_hi = ~nz_lo & (hi != 0)
        tz[nz_hi] = 64 + _ctz64(hi[nz_hi])
        # span: floor(log2(last - start + 1)), 128 for the whole space
        dlo = llo - lo
        dhi = lhi - hi - (llo < lo).astype(np.uint64)
        clo = dlo + _ONE
        chi = dhi + (clo == 0).astype(np.uint64)
        full = (clo == 0) & (chi == 0)  # count == 2**128
        fl = np.full(idx.size, 128, dtype=np.int64)
        use_hi = ~full & (chi != 0)
        fl[use_hi] = 64 + _flog2_64(chi[use_hi])
        use_lo = ~full & (chi == 0)
        fl[use_lo] = _flog2_64(clo[use_lo])
        k = np.minimum(tz, fl)
        nets.append(np.stack((hi, lo), axis=1))
        plens.append(128 - k)
        order.append(idx * 256 + step)
        # the range is done when this block is all of it: count == 2**k
        pow2 = np.where(
            chi != 0,
            (clo == 0) & ((chi & (chi - _ONE)) == 0),
            (clo & (clo - _ONE)) == 0,
        )
        done = full | (pow2 & (k == fl))
        add_lo = np.where(k < 64, np.left_shift(_ONE, np.minimum(k, 63).astype(np.uint64)), 0)
        add_lo = add_lo.astype(np.uint64)
        add_hi = np.where(
            (k >= 64) & (k < 128), np.left_shift(_ONE, np.clip(k - 64, 0, 63).astype(np.uint64)), 0
        ).astype(np.uint64)
        new_lo = lo + add_lo
        hi = hi + add_hi + (new_lo < lo).astype(np.uint64)
        lo = new_lo
        more = ~done
        idx = idx[more]
        hi = hi[more]
        lo = lo[more]
        step += 1
    if not nets:
        return np.zeros((0, 2), dtype=np.uint64), _EMPTY_I64, _EMPTY_I64
    net = np.concatenate(nets)
    plen = np.concatenate(plens)
    key = np.concatenate(order)
    o = np.argsort(key, kind="stable")
    return net[o], plen[o], key[o] // 256


# ----------------------------------------------------------------------------------------------
# Formatting many CIDRs at once


_HEX_CHARS: Final = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)


def _decimal_columns(values: I64, width: int) -> tuple[list[npt.NDArray[np.uint8]], list[Bools]]:
    """Digit characters of non-negative ints as ``width`` columns (most significant first) and
    the mask of the columns to print (no leading zeros; ``0`` prints as one digit)."""
    chars: list[npt.NDArray[np.uint8]] = []
    shown: list[Bools] = []
    for k in range(width - 1, -1, -1):
        p = 10**k
        chars.append(((values // p) % 10 + 48).astype(np.uint8))
        shown.append(values >= p if k else np.ones(values.shape, dtype=bool))
    return chars, shown


def _assemble(chars: list[npt.NDArray[np.uint8]], shown: list[Bools], n: int) -> bytes:
    """Rows of columns → one buffer, dropping hidden cells (row-major keeps row order)."""
    mat = np.empty((n, len(chars)), dtype=np.uint8)
    mask = np.empty((n, len(chars)), dtype=bool)
    for c, (ch, sh) in enumerate(zip(chars, shown, strict=True)):
        mat[:, c] = ch
        mask[:, c] = sh
    text: bytes = np.compress(mask.ravel(), mat.ravel()).tobytes()
    return text


def format_v4_lines(net: I64, plen: I64, *, bare_host: bool) -> bytes:
    """CIDRs as newline-terminated ASCII lines, built column-wise with array arithmetic."""
    n = int(net.shape[0])
    if n == 0:
        return b""
    ones = np.ones(n, dtype=bool)
    chars: list[npt.NDArray[np.uint8]] = []
    shown: list[Bools] = []
    for k, shift in enumerate((24, 16, 8, 0)):
        c, m = _decimal_columns((net >> shift) & 255, 3)
        chars += c
        shown += m
        if k < 3:
            chars.append(np.full(n, ord("."), dtype=np.uint8))
            shown.append(ones)
    with_prefix = plen != 32 if bare_host else ones
    c, m = _decimal_columns(plen, 2)
    chars.append(np.full(n, ord("/"), dtype=np.uint8))
    shown.append(with_prefix)
    chars += c
    shown += [x & with_prefix for x in m]
    chars.append(np.full(n, ord("\n"), dtype=np.uint8))
    shown.append(ones)
    return _assemble(chars, shown, n)


_GROUP_TABLES: list[tuple[U64, U64]] = []


def _group_tables() -> tuple[U64, U64]:
    """For every 16-bit group value: its 8 output cells as one little-endian uint64 (':', ':',
    then four hex digits, two pad bytes) and which of those cells print (leading zeros don't;
    the separators are decided per row). Built once, 1 MiB."""
    if not _GROUP_TABLES:
        v = np.arange(1 << 16, dtype=np.uint64)
        chars = np.full(v.size, ord(":") | (ord(":") << 8), dtype="<u8")
        shown = np.zeros(v.size, dtype="<u8")
        for k in range(4):  # cell 2 + k holds the nibble 3 - k
            nib = (v >> np.uint64(4 * (3 - k))) & np.uint64(15)
            chars |= _HEX_CHARS[nib.astype(np.intp)].astype(np.uint64) << np.uint64(8 * (2 + k))
            visible = v >= np.uint64(1 << (4 * (3 - k))) if k < 3 else np.ones(v.size, bool)
            shown |= visible.astype(np.uint64) << np.uint64(8 * (2 + k))
        _GROUP_TABLES.append((chars, shown))
    return _GROUP_TABLES[0]


def format_v6_lines(net: U64, plen: I64, *, bare_host: bool) -> bytes:
    """RFC 5952 text of IPv6 CIDRs as lines, in slices of rows (small work arrays)."""
    step = 1 << 13
    return b"".join(
        _format_v6_slice(net[i : i + step], plen[i : i + step], bare_host=bare_host)
        for i in range(0, int(net.shape[0]), step)
    )


def _format_v6_slice(net: U64, plen: I64, *, bare_host: bool) -> bytes:
    """RFC 5952 text of IPv6 CIDRs as newline-terminated lines, built as one character matrix.

    Each group contributes eight cells from a table (two ':' and four hex digits, two pad
    cells). The longest run of two or more zero groups (first on a tie) is hidden; the group
    after it shows its second ':' (giving '::'), and a run reaching the end gets a trailing '::'.
    Hidden cells are dropped when the matrix is flattened.
    """
    n = int(net.shape[0])
    if n == 0:
        return b""
    chars_t, shown_t = _group_tables()
    groups = _v6_groups(net)  # (n, 8) uint16
    zero = groups == 0
    run = np.zeros((8, n), dtype=np.int8)  # zeros ending at each group
    acc = np.zeros(n, dtype=np.int8)
    for col in range(8):
        acc = np.where(zero[:, col], acc + 1, 0).astype(np.int8)
        run[col] = acc
    best_len = run.max(axis=0)
    best_end = np.argmax(run == best_len, axis=0)
    best_len = np.where(best_len >= 2, best_len, 0).astype(np.int64)
    best_at = np.where(best_len > 0, best_end - best_len + 1, -1)
    run_end = best_at + best_len  # first group after the hidden run (8: the run ends the text)
    g = np.arange(8, dtype=np.int64)
    has_run = (best_len > 0)[:, None]
    hidden = has_run & (best_at[:, None] <= g) & (g < run_end[:, None])
    after = has_run & (g == run_end[:, None])
    cells = chars_t[groups]  # (n, 8) little-endian uint64: 8 cells per group
    sep = ((g > 0) | after).astype(np.uint64)  # the first ':' (none before group 0)
    sep |= (after & (g > 0)).astype(np.uint64) << np.uint64(8)  # the second ':' of '::'
    shown = (shown_t[groups] | sep) * (~hidden).astype(np.uint64)
    tail = (best_len > 0) & (run_end == 8)
    ones = np.ones(n, dtype=bool)
    with_prefix = plen != 128 if bare_host else ones
    digits, digit_shown = _decimal_columns(plen, 3)
    extra_c = [np.full(n, ord(":"), np.uint8)] * 2 + [np.full(n, ord("/"), np.uint8)] + digits
    extra_c.append(np.full(n, ord("\n"), np.uint8))
    extra_s = [tail, tail, with_prefix] + [x & with_prefix for x in digit_shown] + [ones]
    mat = np.empty((n, 71), dtype=np.uint8)
    mat[:, :64] = cells.view(np.uint8).reshape(n, 64)
    mat[:, 64:] = np.stack(extra_c, axis=1)
    mask = np.empty((n, 71), dtype=bool)
    mask[:, :64] = shown.view(np.uint8).reshape(n, 64).view(bool)
    mask[:, 64:] = np.stack(extra_s, axis=1)
    text: bytes = np.compress(mask.ravel(), mat.ravel()).tobytes()  # much faster than mat[mask]
    return text


def format_v4(net: I64, plen: I64, *, bare_host: bool) -> list[str]:
    """Dotted-quad CIDR strings; with ``bare_host`` a /32 prints without its prefix."""
    if net.shape[0] == 0:
        return []
    return format_v4_lines(net, plen, bare_host=bare_host).decode("ascii").split("\n")[:-1]


def format_v6(net: U64, plen: I64, *, bare_host: bool) -> list[str]:
    """RFC 5952 CIDR strings; with ``bare_host`` a /128 prints without its prefix."""
    if net.shape[0] == 0:
        return []
    return format_v6_lines(net, plen, bare_host=bare_host).decode("ascii").split("\n")[:-1]


def _v6_groups(net: U64) -> npt.NDArray[np.uint16]:
    """The eight 16-bit groups of [hi, lo] values, most significant first: the big-endian bytes
    of the two halves read as big-endian 16-bit numbers."""
    be = np.ascontiguousarray(net, dtype=">u8")
    return be.view(">u2").reshape(-1, 8).astype(np.uint16)
