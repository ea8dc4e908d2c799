"""What every feed and geo parser returns, and the small helpers all of them share.

A parser turns bytes into a ``ParsedFeed``: the networks it found (per *tag*: the empty tag for
a threat feed, an ISO country code for geo data, so a lookup can say which country holds an
address), how many entries it accepted and deliberately skipped, every rejected line as a
counted ``Issue`` with its line number (the first ``MAX_KEPT_ISSUES`` are kept verbatim), and
what the feed says about itself (``FeedMeta``: its own date and declared entry count).

Bad *lines* are issues, never exceptions (CONVENTIONS §10). A bad *file* — an HTML error page,
binary garbage, a missing completeness trailer, a declared count that does not match — raises
``FeedFormatError``: nothing in it can be trusted, and the caller falls back to the last good
copy. Whether "0 entries" or "too many issues" is acceptable is the caller's policy
(``app.sources``), because it depends on the source (``allow_empty``, ``max_invalid``).
"""

from __future__ import annotations

import gzip
import io
import json
import tarfile
import zipfile
import zlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from egressguard.cidr.addresses import CidrError
from egressguard.cidr.parse import ParseResult, parse_line
from egressguard.cidr.parse import parse as parse_list
from egressguard.cidr.sets import AddressSet, CidrSet, union_all
from egressguard.errors import SourceError

__all__ = [
    "MAX_KEPT_ISSUES",
    "Blob",
    "Collector",
    "FeedFormatError",
    "FeedMeta",
    "Issue",
    "ParsedFeed",
    "decode_text",
    "expand_archives",
    "numbered_lines",
    "pack_tar",
    "parse_list",
    "union_sets",
    "utc_date",
]

#: How many issues a result keeps verbatim; the rest are only counted.
MAX_KEPT_ISSUES = 100


class FeedFormatError(SourceError):
    """The whole file is unusable: not a list, incomplete, or inconsistent with itself."""


@dataclass(frozen=True, slots=True)
class Issue:
    """One rejected (or normalised) line. ``line`` is 1-based; 0 means the file as a whole."""

    line: int
    message: str
    text: str = ""
    file: str = ""

    def __str__(self) -> str:
        shown = f": {self.text!r}" if self.text else ""
        where = f"{self.file}:{self.line}" if self.file else f"line {self.line}"
        return f"{where}: {self.message}{shown}"

    def to_json(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "message": self.message, "text": self.text}


@dataclass(frozen=True, slots=True)
class Blob:
    """One input file of a (geo) source: its name (file name or URL path) and bytes."""

    name: str
    data: bytes


@dataclass(frozen=True, slots=True)
class FeedMeta:
    """What the feed says about itself.

    ``date`` is the feed's own timestamp as ISO 8601 UTC when it could be read (FireHOL
    ``Source File Date``, Spamhaus ``timestamp``, Feodo ``Last updated``, RIR serial);
    ``declared`` is the entry count the feed announces (it has been checked when set);
    ``extra`` holds other header facts worth showing (maintainer, version, dated file name).
    """

    date: str | None = None
    declared: int | None = None
    extra: Mapping[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"date": self.date, "declared": self.declared, "extra": dict(self.extra)}


@dataclass(frozen=True, slots=True)
class ParsedFeed:
    """A parser's result. ``by_tag`` maps ``""`` (plain feeds) or ISO codes (geo) to addresses.

    ``entries`` counts accepted entries (lines, JSON records, CSV rows, RIR records);
    ``skipped`` counts entries left out on purpose (unassigned space, ``-`` rows, statuses
    other than allocated/assigned); ``issue_count`` counts rejected lines, of which ``issues``
    keeps the first ``MAX_KEPT_ISSUES``; ``notes`` are lines accepted with a remark (host bits
    set, IPv4-mapped IPv6), counted in ``note_count``.
    """

    format: str
    by_tag: Mapping[str, AddressSet]
    entries: int
    skipped: int = 0
    issues: tuple[Issue, ...] = ()
    issue_count: int = 0
    notes: tuple[Issue, ...] = ()
    note_count: int = 0
    meta: FeedMeta = field(default_factory=FeedMeta)

    @property
    def addresses(self) -> AddressSet:
        """Every address of every tag."""
        return union_sets(self.by_tag.values())

    @property
    def tags(self) -> list[str]:
        return sorted(self.by_tag)

    def to_bytes(self) -> bytes:
        """A compact JSON form (ranges, counts, issues, metadata) for the state directory's
        parse cache, so an unchanged download (304) is not parsed again."""
        doc = {
            "format": self.format,
            "entries": self.entries,
            "skipped": self.skipped,
            "issue_count": self.issue_count,
            "issues": [i.to_json() for i in self.issues],
            "note_count": self.note_count,
            "notes": [i.to_json() for i in self.notes],
            "meta": self.meta.to_json(),
            "by_tag": {
                tag: {"v4": s.v4.ranges(), "v6": s.v6.ranges()} for tag, s in self.by_tag.items()
            },
        }
        return json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> ParsedFeed:
        """Inverse of ``to_bytes``; raises ``ValueError`` on anything else."""
        doc = json.loads(data)
        try:
            by_tag = {
                tag: AddressSet(
                    CidrSet.from_ranges(4, [(a, b) for a, b in sets["v4"]]),
                    CidrSet.from_ranges(6, [(a, b) for a, b in sets["v6"]]),
                )
                for tag, sets in doc["by_tag"].items()
            }
            meta = doc["meta"]
            return cls(
                format=doc["format"],
                by_tag=by_tag,
                entries=doc["entries"],
                skipped=doc["skipped"],
                issues=tuple(Issue(**i) for i in doc["issues"]),
                issue_count=doc["issue_count"],
                notes=tuple(Issue(**i) for i in doc["notes"]),
                note_count=doc["note_count"],
                meta=FeedMeta(meta["date"], meta["declared"], dict(meta["extra"])),
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"not a cached parse: {exc}") from exc


def union_sets(items: Iterable[AddressSet]) -> AddressSet:
    """Union of many address sets in one sort per family (chained ``|`` is quadratic)."""
    sets = list(items)
    if not sets:
        return AddressSet()
    if len(sets) == 1:
        return sets[0]
    return AddressSet(union_all([s.v4 for s in sets]), union_all([s.v6 for s in sets]))


def _build(family: int, ranges: list[tuple[int, int]], sets: list[CidrSet]) -> CidrSet:
    base = CidrSet.from_ranges(family, ranges) if ranges else CidrSet.empty(family)
    return union_all([base, *sets]) if sets else base


class Collector:
    """Accumulates addresses per tag, counted issues and notes while a parser walks its input.

    Ranges (``add``) are gathered as plain tuples and turned into sets once, in ``finish``;
    whole parsed lists (``add_parsed``, the CIDR engine's fast bulk parser) are unioned in.
    """

    def __init__(self) -> None:
        self._ranges: dict[str, tuple[list[tuple[int, int]], list[tuple[int, int]]]] = {}
        self._sets: dict[str, list[AddressSet]] = {}
        self.entries = 0
        self.skipped = 0
        self.issues: list[Issue] = []
        self.issue_count = 0
        self.notes: list[Issue] = []
        self.note_count = 0
        #: The file being read, stamped on issues (multi-file geo sources).
        self.file = ""

    def declare(self, tag: str) -> None:
        """Record that ``tag`` exists even if it gets no addresses (an empty country file)."""
        self._ranges.setdefault(tag, ([], []))

    def add(self, family: int, first: int, last: int, tag: str = "") -> None:
        lists = self._ranges.get(tag)
        if lists is None:
            lists = self._ranges[tag] = ([], [])
        lists[0 if family == 4 else 1].append((first, last))

    def add_line(self, number: int, text: str, tag: str = "") -> bool:
        """One entry in the list grammar of ``cidr.parse``; a bad one becomes an issue."""
        try:
            got = parse_line(text)
        except CidrError as exc:
            self.issue(number, str(exc), text)
            return False
        if got is None:
            return False
        family, first, last, note = got
        if note:
            self.note(number, note, text)
        self.add(family, first, last, tag)
        self.entries += 1
        return True

    def add_parsed(self, result: ParseResult, tag: str = "") -> None:
        """A whole list parsed by ``cidr.parse.parse``: its addresses, issues and notes."""
        self.declare(tag)
        self._sets.setdefault(tag, []).append(result.addresses)
        self.entries += result.entries
        for item in result.issues:
            self.issue(item.line, item.reason, item.text)
        for item in result.notes:
            self.note(item.line, item.reason, item.text)

    def issue(self, line: int, message: str, text: str = "") -> None:
        self.issue_count += 1
        if len(self.issues) < MAX_KEPT_ISSUES:
            self.issues.append(Issue(line, message, text[:200], self.file))

    def note(self, line: int, message: str, text: str = "") -> None:
        self.note_count += 1
        if len(self.notes) < MAX_KEPT_ISSUES:
            self.notes.append(Issue(line, message, text[:200], self.file))

    def finish(self, fmt: str, meta: FeedMeta | None = None) -> ParsedFeed:
        by_tag: dict[str, AddressSet] = {}
        for tag in sorted(set(self._ranges) | set(self._sets)):
            v4_ranges, v6_ranges = self._ranges.get(tag, ([], []))
            parsed = self._sets.get(tag, [])
            by_tag[tag] = AddressSet(
                _build(4, v4_ranges, [p.v4 for p in parsed]),
                _build(6, v6_ranges, [p.v6 for p in parsed]),
            )
        return ParsedFeed(
            format=fmt,
            by_tag=by_tag,
            entries=self.entries,
            skipped=self.skipped,
            issues=tuple(self.issues),
            issue_count=self.issue_count,
            notes=tuple(self.notes),
            note_count=self.note_count,
            meta=meta if meta is not None else FeedMeta(),
        )


_HTML_MARKERS = (b"<!doctype html", b"<html", b"<head", b"<body", b"<?xml")


def decode_text(data: bytes, *, what: str) -> str:
    """Bytes of a text feed → text, after the checks that reject a whole file.

    Gunzips transparently (``.gz`` feeds). Refuses an HTML or XML page (a captive portal, a
    provider's error page served with 200), bytes with NULs (binary garbage) and text that is
    not UTF-8. Strips a BOM; line endings are normalised by the callers' ``splitlines``.
    """
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:
            raise FeedFormatError(f"{what}: damaged gzip data: {exc}") from exc
    head = data[:1024].lstrip().lower()
    if head.startswith(_HTML_MARKERS):
        raise FeedFormatError(
            f"{what}: an HTML/XML page, not a list",
            hint="the provider answered with an error or login page; check the URL",
        )
    if b"\x00" in data:
        raise FeedFormatError(f"{what}: binary data (NUL bytes), not a text list")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FeedFormatError(
            f"{what}: not UTF-8 text (byte {exc.start}): garbage or the wrong format"
        ) from exc
    return text.removeprefix("\ufeff")


def expand_archives(blobs: Iterable[Blob], *, what: str) -> list[Blob]:
    """Replace zip and tar(.gz) blobs by their regular-file members (names kept with folders).

    Providers ship bundles (MaxMind's CSV zip, ipdeny's ``all-zones.tar.gz``) and a local
    directory is packed as a tar by ``app.sources``; other blobs pass through unchanged.
    """
    out: list[Blob] = []
    for blob in blobs:
        data = blob.data
        try:
            if data[:4] == b"PK\x03\x04":
                with zipfile.ZipFile(io.BytesIO(data)) as archive:
                    for info in archive.infolist():
                        if not info.is_dir():
                            out.append(Blob(info.filename, archive.read(info)))
                continue
            if data[:2] == b"\x1f\x8b" or data[257:262] == b"ustar":
                with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
                    for member in tar.getmembers():
                        handle = tar.extractfile(member) if member.isfile() else None
                        if handle is not None:
                            out.append(Blob(member.name, handle.read()))
                continue
        except (zipfile.BadZipFile, tarfile.TarError, OSError, EOFError, zlib.error) as exc:
            raise FeedFormatError(f"{what} {blob.name}: damaged archive: {exc}") from exc
        out.append(blob)
    return out


def pack_tar(blobs: Iterable[Blob]) -> bytes:
    """Blobs as one deterministic, uncompressed tar (sorted names, zero times and owners)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for blob in sorted(blobs, key=lambda b: b.name):
            info = tarfile.TarInfo(blob.name)
            info.size = len(blob.data)
            info.mtime = 0
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(blob.data))
    return buffer.getvalue()


def numbered_lines(text: str) -> Iterator[tuple[int, str]]:
    """``(line number, stripped line)`` for every line, CRLF-safe."""
    for number, line in enumerate(text.splitlines(), start=1):
        yield number, line.strip()


def utc_date(text: str, *formats: str) -> str | None:
    """``text`` (a feed's own date) parsed with the first matching ``strptime`` format, as ISO
    8601 UTC; None when no format matches."""
    for fmt in formats:
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=UTC).isoformat()
        except ValueError:
            continue
    return None
