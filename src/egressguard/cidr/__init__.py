"""The CIDR engine: canonical address sets over integer ranges, bulk parsing, lookups.

Modules (import them, or the names re-exported here):

* :mod:`~egressguard.cidr.addresses` - one address or CIDR: ``parse_address``, ``parse_cidr``,
  ``format_address``, ``format_cidr``, the ``Cidr`` value and ``CidrError`` (pure Python).
* :mod:`~egressguard.cidr.sets` - ``CidrSet`` (one family) and ``AddressSet`` (both), immutable
  and canonical, with union, intersection, difference, containment and the minimal CIDR list.
* :mod:`~egressguard.cidr.parse` - ``parse.parse``/``parse_many``: address lists (addresses, CIDRs,
  ranges, comments) to an ``AddressSet`` plus located ``ParseIssue`` values; NumPy-fast.
* :mod:`~egressguard.cidr.lookup` - ``ProvenanceIndex``: which tagged sets hold an address and
  through which CIDR.

``egressguard.cidr.parse`` is the module (call ``parse.parse(data)``); its other public names
are re-exported here. The NumPy-backed names are loaded on first use, so
``egressguard.cidr.addresses`` alone stays free of NumPy for callers that only need single
addresses.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from egressguard.cidr.addresses import (
        Cidr,
        CidrError,
        Family,
        format_address,
        format_cidr,
        parse_address,
        parse_cidr,
    )
    from egressguard.cidr.lookup import Match, ProvenanceIndex
    from egressguard.cidr.parse import ParseIssue, ParseResult, parse_line, parse_many
    from egressguard.cidr.sets import AddressSet, CidrSet, union_all

__all__ = [
    "AddressSet",
    "Cidr",
    "CidrError",
    "CidrSet",
    "Family",
    "Match",
    "ParseIssue",
    "ParseResult",
    "ProvenanceIndex",
    "format_address",
    "format_cidr",
    "parse_address",
    "parse_cidr",
    "parse_line",
    "parse_many",
    "union_all",
]

_HOME = {
    "Cidr": "addresses",
    "CidrError": "addresses",
    "Family": "addresses",
    "format_address": "addresses",
    "format_cidr": "addresses",
    "parse_address": "addresses",
    "parse_cidr": "addresses",
    "AddressSet": "sets",
    "CidrSet": "sets",
    "union_all": "sets",
    "ParseIssue": "parse",
    "ParseResult": "parse",
    "parse_line": "parse",
    "parse_many": "parse",
    "Match": "lookup",
    "ProvenanceIndex": "lookup",
}


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module 'egressguard.cidr' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"egressguard.cidr.{home}"), name)
    globals()[name] = value
    return value
