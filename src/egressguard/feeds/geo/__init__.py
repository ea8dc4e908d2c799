"""Geo-IP providers: per-country networks from RIR statistics, MaxMind, DB-IP, IP2Location and
per-country CIDR directories, and the selection of countries from them.

Each provider module turns bytes into a ``ParsedFeed`` whose tags are ISO 3166-1 alpha-2 codes
(upper case), so that a lookup can say which country listed an address. ``select`` then keeps
the configured ``countries`` (or every country but ``exclude_countries``). Codes are the only
key: provider country *names* change between releases (pfBlockerNG ADR-64).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from egressguard.cidr.sets import AddressSet
from egressguard.feeds.result import ParsedFeed, union_sets

__all__ = ["PSEUDO_CODES", "Selection", "normalise_code", "select"]

#: Codes that are not countries: unknown/unassigned (ZZ, XX, "--"), regional registries' pools
#: (AP, EU as ipdeny lists them). They are never part of an "all countries but ..." selection.
PSEUDO_CODES = frozenset({"ZZ", "XX", "AP", "EU", "--", "A1", "A2", "O1"})

_CODE = re.compile(r"^[A-Za-z]{2}$")


def normalise_code(code: str) -> str | None:
    """``"de"`` → ``"DE"``; None when it is not a two-letter code (``-``, empty, names)."""
    code = code.strip()
    return code.upper() if _CODE.match(code) else None


@dataclass(frozen=True, slots=True)
class Selection:
    """Countries chosen from a geo result: their union, per-country sets, and notices.

    ``missing`` lists requested codes the provider has no networks for (a typo, a country with
    no address space such as AQ, or a provider that dropped it: pfBlockerNG raises a notice
    instead of silently emptying the set, and so do we).
    """

    addresses: AddressSet
    by_country: dict[str, AddressSet]
    missing: tuple[str, ...]


def select(
    parsed: ParsedFeed,
    countries: Iterable[str] | None = None,
    exclude_countries: Iterable[str] | None = None,
) -> Selection:
    """Keep ``countries`` (all real countries when None) minus ``exclude_countries``."""
    available = {tag: nets for tag, nets in parsed.by_tag.items() if tag}
    wanted: set[str]
    missing: list[str] = []
    if countries is None:
        wanted = {code for code in available if code not in PSEUDO_CODES}
    else:
        wanted = set()
        for raw in countries:
            code = normalise_code(raw) or raw
            if code in available:
                wanted.add(code)
            else:
                missing.append(code)
    for raw in exclude_countries or ():
        wanted.discard(normalise_code(raw) or raw)
    by_country = {code: available[code] for code in sorted(wanted)}
    union = union_sets(by_country.values())
    return Selection(union, by_country, tuple(sorted(set(missing))))
