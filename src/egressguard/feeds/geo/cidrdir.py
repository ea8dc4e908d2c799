"""Per-country CIDR files: one file per ISO code (herrbischoff ``ipv4/de.cidr``, ipdeny
``de.zone`` / ``de-aggregated.zone``), shared reference §6 and §11.

The country is the file name up to the first ``.`` or ``-`` (``us-aggregated.zone`` → US);
files whose name is not a two-letter code are skipped with a notice (``README.md``,
``LICENSE``). The family comes from each line, so IPv4 and IPv6 files may sit in one folder
or in ``ipv4/``/``ipv6/`` subfolders, or in a tar(.gz)/zip bundle (ipdeny's
``all-zones.tar.gz``). Zero-byte files are normal (ipdeny's ``aq``: no space).
Lines follow the ``plain`` grammar of ``cidr.parse`` (comments allowed; these files have none).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from egressguard.feeds.geo import normalise_code
from egressguard.feeds.result import (
    Blob,
    Collector,
    FeedMeta,
    ParsedFeed,
    decode_text,
    expand_archives,
    parse_list,
)

__all__ = ["country_of_file", "parse_cidr_dir"]

_STEM = re.compile(r"^([A-Za-z]{2})(?:[-.]|$)")


def country_of_file(name: str) -> str | None:
    """``ipv4/de.cidr`` → ``DE``; ``us-aggregated.zone`` → ``US``; ``README.md`` → None."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    m = _STEM.match(base)
    return normalise_code(m.group(1)) if m else None


def parse_cidr_dir(blobs: Sequence[Blob], options: Mapping[str, Any] | None = None) -> ParsedFeed:
    out = Collector()
    ignored: list[str] = []
    files = 0
    for blob in expand_archives(blobs, what="cidr-dir"):
        code = country_of_file(blob.name)
        if code is None:
            ignored.append(blob.name)
            continue
        files += 1
        out.file = blob.name
        out.declare(code)
        text = decode_text(blob.data, what=f"cidr-dir {blob.name}")
        out.add_parsed(parse_list(text), tag=code)
    extra = {"files": str(files)}
    if ignored:
        extra["ignored_files"] = ", ".join(sorted(ignored)[:20])
    return out.finish("cidr-dir", FeedMeta(extra=extra))
