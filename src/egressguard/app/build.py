"""The ``build`` use case: sources → one set per family → subtraction → safety → manifests.

::

    config ─▶ load every source (app.sources: fetch/read, verify, parse, last good copy)
           ─▶ union per family
           ─▶ subtract: spec.allow, spec.protect, built-in critical addresses,
              well-known public DNS resolvers, special-purpose ranges          (always)
           ─▶ shards (render.networksets) + policies (render.policies)
           ─▶ safety checks against the previous build                       (--force overrides)
           ─▶ files: one manifest per file, plus ``egressguard.lock``

Safety decisions (DESIGN §6), and why:

* **Critical addresses are subtracted, never refused.** Real feeds contain private and
  special-purpose ranges on purpose (FireHOL level1 lists 0/8, 10/8, 172.16/12, 192.168/16 and
  224/3), and a mirror once put 8.8.8.8 into a Feodo list. Refusing such builds would stop every
  update of a perfectly usable feed; subtracting keeps the rest of it and the summary reports
  exactly what was taken out. Subtracted: ``spec.allow``; ``spec.protect`` (pod, service and
  node CIDRs, cluster DNS, the API server); ``CRITICAL`` (Azure's 168.63.129.16, the instance
  metadata service 169.254.169.254 and AWS's IPv6 metadata and DNS addresses); ``PUBLIC_DNS``
  unless ``spec.safety.protect_public_dns`` is false; ``SPECIAL_PURPOSE`` (RFC 6890 registry
  ranges that a pod network or a node depends on). No option and no ``--force`` puts them back.
* **Refused unless ``--force``** (``SafetyError``, exit 3, with the numbers): a source or a
  family of the set shrinking by more than ``max_shrink`` against the previous build (entries or
  addresses, whichever shrank more: a truncated feed loses entries, a lost country loses
  addresses); a set covering more than ``max_coverage`` of the public address space of a family
  (the policy would be as good as a default deny); more than ``max_entries`` CIDRs per family
  (Felix's ``maxIpsetSize``); a policy set that denies all egress (``render.check_policies``).
* **Sources.** A failed source uses its last good copy (the sources use case does it; the build
  reports it). A source that has never loaded fails the build (``SourceError``, exit 4) unless
  the config marks it ``optional``.

Everything in the output is a function of the config and the source data: no timestamps, no
host names, file paths reduced to their base names. Two builds of the same input are identical
byte for byte, which is what lets a sync skip unchanged shards.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Final

from egressguard import yamlio
from egressguard.adapters.outdir import ManifestDir
from egressguard.app.config import BlocklistConfig, SourceConfig
from egressguard.app.sources import SourceLoader, SourceResult, Status
from egressguard.calico import lint
from egressguard.calico.model import Resource
from egressguard.cidr.parse import parse_line
from egressguard.cidr.sets import AddressSet, CidrSet
from egressguard.errors import EgressguardError, ManifestError, SafetyError, SourceError, UsageError
from egressguard.feeds.result import union_sets
from egressguard.render import networksets, policies
from egressguard.render.ownership import CONTENT_HASH_ANNOTATION, SOURCES_ANNOTATION

__all__ = [
    "CRITICAL",
    "LOCK_FILE",
    "PUBLIC_DNS",
    "SPECIAL_PURPOSE",
    "BuildRefused",
    "BuildResult",
    "Changes",
    "PreviousBuild",
    "SafetyCheck",
    "SourceOutcome",
    "Subtraction",
    "build",
    "read_previous",
    "write",
]

LOCK_FILE: Final = "egressguard.lock"
_LOCK_KIND: Final = "BuildLock"

#: Special-purpose ranges a cluster depends on (IANA IPv4/IPv6 Special-Purpose Address
#: Registries, RFC 6890 and the RFCs named). Documentation ranges (192.0.2.0/24, ...) are not
#: here: nothing depends on reaching them, and tests and labs use them as "the internet".
SPECIAL_PURPOSE: Final[tuple[tuple[str, str], ...]] = (
    ("0.0.0.0/8", "'this network' (RFC 791)"),
    ("10.0.0.0/8", "private (RFC 1918)"),
    ("100.64.0.0/10", "shared address space, CGNAT and some pod networks (RFC 6598)"),
    ("127.0.0.0/8", "loopback (RFC 1122)"),
    ("169.254.0.0/16", "link-local: instance metadata, node-local DNS (RFC 3927)"),
    ("172.16.0.0/12", "private (RFC 1918)"),
    ("192.0.0.0/24", "IETF protocol assignments (RFC 6890)"),
    ("192.168.0.0/16", "private (RFC 1918)"),
    ("224.0.0.0/4", "multicast (RFC 5771)"),
    ("240.0.0.0/4", "reserved, and the limited broadcast address (RFC 1112, RFC 919)"),
    ("::/128", "unspecified (RFC 4291)"),
    ("::1/128", "loopback (RFC 4291)"),
    ("::ffff:0:0/96", "IPv4-mapped (RFC 4291)"),
    ("64:ff9b::/96", "NAT64 well-known prefix (RFC 6052)"),
    ("64:ff9b:1::/48", "local-use NAT64 (RFC 8215)"),
    ("fc00::/7", "unique local (RFC 4193)"),
    ("fe80::/10", "link-local (RFC 4291)"),
    ("ff00::/8", "multicast (RFC 4291)"),
)

#: Addresses whose loss breaks a node or a cloud platform (lint's table, as pairs).
CRITICAL: Final[tuple[tuple[str, str], ...]] = tuple(lint.ALWAYS_CRITICAL.items())

#: Well-known public DNS resolvers (Google, Cloudflare, Quad9, OpenDNS), often a cluster DNS's
#: upstream; ``spec.safety.protect_public_dns: false`` lets a blocklist contain them.
PUBLIC_DNS: Final[tuple[str, ...]] = (
    "8.8.8.8",
    "8.8.4.4",
    "1.1.1.1",
    "1.0.0.1",
    "9.9.9.9",
    "149.112.112.112",
    "208.67.222.222",
    "208.67.220.220",
    "2001:4860:4860::8888",
    "2001:4860:4860::8844",
    "2606:4700:4700::1111",
    "2606:4700:4700::1001",
    "2620:fe::fe",
    "2620:fe::9",
)

_PUBLIC_V6: Final = "2000::/3"
_FAMILIES: Final = (4, 6)
#: How many CIDRs of each subtraction the summary lists (the counts are always complete).
_SHOWN: Final = 50


# --------------------------------------------------------------------------------------------
# values


@dataclass(frozen=True, slots=True)
class Counts:
    """Size of one family of a set: canonical CIDRs and addresses."""

    entries: int = 0
    addresses: int = 0

    @classmethod
    def of(cls, cidrs: CidrSet) -> Counts:
        return cls(cidrs.cidr_count, cidrs.address_count)

    def to_json(self) -> dict[str, Any]:
        # IPv6 address counts exceed what JSON readers hold exactly: a string
        return {"entries": self.entries, "addresses": str(self.addresses)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Counts:
        return cls(int(data.get("entries", 0)), int(data.get("addresses", 0)))


@dataclass(frozen=True, slots=True)
class SourceOutcome:
    """One source in this build: what it loaded and what is left of it after subtraction."""

    config: SourceConfig
    result: SourceResult
    contributes: AddressSet
    removed: AddressSet

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def emptied(self) -> bool:
        """The subtraction took every address this source had."""
        return bool(self.result.addresses) and not self.contributes

    def version(self) -> dict[str, Any]:
        """Which version of the source went in: a digest of what it contributed (its canonical
        address set, so reordered or re-commented input is the same version) and the feed's
        own dates. Goes into the ``egressguard.io/sources`` annotation."""
        res = self.result
        out: dict[str, Any] = {"name": self.name, "kind": res.kind}
        if res.status is Status.FAILED:
            out["missing"] = True
            return out
        text = res.addresses.to_text()
        out["digest"] = "sha256:" + hashlib.sha256(text.encode()).hexdigest()
        dates = sorted({p.feed_date for p in res.parts if p.feed_date})
        if dates:
            out["dates"] = dates
        return out

    def downloads(self) -> list[dict[str, Any]]:
        """Each part as fetched or read: location, SHA-256 of the raw bytes, the feed's date
        (recorded in the lock, for audits: which exact download was used)."""
        out = []
        for part in self.result.parts:
            entry: dict[str, Any] = {
                "location": _shown_location(part.location),
                "status": "missing" if part.status is Status.FAILED else "ok",
            }
            if part.sha256:
                entry["sha256"] = part.sha256
            if part.feed_date:
                entry["date"] = part.feed_date
            out.append(entry)
        return out


def _shown_location(location: str) -> str:
    """URLs (already redacted) as they are; local paths by base name, so the output does not
    depend on where the data sits on the build machine."""
    if "://" in location:
        return location
    return ",".join(os.path.basename(p) for p in location.split(","))


@dataclass(frozen=True, slots=True)
class Subtraction:
    """What one category of never-blocked addresses removed from the union of the sources."""

    category: str
    removed: AddressSet

    def to_json(self) -> dict[str, Any]:
        cidrs = self.removed.cidr_strings()
        return {
            "category": self.category,
            "cidrs": cidrs[:_SHOWN],
            "count": len(cidrs),
            "ipv4_addresses": str(self.removed.v4.address_count),
            "ipv6_addresses": str(self.removed.v6.address_count),
        }


@dataclass(frozen=True, slots=True)
class SafetyCheck:
    """One safety check: ``ok`` false is a violation (refused unless forced)."""

    check: str  # shrink | coverage | size | policy
    subject: str
    ok: bool
    message: str
    value: float | None = None
    limit: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "subject": self.subject,
            "ok": self.ok,
            "message": self.message,
            "value": self.value,
            "limit": self.limit,
        }


@dataclass(frozen=True, slots=True)
class Changes:
    """Files of this build against the previous one in the same directory (lock excluded)."""

    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    unchanged: tuple[str, ...] = ()

    @property
    def any(self) -> bool:
        return bool(self.added or self.removed or self.changed)

    def to_json(self) -> dict[str, Any]:
        return {
            "added": list(self.added),
            "removed": list(self.removed),
            "changed": list(self.changed),
            "unchanged": len(self.unchanged),
        }


@dataclass(frozen=True)
class PreviousBuild:
    """The build already in the output directory: its files and its lock."""

    files: Mapping[str, bytes]
    lock: Mapping[str, Any] | None

    def family_counts(self) -> dict[int, Counts]:
        """Entries and addresses per family of the previous set. Read from the lock when the
        lock matches the files byte for byte, else counted from the shard manifests."""
        if self.lock is not None and self._lock_matches():
            fams = self.lock.get("families") or {}
            return {f: Counts.from_json(fams.get(f"ipv{f}") or {}) for f in _FAMILIES}
        return self._count_manifests()

    def source_counts(self, name: str) -> dict[int, Counts] | None:
        if self.lock is None:
            return None
        for src in self.lock.get("sources") or ():
            if src.get("name") == name and not src.get("missing"):
                return {f: Counts.from_json(src.get(f"ipv{f}") or {}) for f in _FAMILIES}
        return None

    def _lock_matches(self) -> bool:
        recorded = (self.lock or {}).get("files") or {}
        present = {name for name in self.files if name != LOCK_FILE}
        if set(recorded) != present:
            return False
        return all(_sha(self.files[name]) == digest for name, digest in recorded.items())

    def _count_manifests(self) -> dict[int, Counts]:
        ranges: dict[int, list[tuple[int, int]]] = {4: [], 6: []}
        for name, data in sorted(self.files.items()):
            if not name.endswith((".yaml", ".yml")):
                continue
            try:
                docs = yamlio.load_text(data.decode("utf-8"), name)
            except (ManifestError, UnicodeDecodeError):
                continue
            for doc in docs:
                if not isinstance(doc.data, Mapping) or doc.data.get("kind") != "GlobalNetworkSet":
                    continue
                nets = (doc.data.get("spec") or {}).get("nets") or ()
                for text in nets:
                    try:
                        got = parse_line(str(text))
                    except EgressguardError:
                        continue
                    if got is not None:
                        ranges[got[0]].append((got[1], got[2]))
        return {f: Counts.of(CidrSet.from_ranges(f, ranges[f])) for f in _FAMILIES}


@dataclass(frozen=True)
class BuildResult:
    """Everything one build produced. ``files`` is what goes into the output directory (file
    name → bytes, in apply order, the lock last); ``manifests`` the same objects as dicts."""

    config: BlocklistConfig
    sources: tuple[SourceOutcome, ...]
    addresses: AddressSet
    subtractions: tuple[Subtraction, ...]
    shards: tuple[networksets.Shard, ...]
    manifests: tuple[dict[str, Any], ...]
    files: Mapping[str, bytes]
    checks: tuple[SafetyCheck, ...]
    forced: bool = False
    changes: Changes | None = None
    warnings: tuple[str, ...] = ()

    @property
    def violations(self) -> tuple[SafetyCheck, ...]:
        return tuple(c for c in self.checks if not c.ok)

    def stream(self) -> str:
        """All manifests as one multi-document YAML text (the files concatenated)."""
        return "".join(
            data.decode("utf-8") for name, data in self.files.items() if name != LOCK_FILE
        )

    def to_json(self) -> dict[str, Any]:
        fams = {}
        for f in _FAMILIES:
            counts = Counts.of(self.addresses[f])
            fams[f"ipv{f}"] = {
                **counts.to_json(),
                "shards": sum(1 for s in self.shards if s.family == f),
            }
        return {
            "blocklist": self.config.name,
            "config": self.config.file,
            "api": self.config.api_version,
            "mode": self.config.policy.mode,
            "ok": not self.violations or self.forced,
            "forced": self.forced and bool(self.violations),
            "sources": [_source_json(o) for o in self.sources],
            "subtracted": [s.to_json() for s in self.subtractions if s.removed],
            "families": fams,
            "shards": [
                {
                    "name": s.name,
                    "family": s.family,
                    "range": s.range,
                    "entries": len(s.nets),
                    "file": _file_name("GlobalNetworkSet", s.name),
                    "bytes": len(self.files[_file_name("GlobalNetworkSet", s.name)]),
                }
                for s in self.shards
            ],
            "objects": [
                {
                    "kind": m["kind"],
                    "name": m["metadata"]["name"],
                    "file": _file_name(m["kind"], m["metadata"]["name"]),
                    "hash": m["metadata"]["annotations"].get(CONTENT_HASH_ANNOTATION),
                }
                for m in self.manifests
            ],
            "checks": [c.to_json() for c in self.checks],
            "changes": self.changes.to_json() if self.changes is not None else None,
            "warnings": list(self.warnings),
        }

    def summary_lines(self) -> list[str]:
        """The human summary (the CLI prints it on stderr)."""
        cfg = self.config
        lines = []
        fam_text = []
        for f in _FAMILIES:
            n = sum(1 for s in self.shards if s.family == f)
            cidrs = self.addresses[f].cidr_count
            fam_text.append(f"IPv{f} {cidrs:,} CIDRs in {n} shard{'s' if n != 1 else ''}")
        lines.append(
            f"blocklist {cfg.name}: {len(self.sources)} source"
            f"{'s' if len(self.sources) != 1 else ''}; {', '.join(fam_text)}; "
            f"{len(self.manifests)} objects ({cfg.policy.mode} mode, {cfg.api_version})"
        )
        for o in self.sources:
            res = o.result
            line = (
                f"  source {o.name}: {res.status}, IPv4 {res.addresses.v4.cidr_count:,} / "
                f"IPv6 {res.addresses.v6.cidr_count:,} CIDRs"
            )
            if o.removed:
                n = o.removed.cidr_count
                line += f", {n:,} CIDR{'s' if n != 1 else ''} subtracted"
            if res.reason and res.status is not Status.FRESH:
                line += f" ({res.reason})"
            lines.append(line)
        for sub in self.subtractions:
            if sub.removed:
                shown = sub.removed.cidr_strings()
                more = f" and {len(shown) - 8} more" if len(shown) > 8 else ""
                lines.append(f"  subtracted ({sub.category}): {', '.join(shown[:8])}{more}")
        for check in self.checks:
            if not check.ok:
                tag = "FORCED" if self.forced else "REFUSED"
                lines.append(f"  {tag} {check.check}: {check.message}")
        for warning in self.warnings:
            lines.append(f"  warning: {warning}")
        if self.changes is not None:
            ch = self.changes
            lines.append(
                f"  changes: {len(ch.added)} added, {len(ch.changed)} changed, "
                f"{len(ch.removed)} removed, {len(ch.unchanged)} unchanged"
            )
        return lines


class BuildRefused(SafetyError):
    """A safety check failed and ``force`` was not given; ``result`` holds the whole build."""

    def __init__(self, result: BuildResult) -> None:
        bad = result.violations
        more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        super().__init__(
            f"build refused: {bad[0].message}{more}",
            hint="nothing was written; if this is intended, rerun with --force",
        )
        self.result = result


def _source_json(o: SourceOutcome) -> dict[str, Any]:
    res = o.result
    return {
        "name": o.name,
        "kind": res.kind,
        "status": str(res.status),
        "reason": res.reason,
        "optional": o.config.optional,
        "entries": res.entries,
        "issues": res.issue_count,
        "ipv4": Counts.of(res.addresses.v4).to_json(),
        "ipv6": Counts.of(res.addresses.v6).to_json(),
        "contributes": {
            "ipv4": Counts.of(o.contributes.v4).to_json(),
            "ipv6": Counts.of(o.contributes.v6).to_json(),
        },
        "subtracted": o.removed.cidr_count,
        "emptied": o.emptied,
        "countries": sorted(res.by_country),
        "missing_countries": list(res.missing_countries),
        "version": o.version(),
    }


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


_FILE_PREFIX: Final = {"Tier": "00-tier", "GlobalNetworkSet": "10-globalnetworkset"}


def _file_name(kind: str, name: str) -> str:
    """Lexical order is apply order (``kubectl apply -f DIR`` reads files sorted): the tier,
    then the sets, then the policies that use them."""
    prefix = _FILE_PREFIX.get(kind, "20-" + kind.lower())
    return f"{prefix}-{name}.yaml"


# --------------------------------------------------------------------------------------------
# the previous build


def read_previous(outdir: ManifestDir, blocklist: str) -> PreviousBuild | None:
    """The previous build in ``outdir``, or ``None`` when the directory is missing or empty.

    Refuses (``UsageError``) a directory egressguard did not write (no lock but other files),
    one holding another blocklist's build, or one where files were added since the build:
    replacing it would delete them. Edited build files are fine (they are rewritten).
    """
    files = outdir.read()
    if not files:
        return None
    raw = files.get(LOCK_FILE)
    if raw is None:
        raise UsageError(
            f"{outdir.location}: holds files egressguard did not write (no {LOCK_FILE}); "
            "a build replaces the whole directory",
            hint="write the build to an empty or new directory",
        )
    try:
        lock = json.loads(raw)
    except ValueError as exc:
        raise UsageError(f"{outdir.location}/{LOCK_FILE}: not valid JSON ({exc})") from exc
    if not isinstance(lock, Mapping) or lock.get("kind") != _LOCK_KIND:
        raise UsageError(f"{outdir.location}/{LOCK_FILE}: not an egressguard build lock")
    if lock.get("blocklist") != blocklist:
        raise UsageError(
            f"{outdir.location}: holds the build of blocklist {lock.get('blocklist')!r}, "
            f"not {blocklist!r}",
            hint="give every blocklist its own output directory",
        )
    recorded = set(lock.get("files") or {})
    strangers = sorted(set(files) - recorded - {LOCK_FILE})
    if strangers:
        shown = ", ".join(strangers[:5]) + (" ..." if len(strangers) > 5 else "")
        raise UsageError(
            f"{outdir.location}: holds files the previous build did not write ({shown}); "
            "a build replaces the whole directory",
            hint="move them elsewhere, or write the build to another directory",
        )
    return PreviousBuild(files=files, lock=lock)


# --------------------------------------------------------------------------------------------
# the build


def _meet(a: AddressSet, b: AddressSet) -> AddressSet:
    """``a & b``, skipping families where either side is empty (set operations on world-size
    IPv6 sets cost tens of milliseconds; most categories here have no IPv6 at all)."""
    return AddressSet(*(a[f] & b[f] if a[f] and b[f] else CidrSet.empty(f) for f in _FAMILIES))


def _minus(a: AddressSet, b: AddressSet) -> AddressSet:
    """``a - b``, skipping families where either side is empty."""
    return AddressSet(*(a[f] - b[f] if a[f] and b[f] else a[f] for f in _FAMILIES))


def _table(entries: Sequence[tuple[str, str]]) -> AddressSet:
    return AddressSet.of(*(cidr for cidr, _ in entries))


def _load_sources(
    config: BlocklistConfig, loader: SourceLoader
) -> list[tuple[SourceConfig, SourceResult]]:
    loaded = [(src, loader.load(src.spec)) for src in config.sources]
    failed = [(src, res) for src, res in loaded if res.status is Status.FAILED and not src.optional]
    if failed:
        detail = "; ".join(f"{src.name}: {res.reason or 'failed'}" for src, res in failed)
        raise SourceError(
            f"{len(failed)} source{'s' if len(failed) != 1 else ''} never loaded and "
            f"{'have' if len(failed) != 1 else 'has'} no last good copy: {detail}",
            hint="fix the source, or mark it optional: true in the config",
        )
    return loaded


def _subtractions(config: BlocklistConfig) -> list[tuple[str, AddressSet]]:
    cats: list[tuple[str, AddressSet]] = []
    if config.allow:
        cats.append(("allow", config.allow_set))
    for key, addresses in config.protect.by_category().items():
        cats.append((f"protect.{key}", addresses))
    cats.append(("critical", _table(CRITICAL)))
    if config.safety.protect_public_dns:
        cats.append(("public-dns", AddressSet.of(*PUBLIC_DNS)))
    cats.append(("special-purpose", _table(SPECIAL_PURPOSE)))
    return cats


def _shrink(old: Counts, new: Counts) -> float:
    shares = []
    if old.entries:
        shares.append(1 - new.entries / old.entries)
    if old.addresses:
        shares.append(1 - new.addresses / old.addresses)
    return max(0.0, *shares) if shares else 0.0


def _human(n: int) -> str:
    if n >= 10**12:  # IPv6 address counts: a power of two reads better than 1.2e+24
        return f"2^{math.log2(n):.1f}"
    for unit, size in (("G", 10**9), ("M", 10**6), ("k", 10**3)):
        if n >= size:
            return f"{n / size:.1f}{unit}"
    return str(n)


def _shrink_check(subject: str, old: Counts, new: Counts, limit: float, where: str) -> SafetyCheck:
    share = _shrink(old, new)
    numbers = (
        f"{old.entries:,} → {new.entries:,} CIDRs, {_human(old.addresses)} → "
        f"{_human(new.addresses)} addresses"
    )
    ok = share <= limit
    verb = "would shrink" if not ok else "shrinks"
    return SafetyCheck(
        "shrink",
        subject,
        ok,
        f"{subject} {verb} by {share:.1%} ({numbers}) against the previous build; "
        f"the limit is {limit:.0%} ({where})",
        round(share, 6),
        limit,
    )


def _safety_checks(
    config: BlocklistConfig,
    outcomes: Sequence[SourceOutcome],
    final: AddressSet,
    policy_objects: Sequence[Resource],
    previous: PreviousBuild | None,
) -> list[SafetyCheck]:
    checks: list[SafetyCheck] = []
    safety = config.safety
    if previous is not None:
        for o in outcomes:
            old = previous.source_counts(o.name)
            if old is None:
                continue
            limit = o.config.max_shrink if o.config.max_shrink is not None else safety.max_shrink
            own = o.config.max_shrink is not None
            where = f"{o.config.path}.max_shrink" if own else "spec.safety.max_shrink"
            for f in _FAMILIES:
                if old[f].entries or old[f].addresses:
                    new = Counts.of(o.result.addresses[f])
                    checks.append(
                        _shrink_check(f"source {o.name!r} IPv{f}", old[f], new, limit, where)
                    )
        previous_fams = previous.family_counts()
        for f in _FAMILIES:
            if previous_fams[f].entries:
                checks.append(
                    _shrink_check(
                        f"the IPv{f} set",
                        previous_fams[f],
                        Counts.of(final[f]),
                        safety.max_shrink,
                        "spec.safety.max_shrink",
                    )
                )
    special = _table(SPECIAL_PURPOSE)
    for f, universe in ((4, CidrSet.universe(4) - special.v4), (6, CidrSet(6, [_PUBLIC_V6]))):
        covered = (final[f] & universe).address_count / universe.address_count
        ok = covered <= safety.max_coverage
        checks.append(
            SafetyCheck(
                "coverage",
                f"the IPv{f} set",
                ok,
                f"the IPv{f} set covers {covered:.1%} of the public IPv{f} space; the limit is "
                f"{safety.max_coverage:.0%} (spec.safety.max_coverage)"
                + ("" if ok else ": as good as a default deny of all egress"),
                round(covered, 6),
                safety.max_coverage,
            )
        )
        count = final[f].cidr_count
        checks.append(
            SafetyCheck(
                "size",
                f"the IPv{f} set",
                count <= safety.max_entries,
                f"the IPv{f} set has {count:,} CIDRs; the limit is {safety.max_entries:,} "
                "(spec.safety.max_entries; Felix's maxIpsetSize is 1,048,576 per selector)",
                count,
                safety.max_entries,
            )
        )
    for finding in policies.check_policies(policy_objects):
        checks.append(SafetyCheck("policy", "policies", False, finding))
    return checks


def _cidr_text(addresses: AddressSet) -> dict[str, str]:
    return {f"ipv{f}": " ".join(addresses[f].cidr_strings()) for f in _FAMILIES}


def _provenance(o: SourceOutcome) -> dict[str, Any]:
    """What this source put into the final set, as canonical CIDR lists: per country for geo
    sources, else as a whole. ``logs parse --blocklist`` reads it to say which feed and which
    country hold a blocked destination (the shards only say which blocklist). Recorded in the
    lock rather than in a file of its own: every reader of the directory (kubectl apply -f,
    validate, lint, sync) already skips the lock, and it stays a pure function of the sources."""
    res = o.result
    if res.status is Status.FAILED:
        return {}
    if res.by_country:
        countries = {}
        for code, addresses in sorted(res.by_country.items()):
            left = _minus(addresses, o.removed) if o.removed else addresses
            if left:
                countries[code] = _cidr_text(left)
        return {"countries": countries}
    return {"cidrs": _cidr_text(o.contributes)}


def _lock(
    config: BlocklistConfig,
    outcomes: Sequence[SourceOutcome],
    versions: Sequence[dict[str, Any]],
    final: AddressSet,
    files: Mapping[str, bytes],
) -> bytes:
    """The lock's JSON; ``versions`` are the outcomes' ``version()``, in the same order."""
    doc = {
        "apiVersion": "egressguard.io/v1alpha1",
        "kind": _LOCK_KIND,
        "blocklist": config.name,
        "families": {f"ipv{f}": Counts.of(final[f]).to_json() for f in _FAMILIES},
        "sources": [
            {
                **version,
                "parts": o.downloads(),
                "provenance": _provenance(o),
                **{f"ipv{f}": Counts.of(o.result.addresses[f]).to_json() for f in _FAMILIES},
            }
            for o, version in zip(outcomes, versions, strict=True)
        ],
        "files": {name: _sha(data) for name, data in files.items()},
    }
    return (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode()


def _changes(previous: PreviousBuild | None, files: Mapping[str, bytes]) -> Changes | None:
    if previous is None:
        return None
    old = {k: v for k, v in previous.files.items() if k != LOCK_FILE}
    new = {k: v for k, v in files.items() if k != LOCK_FILE}
    return Changes(
        added=tuple(sorted(set(new) - set(old))),
        removed=tuple(sorted(set(old) - set(new))),
        changed=tuple(sorted(k for k in set(new) & set(old) if new[k] != old[k])),
        unchanged=tuple(sorted(k for k in set(new) & set(old) if new[k] == old[k])),
    )


def build(
    config: BlocklistConfig,
    *,
    loader: SourceLoader,
    previous: PreviousBuild | None = None,
    force: bool = False,
) -> BuildResult:
    """Build the manifests of ``config``. Nothing is written here (see ``write``).

    Raises ``SourceError`` when a non-optional source has never loaded, ``BuildRefused`` (a
    ``SafetyError``, with the whole result attached) when a safety check fails and ``force`` is
    false. With ``force`` the violations are kept in ``result.checks`` and ``forced`` is set.
    """
    loaded = _load_sources(config, loader)
    union = union_sets(res.addresses for _, res in loaded if res.ok)
    categories = _subtractions(config)
    excluded = union_sets(addresses for _, addresses in categories)
    final = _minus(union, excluded)
    subtractions = tuple(Subtraction(cat, _meet(union, addresses)) for cat, addresses in categories)
    outcomes = tuple(
        SourceOutcome(src, res, _minus(res.addresses, excluded), _meet(res.addresses, excluded))
        for src, res in loaded
    )
    # the invariant the subtraction exists for; a violation here is a bug, not a user error
    always = union_sets(a for cat, a in categories if cat != "allow")
    if _meet(final, always):
        raise SafetyError("internal error: a protected address survived the subtraction")

    warnings: list[str] = []
    for o in outcomes:
        res = o.result
        if res.status is Status.FALLBACK:
            warnings.append(f"source {o.name}: using the last good copy ({res.reason})")
        elif res.status is Status.FAILED:
            warnings.append(f"source {o.name} (optional) contributes nothing: {res.reason}")
        if o.emptied:
            warnings.append(
                f"source {o.name}: the allowlist and protected ranges remove every one of its "
                f"{res.addresses.cidr_count:,} CIDRs"
            )
        if res.missing_countries:
            warnings.append(
                f"source {o.name}: no data for countries {', '.join(res.missing_countries)}"
            )
    if not final:
        warnings.append("the set is empty: the policies block nothing")

    settings = config.policy
    # by name: the annotation and the lock list the sources alike; a version digests the whole
    # set of a source (tens of ms for a world-size one), so it is computed once for both
    by_name = sorted(outcomes, key=lambda o: o.name)
    versions = [o.version() for o in by_name]
    annotation = json.dumps(versions, sort_keys=True, separators=(",", ":"))
    settings = _with_annotations(settings, {SOURCES_ANNOTATION: annotation})
    shards, shard_manifests = networksets.render_network_sets(
        config.name,
        final,
        limits=config.shards,
        set_label=settings.set_label,
        api_version=config.api_version,
    )
    policy_objects = policies.policy_resources(settings, config.api_version)
    policy_manifests = policies.render_policies(settings, config.api_version)
    tiers = [m for m in policy_manifests if m["kind"] == "Tier"]
    rest = [m for m in policy_manifests if m["kind"] != "Tier"]
    manifests = (*tiers, *shard_manifests, *rest)

    files: dict[str, bytes] = {}
    for manifest in manifests:
        text = networksets.manifest_text(manifest).encode()
        name = _file_name(manifest["kind"], manifest["metadata"]["name"])
        if manifest["kind"] == "GlobalNetworkSet" and len(text) > config.shards.max_bytes:
            raise EgressguardError(
                f"internal error: shard {name} is {len(text)} bytes, above max_bytes "
                f"{config.shards.max_bytes}"
            )
        files[name] = text
    files = dict(sorted(files.items()))
    files[LOCK_FILE] = _lock(config, by_name, versions, final, files)

    checks = _safety_checks(config, outcomes, final, policy_objects, previous)
    result = BuildResult(
        config=config,
        sources=outcomes,
        addresses=final,
        subtractions=subtractions,
        shards=tuple(shards),
        manifests=tuple(manifests),
        files=files,
        checks=tuple(checks),
        forced=force and any(not c.ok for c in checks),
        changes=_changes(previous, files),
        warnings=tuple(warnings),
    )
    if result.violations and not force:
        raise BuildRefused(result)
    return result


def _with_annotations(
    settings: policies.PolicySettings, annotations: Mapping[str, str]
) -> policies.PolicySettings:
    return replace(settings, annotations={**settings.annotations, **annotations})


def write(result: BuildResult, outdir: ManifestDir) -> None:
    """Replace the contents of ``outdir`` with the build's files, atomically."""
    outdir.replace(result.files)
