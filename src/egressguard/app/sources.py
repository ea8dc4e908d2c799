"""Load one blocklist source: fetch or read it, verify, parse, and fall back to the last good copy.

This is the use case behind ``build`` for each entry of a config's ``sources:``. It never lets
a bad download shrink the output (DESIGN §6): every part of a source (a URL or file) is
checked — transport (timeouts, 5xx, size cap, HTTPS), checksum where the provider publishes one,
format integrity (trailers, declared counts, HTML pages), emptiness and the share of invalid
lines — and only a part that passes replaces the last good copy in the state directory. A part
that fails is replaced by its last good copy and the result says so.

Source spec (a mapping, e.g. from the config file; ``SourceSpec.from_dict`` checks it)::

    name: spamhaus-drop             # required, unique; names the state directory entry
    # exactly one of:
    static: [192.0.2.0/24, ...]     # inline entries
    file: /path/list.netset         # a local file ...
    url: https://host/list          # ... or a download; both need format:
    format: plain                   # plain|netset|ipset|abusech|csv|spamhaus-text|
                                    # spamhaus-json|tor-exits (feeds.registry.FORMATS)
    csv: {column: dst_ip}           # options for the format (csv: column, header, delimiter)
    geo:                            # geo-IP data, by country
      provider: rir                 # rir|maxmind-csv|maxmind-mmdb|dbip-csv|ip2location-csv|cidr-dir
      files: [...] | urls: [...]    # data files/URLs (cidr-dir: one directory or archive)
      countries: [RU, KP]           # ISO codes; omitted = every country ...
      exclude_countries: [US]       # ... but these ("all but")
      country_field: country        # MaxMind only: country|registered_country|
                                    # represented_country|any (see feeds.geo.maxmind)
      country_fallback: true        # MaxMind "country": fall back to registered_country
      checksum: auto                # auto|required|off: verify <file>.md5 (RIR) or checksum_urls
      checksum_urls: [...]          # explicit sidecars, one per URL (MaxMind ?suffix=zip.sha256)
      license_key_env: MAXMIND_LICENSE_KEY  # env var substituted for {license_key} in URLs
      account_id_env: MAXMIND_ACCOUNT_ID    # with license_key_env: HTTP Basic auth instead
    # options, all optional:
    checksum_url: https://...       # file/url sources: a published checksum of the data
    size_cap: 67108864              # bytes (default 64 MiB), streamed and aborted once over
    timeout: 30                     # seconds per attempt (overall deadline included)
    attempts: 3                     # tries for transient failures (backoff with jitter)
    insecure_http: false            # allow plain http:// (loopback tests, legacy mirrors)
    allow_empty: false              # accept a list with 0 entries (else: keep the last good)
    max_invalid: 0.01               # largest share of rejected lines before the part fails
    min_interval: 3600              # seconds between downloads (default per format: Spamhaus
                                    # 1 h, MaxMind 12 h, others 0)

Secrets never live in the spec: keys come from the environment variables it names, and URLs
are redacted wherever they are shown or stored.

The result (``SourceResult``) carries the status — ``fresh``, ``not-modified``,
``fallback-to-last-good`` (with the reason) or ``failed-no-copy`` — the addresses, per-country
sets for geo sources, counts, issues and provenance per part.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from egressguard.adapters import geodb
from egressguard.adapters.geodb import GeoFiles, LocalFiles
from egressguard.adapters.http import (
    DEFAULT_ATTEMPTS,
    DEFAULT_SIZE_CAP,
    DEFAULT_TIMEOUT,
    Fetcher,
    FetchError,
    FetchRequest,
    redact_url,
)
from egressguard.adapters.state import CopyMeta, StateStore, StoredCopy
from egressguard.cidr.parse import parse_line
from egressguard.cidr.sets import AddressSet, CidrSet
from egressguard.errors import ConfigError, EgressguardError, SourceError
from egressguard.feeds import checksums, registry
from egressguard.feeds.geo import maxmind, normalise_code
from egressguard.feeds.geo import select as select_countries
from egressguard.feeds.result import (
    MAX_KEPT_ISSUES,
    Blob,
    FeedMeta,
    Issue,
    ParsedFeed,
    pack_tar,
    union_sets,
)

__all__ = [
    "GeoSpec",
    "PartReport",
    "SourceLoader",
    "SourceResult",
    "SourceSpec",
    "Status",
]

_CHECKSUM_MODES = ("auto", "required", "off")


class Status(StrEnum):
    """How a source (or one part of it) was obtained this time."""

    FRESH = "fresh"
    NOT_MODIFIED = "not-modified"
    FALLBACK = "fallback-to-last-good"
    FAILED = "failed-no-copy"

    @property
    def refreshed(self) -> bool:
        """The source answered this time: fresh data, or the provider's "not modified"."""
        return self in (Status.FRESH, Status.NOT_MODIFIED)


_RANK = {Status.FRESH: 0, Status.NOT_MODIFIED: 0, Status.FALLBACK: 1, Status.FAILED: 2}


def _strs(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise ConfigError(f"{where}: expected a string or a list of strings")


@dataclass(frozen=True, slots=True)
class GeoSpec:
    """The ``geo:`` part of a source spec (see the module docstring)."""

    provider: str
    files: tuple[str, ...] = ()
    urls: tuple[str, ...] = ()
    countries: tuple[str, ...] | None = None
    exclude_countries: tuple[str, ...] = ()
    country_field: str = "country"
    country_fallback: bool = True
    checksum: str = "auto"
    checksum_urls: tuple[str, ...] = ()
    license_key_env: str | None = None
    account_id_env: str | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str) -> GeoSpec:
        known = set(cls.__dataclass_fields__)
        unknown = set(data) - known
        if unknown:
            hint = None
            if any("key" in k or "password" in k for k in unknown):
                hint = "secrets are read from environment variables: use license_key_env"
            raise ConfigError(f"{where}: unknown keys {sorted(unknown)}", hint=hint)
        provider = data.get("provider")
        if provider not in registry.PROVIDERS:
            raise ConfigError(
                f"{where}.provider: {provider!r} is not a geo provider",
                hint=f"one of: {', '.join(registry.PROVIDERS)}",
            )
        files, urls = _strs(data.get("files"), f"{where}.files"), _strs(data.get("urls"), where)
        if bool(files) == bool(urls):
            raise ConfigError(f"{where}: give exactly one of files: or urls:")
        countries = data.get("countries")
        excl = _strs(data.get("exclude_countries"), f"{where}.exclude_countries")
        codes = None if countries is None else _strs(countries, f"{where}.countries")
        for code in (*(codes or ()), *excl):
            if normalise_code(code) is None:
                raise ConfigError(f"{where}: {code!r} is not a two-letter ISO 3166 country code")
        field_ = str(data.get("country_field", "country"))
        if field_ not in maxmind.COUNTRY_FIELDS:
            raise ConfigError(
                f"{where}.country_field: {field_!r}",
                hint=f"one of: {', '.join(maxmind.COUNTRY_FIELDS)}",
            )
        mode = str(data.get("checksum", "auto"))
        if mode not in _CHECKSUM_MODES:
            raise ConfigError(f"{where}.checksum: {mode!r}; one of {', '.join(_CHECKSUM_MODES)}")
        sums = _strs(data.get("checksum_urls"), f"{where}.checksum_urls")
        if sums and len(sums) != len(urls):
            raise ConfigError(f"{where}.checksum_urls: one per URL ({len(urls)})")
        return cls(
            provider=str(provider),
            files=files,
            urls=urls,
            countries=tuple(normalise_code(c) or c for c in codes) if codes is not None else None,
            exclude_countries=tuple(normalise_code(c) or c for c in excl),
            country_field=field_,
            country_fallback=bool(data.get("country_fallback", True)),
            checksum=mode,
            checksum_urls=sums,
            license_key_env=data.get("license_key_env"),
            account_id_env=data.get("account_id_env"),
        )


@dataclass(frozen=True, slots=True)
class SourceSpec:
    """One source, as described in the module docstring. Build it with ``from_dict``."""

    name: str
    static: tuple[str, ...] | None = None
    file: str | None = None
    url: str | None = None
    format: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    geo: GeoSpec | None = None
    checksum_url: str | None = None
    size_cap: int = DEFAULT_SIZE_CAP
    timeout: float = DEFAULT_TIMEOUT
    attempts: int = DEFAULT_ATTEMPTS
    insecure_http: bool = False
    allow_empty: bool = False
    max_invalid: float = 0.01
    min_interval: int | None = None

    @property
    def kind(self) -> str:
        if self.static is not None:
            return "static"
        if self.geo is not None:
            return "geo"
        return "file" if self.file is not None else "url"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SourceSpec:
        name = data.get("name")
        if not isinstance(name, str) or not name:
            raise ConfigError("source: 'name' is required (a non-empty string)")
        where = f"sources[{name}]"
        kinds = [k for k in ("static", "file", "url", "geo") if k in data]
        if len(kinds) != 1:
            raise ConfigError(f"{where}: give exactly one of static:, file:, url:, geo:")
        fmt = data.get("format")
        if kinds[0] in ("file", "url") and fmt not in registry.FORMATS:
            raise ConfigError(
                f"{where}.format: {fmt!r} is not a feed format",
                hint=f"one of: {', '.join(registry.FORMATS)}",
            )
        options: dict[str, Any] = dict(data.get("options") or {})
        if isinstance(fmt, str) and isinstance(data.get(fmt), Mapping):
            options.update(data[fmt])
        geo = GeoSpec.from_dict(data["geo"], f"{where}.geo") if "geo" in data else None
        static = _strs(data["static"], f"{where}.static") if "static" in data else None
        return cls(
            name=name,
            static=static,
            file=data.get("file"),
            url=data.get("url"),
            format=fmt if isinstance(fmt, str) else None,
            options=options,
            geo=geo,
            checksum_url=data.get("checksum_url"),
            size_cap=int(data.get("size_cap", DEFAULT_SIZE_CAP)),
            timeout=float(data.get("timeout", DEFAULT_TIMEOUT)),
            attempts=int(data.get("attempts", DEFAULT_ATTEMPTS)),
            insecure_http=bool(data.get("insecure_http", False)),
            allow_empty=bool(data.get("allow_empty", False)),
            max_invalid=float(data.get("max_invalid", 0.01)),
            min_interval=int(data["min_interval"]) if "min_interval" in data else None,
        )


@dataclass(frozen=True, slots=True)
class PartReport:
    """Provenance of one part (URL or file) of a source: where it came from and how."""

    location: str
    status: Status
    reason: str | None = None
    parsed: bool = False
    fetched_at: float | None = None
    checked_at: float | None = None
    etag: str | None = None
    last_modified: str | None = None
    sha256: str | None = None
    size: int | None = None
    entries: int | None = None
    feed_date: str | None = None
    declared: int | None = None
    checksum: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass(frozen=True, slots=True)
class SourceResult:
    """What loading one source produced.

    ``addresses`` is what the source contributes (for geo: the selected countries only);
    ``by_country`` maps ISO codes to their sets (geo sources; empty otherwise), so a lookup can
    say which country an address came from. ``reason`` explains a fallback or failure (the
    parts' reasons joined). ``missing_countries`` are requested codes the data lacks.
    ``attribution`` is the licence notice the provider requires, if any.
    """

    name: str
    kind: str
    status: Status
    addresses: AddressSet
    by_country: Mapping[str, AddressSet] = field(default_factory=dict)
    reason: str | None = None
    entries: int = 0
    skipped: int = 0
    issue_count: int = 0
    issues: tuple[Issue, ...] = ()
    note_count: int = 0
    notes: tuple[Issue, ...] = ()
    parts: tuple[PartReport, ...] = ()
    missing_countries: tuple[str, ...] = ()
    attribution: str | None = None

    @property
    def ok(self) -> bool:
        """True unless the source has nothing to contribute (``failed-no-copy``)."""
        return self.status is not Status.FAILED

    def counts(self) -> dict[str, int]:
        return {
            "ipv4_cidrs": self.addresses.v4.cidr_count,
            "ipv6_cidrs": self.addresses.v6.cidr_count,
            "entries": self.entries,
            "skipped": self.skipped,
            "issues": self.issue_count,
            "notes": self.note_count,
            "countries": len(self.by_country),
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "status": str(self.status),
            "reason": self.reason,
            "counts": self.counts(),
            "issues": [i.to_json() for i in self.issues],
            "parts": [p.to_json() for p in self.parts],
            "countries": sorted(self.by_country),
            "missing_countries": list(self.missing_countries),
            "attribution": self.attribution,
        }


@dataclass(frozen=True, slots=True)
class _Part:
    key: str
    location: str  # shown and stored (redacted URL or path)
    url: str | None  # real URL (secrets substituted) for downloads
    path: str | None  # local file
    directory: bool = False
    checksum: str | None = None  # sidecar URL or path
    checksum_required: bool = False


class _PartFailure(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


FeedParser = Callable[[bytes], ParsedFeed]


class SourceLoader:
    """Loads sources with the given adapters. ``clock`` returns Unix seconds (tests pin it).

    ``formats``/``providers`` default to ``feeds.registry``; tests may wrap parsers to count
    calls. ``environ`` is where key variables are read (``os.environ`` by default).
    """

    def __init__(
        self,
        *,
        fetcher: Fetcher,
        state: StateStore,
        files: GeoFiles | None = None,
        clock: Callable[[], float] = time.time,
        formats: Mapping[str, registry.FeedFormat] | None = None,
        providers: Mapping[str, registry.GeoProvider] | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.fetcher = fetcher
        self.state = state
        self.files = files if files is not None else LocalFiles()
        self.clock = clock
        self.formats = formats if formats is not None else registry.FORMATS
        self.providers = providers if providers is not None else registry.PROVIDERS
        self.environ = environ if environ is not None else os.environ

    # -- entry points ----------------------------------------------------------------------

    def load(self, spec: SourceSpec | Mapping[str, Any]) -> SourceResult:
        if not isinstance(spec, SourceSpec):
            spec = SourceSpec.from_dict(spec)
        if spec.static is not None:
            return self._static(spec)
        try:
            parts = self._parts(spec)
            parse = self._parser(spec)
        except SourceError as err:
            return SourceResult(spec.name, spec.kind, Status.FAILED, AddressSet(), reason=str(err))
        outcomes = [self._load_part(spec, part, parse) for part in parts]
        return self._combine(spec, outcomes)

    # -- static ------------------------------------------------------------------------------

    def _static(self, spec: SourceSpec) -> SourceResult:
        ranges: dict[int, list[tuple[int, int]]] = {4: [], 6: []}
        issues: list[Issue] = []
        for number, text in enumerate(spec.static or (), start=1):
            try:
                got = parse_line(text)
            except EgressguardError as exc:
                issues.append(Issue(number, str(exc), text, "static"))
                continue
            if got is not None:
                ranges[got[0]].append((got[1], got[2]))
        addresses = AddressSet(CidrSet.from_ranges(4, ranges[4]), CidrSet.from_ranges(6, ranges[6]))
        if issues:
            reason = f"{len(issues)} invalid static entries (first: {issues[0]})"
            return SourceResult(
                spec.name,
                "static",
                Status.FAILED,
                AddressSet(),
                reason=reason,
                issue_count=len(issues),
                issues=tuple(issues),
            )
        entries = len(ranges[4]) + len(ranges[6])
        return SourceResult(spec.name, "static", Status.FRESH, addresses, entries=entries)

    # -- parts and parsers ---------------------------------------------------------------------

    def _secret(self, var: str | None, what: str) -> str | None:
        if var is None:
            return None
        value = self.environ.get(var)
        if not value:
            raise SourceError(
                f"{what}: environment variable {var} is not set",
                hint=f"export {var}=... (the key is never read from the config file)",
            )
        return value

    def _parts(self, spec: SourceSpec) -> list[_Part]:
        if spec.geo is None:
            if spec.file is not None:
                return [
                    _Part(
                        spec.name,
                        spec.file,
                        None,
                        spec.file,
                        checksum=spec.checksum_url,
                        checksum_required=spec.checksum_url is not None,
                    )
                ]
            url = spec.url or ""
            return [
                _Part(
                    spec.name,
                    redact_url(url),
                    url,
                    None,
                    checksum=spec.checksum_url,
                    checksum_required=spec.checksum_url is not None,
                )
            ]
        geo = spec.geo
        provider = self.providers[geo.provider]
        suffix = provider.checksum_suffix if geo.checksum != "off" else None
        required = geo.checksum == "required"
        key = self._secret(geo.license_key_env, f"sources[{spec.name}]")
        if geo.files:
            if not provider.per_part:
                directory = geo.provider == "cidr-dir" and len(geo.files) == 1
                return [
                    _Part(
                        spec.name,
                        ",".join(geo.files),
                        None,
                        ",".join(geo.files),
                        directory=directory,
                    )
                ]
            return [
                _Part(
                    f"{spec.name}#{i}",
                    path,
                    None,
                    path,
                    checksum=(path + suffix) if suffix else None,
                    checksum_required=required,
                )
                for i, path in enumerate(geo.files)
            ]
        if not provider.per_part and len(geo.urls) > 1:
            raise SourceError(
                f"sources[{spec.name}]: provider {geo.provider} takes one URL (an archive)"
            )
        parts = []
        for i, template in enumerate(geo.urls):
            real = template.replace("{license_key}", key) if key else template
            if geo.checksum_urls:
                sidecar: str | None = geo.checksum_urls[i]
            else:
                sidecar = template + suffix if suffix else None
            if sidecar and key:
                sidecar = sidecar.replace("{license_key}", key)
            parts.append(
                _Part(
                    spec.name if len(geo.urls) == 1 else f"{spec.name}#{i}",
                    redact_url(template),
                    real,
                    None,
                    checksum=sidecar,
                    checksum_required=required or bool(geo.checksum_urls),
                )
            )
        return parts

    def _options(self, spec: SourceSpec) -> dict[str, Any]:
        if spec.geo is not None:
            return {
                "country_field": spec.geo.country_field,
                "country_fallback": spec.geo.country_fallback,
            }
        return dict(spec.options)

    def _parser(self, spec: SourceSpec) -> Callable[[Blob], ParsedFeed]:
        options = self._options(spec)
        if spec.geo is None:
            fmt = self.formats[spec.format or ""]
            return lambda blob: fmt.parse(blob.data, options)
        provider = self.providers[spec.geo.provider]
        if provider.decoder == "mmdb":

            def from_mmdb(blob: Blob) -> ParsedFeed:
                content = geodb.mmdb_records(blob.data, what=blob.name)
                return maxmind.parse_mmdb_records(content.records, options, meta=content.meta)

            return from_mmdb
        parse = provider.parse
        if parse is None:
            raise SourceError(f"provider {provider.name} has no byte parser")
        return lambda blob: parse([blob], options)

    def _parse_key(self, spec: SourceSpec) -> str:
        what = spec.geo.provider if spec.geo is not None else spec.format
        doc = {"what": what, "options": self._options(spec), "version": registry.ParserVersion}
        return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()

    def _min_interval(self, spec: SourceSpec) -> int:
        if spec.min_interval is not None:
            return spec.min_interval
        if spec.geo is not None:
            return self.providers[spec.geo.provider].min_interval
        return self.formats[spec.format or ""].min_interval

    # -- one part ------------------------------------------------------------------------------

    def _load_part(
        self, spec: SourceSpec, part: _Part, parse: Callable[[Blob], ParsedFeed]
    ) -> tuple[PartReport, ParsedFeed | None]:
        now = self.clock()
        stored = self.state.load(part.key)
        parse_key = self._parse_key(spec)
        try:
            if part.url is not None:
                body, fetched = self._download(spec, part, stored, now)
            else:
                body, fetched = self._read_local(spec, part), None
        except _PartFailure as failure:
            return self._fallback(part, stored, parse, parse_key, failure.reason)
        if stored is not None and (body is None or _sha(body) == stored.meta.sha256):
            # 304, rate limit, or the same bytes again: keep the copy; the provider confirmed
            # it (except under the rate limit, which must not restart its own window)
            meta = stored.meta
            if not (fetched or {}).get("limited"):
                meta = replace(
                    meta,
                    checked_at=now,
                    etag=(fetched or {}).get("etag") or meta.etag,
                    last_modified=(fetched or {}).get("last_modified") or meta.last_modified,
                )
                self.state.touch(
                    part.key,
                    checked_at=meta.checked_at,
                    etag=meta.etag,
                    last_modified=meta.last_modified,
                )
            parsed, did_parse = self._stored_parse(stored, parse, parse_key)
            if parsed is None:
                return self._fallback(part, None, parse, parse_key, "stored copy unreadable")
            reason = fetched.get("reason") if fetched else None
            return self._report(
                part, Status.NOT_MODIFIED, meta, parsed, did_parse, reason=reason
            ), parsed
        if body is None:
            return self._fallback(part, stored, parse, parse_key, "no data and no stored copy")
        try:
            checksum_note = self._verify(spec, part, body)
            parsed = parse(Blob(part.location.rsplit("/", 1)[-1], body))
            self._validate(spec, parsed)
        except _PartFailure as failure:
            return self._fallback(part, stored, parse, parse_key, failure.reason)
        except SourceError as err:
            return self._fallback(part, stored, parse, parse_key, str(err))
        meta = CopyMeta(
            sha256=_sha(body),
            size=len(body),
            fetched_at=now,
            checked_at=now,
            location=part.location,
            etag=(fetched or {}).get("etag"),
            last_modified=(fetched or {}).get("last_modified"),
            entries=parsed.entries,
            parse_key=parse_key,
            extra={"checksum": checksum_note} if checksum_note else {},
        )
        self.state.save(part.key, body, meta, parsed=parsed.to_bytes())
        return self._report(part, Status.FRESH, meta, parsed, True), parsed

    def _download(
        self, spec: SourceSpec, part: _Part, stored: StoredCopy | None, now: float
    ) -> tuple[bytes | None, dict[str, Any] | None]:
        url = part.url or ""
        interval = self._min_interval(spec)
        if stored is not None and interval and now - stored.meta.checked_at < interval:
            ago = int(now - stored.meta.checked_at)
            return None, {
                "limited": True,
                "reason": f"checked {ago} s ago; min_interval is {interval} s",
            }
        auth = None
        if spec.geo is not None and spec.geo.account_id_env:
            account = self._secret(spec.geo.account_id_env, f"sources[{spec.name}]")
            key = self._secret(spec.geo.license_key_env, f"sources[{spec.name}]")
            if account and key:
                auth = (account, key)
        request = FetchRequest(
            url=url,
            timeout=spec.timeout,
            size_cap=spec.size_cap,
            attempts=spec.attempts,
            allow_http=spec.insecure_http,
            etag=stored.meta.etag if stored else None,
            last_modified=stored.meta.last_modified if stored else None,
            auth=auth,
            label=spec.name,
        )
        try:
            response = self.fetcher.fetch(request)
        except FetchError as err:
            raise _PartFailure(str(err)) from err
        info = {"etag": response.etag, "last_modified": response.last_modified}
        if response.not_modified:
            if stored is None:
                raise _PartFailure("304 Not Modified but there is no stored copy")
            return None, info
        if not response.body and not spec.allow_empty:
            raise _PartFailure("empty response body (0 bytes)")
        return response.body, info

    def _read_local(self, spec: SourceSpec, part: _Part) -> bytes:
        path = part.path or ""
        try:
            if part.directory:
                return pack_tar(self.files.read_dir(path, spec.size_cap))
            paths = path.split(",")
            if len(paths) > 1:  # a joint provider given several files: one part, one tar
                blobs = [
                    Blob(p.rsplit("/", 1)[-1], self.files.read_file(p, spec.size_cap))
                    for p in paths
                ]
                return pack_tar(blobs)
            return self.files.read_file(path, spec.size_cap)
        except SourceError as err:
            raise _PartFailure(str(err)) from err

    def _verify(self, spec: SourceSpec, part: _Part, body: bytes) -> str | None:
        if part.checksum is None:
            return None
        try:
            if part.url is not None:
                sidecar = self.fetcher.fetch(
                    FetchRequest(
                        url=part.checksum,
                        timeout=spec.timeout,
                        size_cap=65536,
                        attempts=spec.attempts,
                        allow_http=spec.insecure_http,
                    )
                ).body
            elif self.files.exists(part.checksum):
                sidecar = self.files.read_file(part.checksum, 65536)
            elif part.checksum_required:
                raise _PartFailure(f"{part.checksum}: checksum file missing (checksum: required)")
            else:
                return None
        except FetchError as err:
            if err.status == 404 and not part.checksum_required:
                return None
            raise _PartFailure(f"checksum: {err}") from err
        published = checksums.parse_checksum(sidecar, what=redact_url(part.checksum))
        checksums.verify(body, published, what=part.location)
        return f"{published.algorithm} verified"

    def _validate(self, spec: SourceSpec, parsed: ParsedFeed) -> None:
        total = parsed.entries + parsed.issue_count
        if parsed.entries == 0 and not spec.allow_empty:
            detail = f" ({parsed.issue_count} invalid lines)" if parsed.issue_count else ""
            raise _PartFailure(f"0 entries{detail}: an empty list is refused (allow_empty: false)")
        if total and parsed.issue_count / total > spec.max_invalid:
            first = parsed.issues[0] if parsed.issues else None
            raise _PartFailure(
                f"{parsed.issue_count} of {total} lines invalid (more than max_invalid "
                f"{spec.max_invalid:g}); first: {first}"
            )

    def _stored_parse(
        self, stored: StoredCopy, parse: Callable[[Blob], ParsedFeed], parse_key: str
    ) -> tuple[ParsedFeed | None, bool]:
        if stored.meta.parse_key == parse_key:
            cached = self.state.load_parsed(stored.key)
            if cached is not None:
                try:
                    return ParsedFeed.from_bytes(cached), False
                except ValueError:
                    pass
        try:
            name = stored.meta.location.rsplit("/", 1)[-1]
            return parse(Blob(name, stored.body)), True
        except SourceError:
            return None, True

    def _fallback(
        self,
        part: _Part,
        stored: StoredCopy | None,
        parse: Callable[[Blob], ParsedFeed],
        parse_key: str,
        reason: str,
    ) -> tuple[PartReport, ParsedFeed | None]:
        if stored is not None:
            parsed, did_parse = self._stored_parse(stored, parse, parse_key)
            if parsed is not None:
                return self._report(
                    part, Status.FALLBACK, stored.meta, parsed, did_parse, reason=reason
                ), parsed
        return PartReport(part.location, Status.FAILED, reason=reason), None

    @staticmethod
    def _report(
        part: _Part,
        status: Status,
        meta: CopyMeta,
        parsed: ParsedFeed,
        did_parse: bool,
        *,
        reason: str | None = None,
    ) -> PartReport:
        return PartReport(
            location=part.location,
            status=status,
            reason=reason,
            parsed=did_parse,
            fetched_at=meta.fetched_at,
            checked_at=meta.checked_at,
            etag=meta.etag,
            last_modified=meta.last_modified,
            sha256=meta.sha256,
            size=meta.size,
            entries=parsed.entries,
            feed_date=parsed.meta.date,
            declared=parsed.meta.declared,
            checksum=meta.extra.get("checksum"),
        )

    # -- combine -------------------------------------------------------------------------------

    def _combine(
        self, spec: SourceSpec, outcomes: list[tuple[PartReport, ParsedFeed | None]]
    ) -> SourceResult:
        reports = tuple(r for r, _ in outcomes)
        status = max((r.status for r in reports), key=lambda s: _RANK[s])
        if status is not Status.FAILED and all(r.status is Status.NOT_MODIFIED for r in reports):
            status = Status.NOT_MODIFIED
        elif status is Status.FRESH or (
            status is Status.NOT_MODIFIED and any(r.status is Status.FRESH for r in reports)
        ):
            status = Status.FRESH
        reasons = [
            r.reason if r.reason.startswith(r.location) else f"{r.location}: {r.reason}"
            for r in reports
            if r.reason and r.status in (Status.FALLBACK, Status.FAILED)
        ]
        reason = "; ".join(reasons) or None
        if status is Status.FAILED:
            # never publish part of a source: a partial country set is a silent shrink
            return SourceResult(
                spec.name, spec.kind, status, AddressSet(), reason=reason, parts=reports
            )
        parsed = [p for _, p in outcomes if p is not None]
        issues = tuple(i for p in parsed for i in p.issues)[:MAX_KEPT_ISSUES]
        notes = tuple(i for p in parsed for i in p.notes)[:MAX_KEPT_ISSUES]
        common: dict[str, Any] = {
            "reason": reason,
            "entries": sum(p.entries for p in parsed),
            "skipped": sum(p.skipped for p in parsed),
            "issue_count": sum(p.issue_count for p in parsed),
            "issues": issues,
            "note_count": sum(p.note_count for p in parsed),
            "notes": notes,
            "parts": reports,
            "attribution": next(
                (p.meta.extra["attribution"] for p in parsed if "attribution" in p.meta.extra),
                None,
            ),
        }
        if spec.geo is None:
            addresses = union_sets(p.addresses for p in parsed)
            return SourceResult(spec.name, spec.kind, status, addresses, **common)
        merged = _merge_tags(parsed)
        chosen = select_countries(merged, spec.geo.countries, spec.geo.exclude_countries)
        return SourceResult(
            spec.name,
            spec.kind,
            status,
            chosen.addresses,
            by_country=chosen.by_country,
            missing_countries=chosen.missing,
            **common,
        )


def _merge_tags(parsed: list[ParsedFeed]) -> ParsedFeed:
    tags: dict[str, list[AddressSet]] = {}
    for p in parsed:
        for tag, addresses in p.by_tag.items():
            tags.setdefault(tag, []).append(addresses)
    by_tag = {tag: union_sets(sets) for tag, sets in tags.items()}
    return ParsedFeed(format="geo", by_tag=by_tag, entries=0, meta=FeedMeta())


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
