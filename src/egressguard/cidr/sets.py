"""Immutable, canonical sets of addresses: ``CidrSet`` (one family) and ``AddressSet`` (both).

A ``CidrSet`` is always canonical: sorted, merged, non-overlapping, non-adjacent ranges over
integers. Two sets holding the same addresses are equal and hash alike, however they were built.
Set algebra runs as merge walks over range bounds (NumPy, see ``_engine``); nothing is ever
expanded into single addresses, so a /0 costs the same as a /32.

Feeds mix families, so most callers hold an ``AddressSet`` (``.v4`` and ``.v6``); the set
operations of both types have the same names and operators (``| & - ^``, ``<=`` for subset).

The minimal CIDR list (``cidrs()``) is the unique shortest list of CIDRs covering exactly the
set: for IPv4 it is what ``iprange --optimize`` prints.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Final, cast

import numpy as np

from egressguard.cidr import _engine as eng
from egressguard.cidr.addresses import (
    MAX_PREFIX,
    Cidr,
    CidrError,
    Family,
    format_address,
    parse_address,
    parse_cidr,
)

if TYPE_CHECKING:
    import numpy.typing as npt

__all__ = ["AddressSet", "CidrSet", "union_all"]

_M64: Final = (1 << 64) - 1


def _family(value: int) -> Family:
    if value == 4:
        return 4
    if value == 6:
        return 6
    raise CidrError(f"address family must be 4 or 6, not {value!r}")


def _frozen(*arrays: Any) -> None:
    for a in arrays:
        a.setflags(write=False)


class CidrSet:
    """A canonical set of addresses of one family (4 or 6).

    Build it with ``CidrSet(family, cidrs)`` (``Cidr`` values or strings such as
    ``"192.0.2.0/24"`` or ``"2001:db8::1"``), ``CidrSet.from_ranges(family, [(first, last)])``
    with inclusive integer bounds, or from a bulk parse (:func:`egressguard.cidr.parse.parse`).
    Operations return new sets; a set never changes.
    """

    __slots__ = ("_a", "_b", "_cidrs", "_family", "_hash", "_py")

    # IPv4: _a = starts, _b = ends (exclusive), int64. IPv6: _a = firsts, _b = lasts (inclusive),
    # (n, 2) uint64 [hi, lo]. Both canonical and read-only.
    _family: Family
    _a: Any
    _b: Any

    def __init__(self, family: int, cidrs: Iterable[Cidr | str] = ()) -> None:
        fam = _family(family)
        ranges: list[tuple[int, int]] = []
        for item in cidrs:
            cidr = parse_cidr(item) if isinstance(item, str) else item
            if cidr.family != fam:
                raise CidrError(f"{cidr} is not an IPv{fam} network")
            ranges.append((cidr.first, cidr.last))
        built = CidrSet.from_ranges(fam, ranges)
        self._init(fam, built._a, built._b)

    def _init(self, family: Family, a: Any, b: Any) -> None:
        self._family = family
        self._a = a
        self._b = b
        self._hash: int | None = None
        self._py: tuple[list[int], list[int]] | None = None
        self._cidrs: tuple[Any, Any] | None = None

    @classmethod
    def _make(cls, family: Family, a: Any, b: Any) -> CidrSet:
        _frozen(a, b)
        obj = cls.__new__(cls)
        obj._init(family, a, b)
        return obj

    # -- constructors ----------------------------------------------------------------------

    @classmethod
    def empty(cls, family: int) -> CidrSet:
        fam = _family(family)
        if fam == 4:
            return cls._make(4, np.zeros(0, np.int64), np.zeros(0, np.int64))
        return cls._make(6, np.zeros((0, 2), np.uint64), np.zeros((0, 2), np.uint64))

    @classmethod
    def universe(cls, family: int) -> CidrSet:
        """Every address of the family (``0.0.0.0/0`` or ``::/0``)."""
        fam = _family(family)
        return cls.from_ranges(fam, [(0, (1 << MAX_PREFIX[fam]) - 1)])

    @classmethod
    def from_ranges(cls, family: int, ranges: Iterable[tuple[int, int]]) -> CidrSet:
        """Build from inclusive ``(first, last)`` integer ranges in any order, overlapping or not.

        This is the entry point for range-based sources (DB-IP, IP2Location, RIR statistics),
        whose ranges are rarely CIDR-aligned. Raises :class:`CidrError` for a reversed range or
        a bound outside the family.
        """
        fam = _family(family)
        top = (1 << MAX_PREFIX[fam]) - 1
        pairs = list(ranges)
        for first, last in pairs:
            if not 0 <= first <= last <= top:
                what = "reversed range" if 0 <= last < first <= top else "range outside the family"
                raise CidrError(
                    f"{what}: {format_address(fam, max(0, min(first, top)))}-"
                    f"{format_address(fam, max(0, min(last, top)))} "
                    f"(first={first}, last={last}, IPv{fam})"
                )
        if fam == 4:
            arr = np.array(pairs, dtype=np.int64).reshape(-1, 2)
            return cls.from_range_arrays(4, arr[:, 0], arr[:, 1])
        halves = np.array(
            [(f >> 64, f & _M64, la >> 64, la & _M64) for f, la in pairs], dtype=np.uint64
        ).reshape(-1, 4)
        return cls.from_range_arrays(6, halves[:, 0:2], halves[:, 2:4])

    @classmethod
    def from_range_arrays(cls, family: int, first: Any, last: Any) -> CidrSet:
        """Build from NumPy arrays of inclusive bounds (for vectorised parsers).

        IPv4: two 1-d integer arrays. IPv6: two ``(n, 2)`` uint64 arrays of ``[hi, lo]`` halves.
        The caller guarantees ``first <= last`` element-wise and values within the family.
        """
        fam = _family(family)
        if fam == 4:
            s, e = eng.canonical(
                np.asarray(first, dtype=np.int64), np.asarray(last, dtype=np.int64) + 1
            )
            return cls._make(4, s, e)
        f = np.asarray(first, dtype=np.uint64).reshape(-1, 2)
        la = np.asarray(last, dtype=np.uint64).reshape(-1, 2)
        coords, (cs, ce) = eng.V6Coordinates.build(eng.v6_to_halfopen(f, la))
        s, e = eng.canonical(cs, ce)
        ff, ll = eng.v6_from_coords(coords, s, e)
        return cls._make(6, ff, ll)

    # -- views -----------------------------------------------------------------------------

    @property
    def family(self) -> Family:
        return self._family

    @property
    def range_count(self) -> int:
        """Number of canonical (maximal) ranges."""
        return int(self._a.shape[0])

    @property
    def address_count(self) -> int:
        """How many addresses the set holds (a Python int: IPv6 counts exceed 64 bits)."""
        if self._family == 4:
            return int((self._b - self._a).sum())
        firsts, lasts = self._py_ranges()
        return sum(lasts) - sum(firsts) + len(firsts)

    def __bool__(self) -> bool:
        return self.range_count > 0

    def ranges(self) -> list[tuple[int, int]]:
        """The canonical ranges as inclusive ``(first, last)`` integer pairs, ascending."""
        firsts, lasts = self._py_ranges()
        return list(zip(firsts, lasts, strict=True))

    def _py_ranges(self) -> tuple[list[int], list[int]]:
        if self._py is None:
            if self._family == 4:
                self._py = (self._a.tolist(), (self._b - 1).tolist())
            else:
                self._py = (_join128(self._a), _join128(self._b))
        return self._py

    def _split(self) -> tuple[Any, Any]:
        if self._cidrs is None:
            if self._family == 4:
                self._cidrs = eng.split_v4(self._a, self._b)[:2]
            else:
                self._cidrs = eng.split_v6(self._a, self._b)[:2]
        return self._cidrs

    def cidrs(self) -> list[Cidr]:
        """The minimal CIDR list, ascending. No two of its CIDRs could merge into one."""
        nets, plens = self._split()
        fam = self._family
        values = nets.tolist() if fam == 4 else _join128(nets)
        return [Cidr(fam, n, p) for n, p in zip(values, plens.tolist(), strict=True)]

    @property
    def cidr_count(self) -> int:
        return int(self._split()[1].shape[0])

    def cidr_strings(self, *, bare_hosts: bool = False) -> list[str]:
        """``cidrs()`` as text, fast. ``bare_hosts`` prints /32 and /128 without the prefix
        (the ``iprange`` style); by default every entry carries its prefix (Calico style)."""
        nets, plens = self._split()
        if self._family == 4:
            return eng.format_v4(nets, plens, bare_host=bare_hosts)
        return eng.format_v6(nets, plens, bare_host=bare_hosts)

    def to_text(self, *, bare_hosts: bool = False) -> str:
        """The minimal CIDR list as text, one CIDR per line (each line ends with a newline)."""
        nets, plens = self._split()
        fmt = eng.format_v4_lines if self._family == 4 else eng.format_v6_lines
        return fmt(nets, plens, bare_host=bare_hosts).decode("ascii")

    def range_arrays(self) -> tuple[npt.NDArray[Any], npt.NDArray[Any]]:
        """Read-only NumPy arrays of inclusive bounds (the layout of ``from_range_arrays``)."""
        if self._family == 4:
            last = self._b - 1
            _frozen(last)
            return self._a, last
        return self._a, self._b

    # -- algebra ---------------------------------------------------------------------------

    def _check(self, other: object) -> CidrSet:
        if not isinstance(other, CidrSet):
            raise TypeError(f"expected a CidrSet, got {type(other).__name__}")
        if other._family != self._family:
            raise CidrError(f"cannot combine IPv{self._family} with IPv{other._family} sets")
        return other

    def _combine(self, other: CidrSet, op: str) -> CidrSet:
        other = self._check(other)
        fn = eng.OPS[op]
        if self._family == 4:
            s, e = eng.combine(self._a, self._b, other._a, other._b, fn)
            return CidrSet._make(4, s, e)
        parts = eng.v6_to_halfopen(self._a, self._b) + eng.v6_to_halfopen(other._a, other._b)
        coords, (a_s, a_e, b_s, b_e) = eng.V6Coordinates.build(parts)
        s, e = eng.combine(a_s, a_e, b_s, b_e, fn)
        first, last = eng.v6_from_coords(coords, s, e)
        return CidrSet._make(6, first, last)

    def union(self, *others: CidrSet) -> CidrSet:
        out = self
        for o in others:
            out = out._combine(o, "union")
        return out

    def intersection(self, *others: CidrSet) -> CidrSet:
        out = self
        for o in others:
            out = out._combine(o, "intersection")
        return out

    def difference(self, *others: CidrSet) -> CidrSet:
        """Addresses of this set in none of the others (allowlist subtraction)."""
        out = self
        for o in others:
            out = out._combine(o, "difference")
        return out

    def symmetric_difference(self, other: CidrSet) -> CidrSet:
        return self._combine(other, "symmetric_difference")

    def complement(self, within: CidrSet | None = None) -> CidrSet:
        """``within - self``; ``within`` defaults to the whole address family."""
        return (within if within is not None else CidrSet.universe(self._family)) - self

    def __or__(self, other: CidrSet) -> CidrSet:
        return self._combine(other, "union")

    def __and__(self, other: CidrSet) -> CidrSet:
        return self._combine(other, "intersection")

    def __sub__(self, other: CidrSet) -> CidrSet:
        return self._combine(other, "difference")

    def __xor__(self, other: CidrSet) -> CidrSet:
        return self._combine(other, "symmetric_difference")

    # -- containment -----------------------------------------------------------------------

    def contains_address(self, address: int) -> bool:
        """Whether an address (an int of this set's family) is in the set."""
        firsts, lasts = self._py_ranges()
        i = bisect.bisect_right(firsts, address) - 1
        return i >= 0 and address <= lasts[i]

    def containing_range(self, address: int) -> tuple[int, int] | None:
        """The canonical range holding the address, or None."""
        firsts, lasts = self._py_ranges()
        i = bisect.bisect_right(firsts, address) - 1
        if i >= 0 and address <= lasts[i]:
            return firsts[i], lasts[i]
        return None

    def contains_addresses(self, addresses: npt.NDArray[Any]) -> npt.NDArray[np.bool_]:
        """Vectorised membership. IPv4: a 1-d integer array; IPv6: ``(n, 2)`` uint64 [hi, lo]."""
        if self._family == 4:
            pts = np.asarray(addresses, dtype=np.int64)
            return eng.contains_points(self._a, self._b, pts)
        q = np.asarray(addresses, dtype=np.uint64).reshape(-1, 2)
        zero = np.zeros(q.shape[0], dtype=np.uint8)
        parts = [*eng.v6_to_halfopen(self._a, self._b), (q, zero)]
        _, (s, e, pts) = eng.V6Coordinates.build(parts)
        return eng.contains_points(s, e, pts)

    def issubset(self, other: CidrSet) -> bool:
        return not (self - other)

    def issuperset(self, other: CidrSet) -> bool:
        return not (self._check(other) - self)

    def isdisjoint(self, other: CidrSet) -> bool:
        return not (self & other)

    def __le__(self, other: CidrSet) -> bool:
        return self.issubset(other)

    def __ge__(self, other: CidrSet) -> bool:
        return self.issuperset(other)

    def __lt__(self, other: CidrSet) -> bool:
        return self.issubset(other) and self != other

    def __gt__(self, other: CidrSet) -> bool:
        return self.issuperset(other) and self != other

    def __contains__(self, item: object) -> bool:
        """``int`` (an address of this family), ``Cidr``, or text: an address or a CIDR.

        A CIDR is "in" the set when all its addresses are; an address of the other family is
        simply not in the set.
        """
        if isinstance(item, bool):
            raise TypeError("a bool is not an address")
        if isinstance(item, int):
            return self.contains_address(item)
        if isinstance(item, str):
            item = parse_cidr(item)
        if isinstance(item, Cidr):
            if item.family != self._family:
                return False
            got = self.containing_range(item.first)
            return got is not None and item.last <= got[1]
        raise TypeError(f"cannot test {type(item).__name__} for membership in a CidrSet")

    # -- value semantics -------------------------------------------------------------------

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CidrSet):
            return NotImplemented
        return (
            self._family == other._family
            and self._a.shape == other._a.shape
            and bool(np.array_equal(self._a, other._a))
            and bool(np.array_equal(self._b, other._b))
        )

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = hash((self._family, self._a.tobytes(), self._b.tobytes()))
        return self._hash

    def __repr__(self) -> str:
        shown = self.cidr_strings()
        more = f", ... {len(shown) - 8} more" if len(shown) > 8 else ""
        return f"CidrSet({self._family}, {shown[:8]!r}{more})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (self._family, self._a, self._b))


def _rebuild(family: Family, a: Any, b: Any) -> CidrSet:
    return CidrSet._make(family, np.array(a), np.array(b))


def _join128(halves: Any) -> list[int]:
    return [(h << 64) | lo for h, lo in cast("list[list[int]]", halves.tolist())]


class AddressSet:
    """Addresses of both families: an IPv4 ``CidrSet`` and an IPv6 ``CidrSet``.

    Every operation applies per family. ``cidrs()`` lists IPv4 first, then IPv6.
    """

    __slots__ = ("v4", "v6")

    v4: CidrSet
    v6: CidrSet

    def __init__(self, v4: CidrSet | None = None, v6: CidrSet | None = None) -> None:
        if v4 is not None and v4.family != 4:
            raise CidrError("AddressSet.v4 must be an IPv4 CidrSet")
        if v6 is not None and v6.family != 6:
            raise CidrError("AddressSet.v6 must be an IPv6 CidrSet")
        object.__setattr__(self, "v4", v4 if v4 is not None else CidrSet.empty(4))
        object.__setattr__(self, "v6", v6 if v6 is not None else CidrSet.empty(6))

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("AddressSet is immutable")

    @classmethod
    def of(cls, *items: Cidr | str) -> AddressSet:
        """``AddressSet.of("10.0.0.0/8", "fd00::/8", "192.0.2.1")``; host bits are cleared."""
        return cls.from_cidrs(items)

    @classmethod
    def from_cidrs(cls, items: Iterable[Cidr | str]) -> AddressSet:
        by_family: dict[int, list[Cidr]] = {4: [], 6: []}
        for item in items:
            cidr = parse_cidr(item) if isinstance(item, str) else item
            by_family[cidr.family].append(cidr)
        return cls(CidrSet(4, by_family[4]), CidrSet(6, by_family[6]))

    def __getitem__(self, family: int) -> CidrSet:
        return self.v4 if _family(family) == 4 else self.v6

    def _pair(self, other: object) -> AddressSet:
        if not isinstance(other, AddressSet):
            raise TypeError(f"expected an AddressSet, got {type(other).__name__}")
        return other

    def union(self, *others: AddressSet) -> AddressSet:
        os_ = [self._pair(o) for o in others]
        return AddressSet(self.v4.union(*(o.v4 for o in os_)), self.v6.union(*(o.v6 for o in os_)))

    def intersection(self, *others: AddressSet) -> AddressSet:
        os_ = [self._pair(o) for o in others]
        return AddressSet(
            self.v4.intersection(*(o.v4 for o in os_)), self.v6.intersection(*(o.v6 for o in os_))
        )

    def difference(self, *others: AddressSet) -> AddressSet:
        os_ = [self._pair(o) for o in others]
        return AddressSet(
            self.v4.difference(*(o.v4 for o in os_)), self.v6.difference(*(o.v6 for o in os_))
        )

    def symmetric_difference(self, other: AddressSet) -> AddressSet:
        o = self._pair(other)
        return AddressSet(self.v4 ^ o.v4, self.v6 ^ o.v6)

    def __or__(self, other: AddressSet) -> AddressSet:
        return self.union(other)

    def __and__(self, other: AddressSet) -> AddressSet:
        return self.intersection(other)

    def __sub__(self, other: AddressSet) -> AddressSet:
        return self.difference(other)

    def __xor__(self, other: AddressSet) -> AddressSet:
        return self.symmetric_difference(other)

    def issubset(self, other: AddressSet) -> bool:
        o = self._pair(other)
        return self.v4.issubset(o.v4) and self.v6.issubset(o.v6)

    def issuperset(self, other: AddressSet) -> bool:
        return self._pair(other).issubset(self)

    def isdisjoint(self, other: AddressSet) -> bool:
        o = self._pair(other)
        return self.v4.isdisjoint(o.v4) and self.v6.isdisjoint(o.v6)

    def __le__(self, other: AddressSet) -> bool:
        return self.issubset(other)

    def __ge__(self, other: AddressSet) -> bool:
        return self.issuperset(other)

    def __contains__(self, item: object) -> bool:
        """Text (address or CIDR) or a ``Cidr``; ints are ambiguous here, use ``[family]``."""
        if isinstance(item, str):
            item = parse_cidr(item)
        if isinstance(item, Cidr):
            return item in self[item.family]
        raise TypeError(
            f"cannot test {type(item).__name__} for membership in an AddressSet "
            "(for an int, pick the family: s[4] or s[6])"
        )

    def contains_address(self, text: str) -> bool:
        family, value = parse_address(text)
        return self[family].contains_address(value)

    def cidrs(self) -> list[Cidr]:
        return self.v4.cidrs() + self.v6.cidrs()

    def cidr_strings(self, *, bare_hosts: bool = False) -> list[str]:
        return self.v4.cidr_strings(bare_hosts=bare_hosts) + self.v6.cidr_strings(
            bare_hosts=bare_hosts
        )

    def to_text(self, *, bare_hosts: bool = False) -> str:
        """IPv4 then IPv6 CIDRs, one per line."""
        return self.v4.to_text(bare_hosts=bare_hosts) + self.v6.to_text(bare_hosts=bare_hosts)

    @property
    def cidr_count(self) -> int:
        return self.v4.cidr_count + self.v6.cidr_count

    def __bool__(self) -> bool:
        return bool(self.v4) or bool(self.v6)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, AddressSet):
            return NotImplemented
        return self.v4 == other.v4 and self.v6 == other.v6

    def __hash__(self) -> int:
        return hash((self.v4, self.v6))

    def __repr__(self) -> str:
        return f"AddressSet(v4={self.v4!r}, v6={self.v6!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (AddressSet, (self.v4, self.v6))


def union_all(sets: Sequence[CidrSet]) -> CidrSet:
    """Union of many sets of one family in one sort (cheaper than chaining ``|``)."""
    if not sets:
        raise CidrError("union_all needs at least one set")
    fam = sets[0].family
    if any(s.family != fam for s in sets):
        raise CidrError("union_all needs sets of one family")
    firsts, lasts = zip(*(s.range_arrays() for s in sets), strict=True)
    return CidrSet.from_range_arrays(fam, np.concatenate(firsts), np.concatenate(lasts))
