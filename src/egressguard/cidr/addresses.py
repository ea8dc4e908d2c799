"""Single addresses and CIDRs as integers: parse, format, and the ``Cidr`` value.

This module is pure Python (no NumPy) so that code needing one address at a time (a log line, a
selector, a policy rule) can use it without paying for the bulk engine. The bulk parser in
:mod:`egressguard.cidr.parse` follows exactly the same grammar; a property test holds the two
together.

Grammar decisions (documented here because users will hit them):

* IPv4 is strict dotted-quad: four decimal octets 0-255. A **leading zero** (``010.0.0.1``) is
  rejected: ``inet_aton`` (and therefore ``iprange``) reads it as octal (8.0.0.1), Python's
  ``ipaddress`` rejects it, and a blocklist must not guess. Short forms (``1.2.3``) and hex
  (``0x7f.0.0.1``) are rejected too.
* IPv6 follows RFC 4291 text forms: ``::`` once, 1-4 hex digits per group, an IPv4 tail
  (``::ffff:192.0.2.1``). Zone indexes (``fe80::1%eth0``) are rejected: they name an interface,
  not a network. IPv4-mapped addresses stay IPv6 values (that is what they are on the wire).
* Prefix lengths are decimal (``/024`` is 24, as ``ipaddress`` and ``iprange`` read it). An IPv4
  CIDR may give a contiguous dotted netmask instead (``10.0.0.0/255.0.0.0``), as ``iprange`` does.
* Formatting is canonical: IPv4 dotted decimal, IPv6 RFC 5952 (lower case, longest zero run
  compressed, first on a tie, never a single group); IPv4-mapped IPv6 is printed in hex.
"""

from __future__ import annotations

import re
from typing import Final, Literal, NamedTuple

from egressguard.errors import InputError

__all__ = [
    "MAX_PREFIX",
    "Cidr",
    "CidrError",
    "Family",
    "format_address",
    "format_cidr",
    "parse_address",
    "parse_cidr",
]

#: An address family: 4 or 6.
Family = Literal[4, 6]

#: Address width in bits per family.
MAX_PREFIX: Final[dict[int, int]] = {4: 32, 6: 128}

_V4_RE: Final = re.compile(r"([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})")
_HEX_GROUP_RE: Final = re.compile(r"[0-9A-Fa-f]{1,4}")
_DECIMAL_RE: Final = re.compile(r"[0-9]{1,3}")


class CidrError(InputError, ValueError):
    """A string is not an address or CIDR, or a range is not valid for its family.

    It is an ``InputError`` (exit code 1, user input) and a ``ValueError`` (what Python code
    expects from a parser). ``issue`` holds the located parse issue when the error comes from a
    bulk parse in strict mode.
    """

    def __init__(self, message: str, *, hint: str | None = None, issue: object = None) -> None:
        super().__init__(message, hint=hint)
        self.issue = issue


class Cidr(NamedTuple):
    """One network: ``family`` (4 or 6), ``network`` (an int, host bits zero), ``prefixlen``.

    Tuples order by family, then network, then prefix length, which is the order ``cidrs()``
    returns. ``str()`` always includes the prefix (``192.0.2.7/32``).
    """

    family: Family
    network: int
    prefixlen: int

    @property
    def first(self) -> int:
        """The lowest address as an int (the network address)."""
        return self.network

    @property
    def last(self) -> int:
        """The highest address as an int (the broadcast address in IPv4 terms)."""
        return self.network | ((1 << (MAX_PREFIX[self.family] - self.prefixlen)) - 1)

    @property
    def num_addresses(self) -> int:
        return 1 << (MAX_PREFIX[self.family] - self.prefixlen)

    def contains(self, family: int, address: int) -> bool:
        """Whether the address (an int of the given family) lies in this network."""
        return family == self.family and self.network <= address <= self.last

    def __str__(self) -> str:
        return f"{format_address(self.family, self.network)}/{self.prefixlen}"

    def __repr__(self) -> str:
        return f"Cidr({str(self)!r})"


def _v4_value(text: str) -> int | None:
    m = _V4_RE.fullmatch(text)
    if m is None:
        return None
    value = 0
    for octet in m.groups():
        if len(octet) > 1 and octet[0] == "0":
            raise CidrError(
                f"leading zero in IPv4 octet {octet!r} of {text!r}",
                hint="inet_aton would read it as octal; write the octet in plain decimal",
            )
        n = int(octet)
        if n > 255:
            raise CidrError(f"IPv4 octet {octet} out of range 0-255 in {text!r}")
        value = (value << 8) | n
    return value


def _v6_value(text: str) -> int:
    if "%" in text:
        raise CidrError(
            f"IPv6 zone index not allowed in {text!r}",
            hint="a zone names an interface, not a network; drop the %... part",
        )
    if not text.isascii() or ":" not in text:
        raise CidrError(f"not an IP address: {text!r}")
    tail: list[int] = []
    body = text
    if "." in text:
        # An IPv4 tail (RFC 4291 2.2 form 3) supplies the last two groups.
        cut = text.rfind(":")
        v4 = _v4_value(text[cut + 1 :])
        if v4 is None:
            raise CidrError(f"not an IPv6 address (bad IPv4 tail): {text!r}")
        tail = [v4 >> 16, v4 & 0xFFFF]
        body = text[: cut + 1]
        # Keep "::" intact when it immediately precedes the IPv4 tail ("::ffff:1.2.3.4" keeps
        # "::ffff:", "::1.2.3.4" keeps "::"); otherwise drop the separating colon.
        body = body if body.endswith("::") else body[:-1]
    if body.count("::") > 1:
        raise CidrError(f"'::' appears more than once in {text!r}")
    groups: list[int] = []
    if "::" in body:
        head, rest = body.split("::")
        left = head.split(":") if head else []
        right = rest.split(":") if rest else []
        fill = 8 - len(tail) - len(left) - len(right)
        if fill < 1:
            raise CidrError(f"too many groups for '::' in {text!r}")
        parts: list[str | None] = [*left, *([None] * fill), *right]
    else:
        parts = list(body.split(":")) if body else []
        if len(parts) + len(tail) != 8:
            raise CidrError(f"not an IPv6 address (needs 8 groups or '::'): {text!r}")
    for part in parts:
        if part is None:
            groups.append(0)
        elif _HEX_GROUP_RE.fullmatch(part):
            groups.append(int(part, 16))
        else:
            raise CidrError(f"bad IPv6 group {part!r} in {text!r}")
    value = 0
    for g in (*groups, *tail):
        value = (value << 16) | g
    return value


def parse_address(text: str) -> tuple[Family, int]:
    """``"192.0.2.1"`` → ``(4, 3221225985)``; IPv6 likewise. Raises :class:`CidrError`."""
    v4 = _v4_value(text)
    if v4 is not None:
        return 4, v4
    if ":" in text:
        return 6, _v6_value(text)
    raise CidrError(f"not an IP address: {text!r}")


def _prefix(text: str, family: Family, whole: str) -> int:
    if _DECIMAL_RE.fullmatch(text):
        n = int(text)
        if n > MAX_PREFIX[family]:
            raise CidrError(f"prefix length /{text} out of range for IPv{family} in {whole!r}")
        return n
    if family == 4 and "." in text:
        mask = _v4_value(text)
        if mask is not None:
            ones = bin(mask).count("1")
            if mask == ((1 << 32) - 1) ^ ((1 << (32 - ones)) - 1):
                return ones
        raise CidrError(f"invalid netmask {text!r} in {whole!r}")
    raise CidrError(f"invalid prefix length {text!r} in {whole!r}")


def parse_cidr(text: str, *, strict: bool = False) -> Cidr:
    """``"192.0.2.0/24"`` → ``Cidr(4, ..., 24)``; a bare address is a /32 or /128.

    Host bits (``192.0.2.7/24``) are cleared unless ``strict`` is true, in which case they
    raise :class:`CidrError` (like ``ipaddress.ip_network(strict=True)``).
    """
    addr, slash, plen = text.partition("/")
    family, value = parse_address(addr)
    width = MAX_PREFIX[family]
    prefixlen = _prefix(plen, family, text) if slash else width
    network = value & ~((1 << (width - prefixlen)) - 1)
    if strict and network != value:
        raise CidrError(
            f"host bits set in {text!r}",
            hint=f"the network is {format_address(family, network)}/{prefixlen}",
        )
    return Cidr(family, network, prefixlen)


def format_address(family: int, value: int) -> str:
    """The canonical text of an address (RFC 5952 for IPv6)."""
    if family == 4:
        return f"{value >> 24}.{(value >> 16) & 255}.{(value >> 8) & 255}.{value & 255}"
    groups = [(value >> shift) & 0xFFFF for shift in range(112, -16, -16)]
    # Longest run of zero groups, length >= 2, first one on a tie (RFC 5952 4.2).
    best_at, best_len, run_at, run_len = -1, 1, -1, 0
    for i, g in enumerate(groups):
        if g == 0:
            if run_len == 0:
                run_at = i
            run_len += 1
            if run_len > best_len:
                best_at, best_len = run_at, run_len
        else:
            run_len = 0
    if best_at < 0:
        return ":".join(f"{g:x}" for g in groups)
    head = ":".join(f"{g:x}" for g in groups[:best_at])
    tail = ":".join(f"{g:x}" for g in groups[best_at + best_len :])
    return f"{head}::{tail}"


def format_cidr(family: int, network: int, prefixlen: int, *, bare_host: bool = False) -> str:
    """``a.b.c.d/n``; with ``bare_host`` a /32 (/128) prints as the bare address."""
    text = format_address(family, network)
    if bare_host and prefixlen == MAX_PREFIX[family]:
        return text
    return f"{text}/{prefixlen}"
