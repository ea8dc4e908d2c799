"""The Blocklist config file: load, check against the published JSON Schema, build the model.

A config is one YAML document (``docs/config.md`` documents every field)::

    apiVersion: egressguard.io/v1alpha1
    kind: Blocklist
    metadata: {name: egress-blocklist}
    spec:
      sources:
      - {name: spamhaus-drop, url: https://www.spamhaus.org/drop/drop_v4.json,
         format: spamhaus-json}
      allow: [203.0.113.0/24]
      protect: {cluster_cidrs: [10.244.0.0/16], service_cidrs: [10.0.0.0/16],
                dns: [10.0.0.10], api_server: [20.50.60.70]}
      policy: {mode: tier, exempt_namespaces: [kube-system]}
      output: {api: crd.projectcalico.org/v1}

Checking happens in two passes, and each reports *every* problem with file, line and path
(``blocklist.yaml:12 spec.sources[2].format: 'csvv' is not one of [...]``):

1. the JSON Schema ``egressguard/schemas/blocklist.schema.json`` (shipped as package data and
   loaded from there, so the published schema is exactly what the code enforces); an unknown
   key is reported on its own line with the closest known key;
2. what a schema cannot say: addresses must parse, source names must be unique, options must
   fit the chosen format, selectors must parse, and the source spec must be accepted by
   ``app.sources.SourceSpec``.

Relative paths (``file``, ``geo.files``, a local ``checksum_url``) are resolved against the
directory of the config file, so a config and its data can move together.
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path as FsPath
from typing import Any, Final

import jsonschema

from egressguard import selector, yamlio
from egressguard.app.sources import SourceSpec
from egressguard.cidr.parse import parse_line
from egressguard.cidr.sets import AddressSet, CidrSet
from egressguard.errors import (
    ConfigError,
    EgressguardError,
    ManifestError,
    SelectorError,
    UsageError,
)
from egressguard.problems import Path, Problem, format_path
from egressguard.render.networksets import ShardLimits
from egressguard.render.ownership import BLOCKLIST_LABEL, MANAGED_BY_LABEL
from egressguard.render.policies import DEFAULT_TIER_NAME, DEFAULT_TIER_ORDER, PolicySettings

__all__ = [
    "API_VERSION",
    "DEFAULT_INTERVAL",
    "KIND",
    "SCHEMA_RESOURCE",
    "BlocklistConfig",
    "ConfigProblems",
    "ProtectConfig",
    "SafetyConfig",
    "SourceConfig",
    "check_document",
    "load_config",
    "parse_config",
    "parse_duration",
    "schema",
]

API_VERSION: Final = "egressguard.io/v1alpha1"
KIND: Final = "Blocklist"
SCHEMA_RESOURCE: Final = "schemas/blocklist.schema.json"
#: Refresh interval of a source when the config gives none (Calico GlobalThreatFeed's default).
DEFAULT_INTERVAL: Final = 24 * 3600.0
_UNITS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_SOURCE_KINDS: Final = ("static", "file", "url", "geo")
#: Keys of a config source that the build uses itself; the rest go to ``SourceSpec``.
_BUILD_KEYS: Final = frozenset({"interval", "max_shrink", "optional", "description"})
#: Names people reach for, and the field they mean.
_SYNONYMS: Final = {
    "pod_cidrs": "cluster_cidrs",
    "pod_cidr": "cluster_cidrs",
    "cluster_cidr": "cluster_cidrs",
    "service_cidr": "service_cidrs",
    "apiserver": "api_server",
    "allowlist": "allow",
    "whitelist": "allow",
    "exclude": "allow",
    "namespaces": "exempt_namespaces",
}


class ConfigProblems(ConfigError):
    """A config failed its checks; ``problems`` holds every one, located."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        first = problems[0]
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        super().__init__(
            f"{first}{more}",
            hint="see docs/config.md for every field, with an example",
        )
        self.problems = tuple(problems)


# --------------------------------------------------------------------------------------------
# the model


@dataclass(frozen=True, slots=True)
class SourceConfig:
    """One entry of ``spec.sources``: what ``app.sources`` loads plus what the build needs.

    ``interval`` (seconds) is for the controller's schedule; ``max_shrink`` overrides the
    blocklist's limit for this source; ``optional`` lets the build go on when the source has
    never loaded. ``path``/``line`` say where it is declared.
    """

    spec: SourceSpec
    interval: float = DEFAULT_INTERVAL
    max_shrink: float | None = None
    optional: bool = False
    path: str = ""
    line: int | None = None

    @property
    def name(self) -> str:
        return self.spec.name


_PROTECT_KEYS: Final = (
    "cluster_cidrs",
    "service_cidrs",
    "node_cidrs",
    "dns",
    "api_server",
    "other",
)


@dataclass(frozen=True, slots=True)
class ProtectConfig:
    """Cluster-critical addresses (``spec.protect``): always subtracted, never blocked."""

    cluster_cidrs: tuple[str, ...] = ()
    service_cidrs: tuple[str, ...] = ()
    node_cidrs: tuple[str, ...] = ()
    dns: tuple[str, ...] = ()
    api_server: tuple[str, ...] = ()
    other: tuple[str, ...] = ()

    def by_category(self) -> dict[str, AddressSet]:
        """Each non-empty field as an ``AddressSet`` (ranges allowed)."""
        out: dict[str, AddressSet] = {}
        for key in _PROTECT_KEYS:
            entries: tuple[str, ...] = getattr(self, key)
            if entries:
                out[key] = addresses_of(entries)
        return out


@dataclass(frozen=True, slots=True)
class SafetyConfig:
    """``spec.safety``: the limits of DESIGN §6 that ``--force`` may override.

    ``max_shrink``: the largest share by which a source or the whole set may shrink against the
    previous build (entries or addresses, whichever shrank more). ``max_coverage``: the largest
    share of the public address space (per family) the set may cover; beyond it the policy is
    as good as a default deny. ``max_entries``: CIDRs per family (Felix's ``maxIpsetSize`` is
    1,048,576 members per selector). ``protect_public_dns``: keep well-known public resolvers
    (Google, Cloudflare, Quad9) out of the set.
    """

    max_shrink: float = 0.5
    max_coverage: float = 0.5
    max_entries: int = 1_000_000
    protect_public_dns: bool = True


@dataclass(frozen=True, slots=True)
class BlocklistConfig:
    """A checked Blocklist config. ``data`` is the document as loaded (plain values)."""

    name: str
    sources: tuple[SourceConfig, ...]
    allow: tuple[str, ...] = ()
    protect: ProtectConfig = field(default_factory=ProtectConfig)
    policy: PolicySettings = field(default_factory=lambda: PolicySettings("blocklist"))
    api_version: str = "crd.projectcalico.org/v1"
    shards: ShardLimits = field(default_factory=ShardLimits)
    safety: SafetyConfig = field(default_factory=SafetyConfig)
    file: str | None = None
    data: Mapping[str, Any] = field(default_factory=dict, repr=False)

    def source(self, name: str) -> SourceConfig:
        for src in self.sources:
            if src.name == name:
                return src
        raise KeyError(name)

    @property
    def allow_set(self) -> AddressSet:
        return addresses_of(self.allow)

    def digest(self) -> str:
        """SHA-256 of the document's canonical JSON (paths as resolved)."""
        text = json.dumps(self.data, sort_keys=True, separators=(",", ":"), default=str)
        return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def addresses_of(entries: Iterable[str]) -> AddressSet:
    """Addresses, CIDRs and ranges (already checked) as one ``AddressSet``."""
    ranges: dict[int, list[tuple[int, int]]] = {4: [], 6: []}
    for text in entries:
        got = parse_line(text)
        if got is not None:
            ranges[got[0]].append((got[1], got[2]))
    return AddressSet(CidrSet.from_ranges(4, ranges[4]), CidrSet.from_ranges(6, ranges[6]))


# --------------------------------------------------------------------------------------------
# schema


@functools.cache
def schema() -> dict[str, Any]:
    """The published JSON Schema, read from the package data."""
    text = resources.files("egressguard").joinpath(SCHEMA_RESOURCE).read_text(encoding="utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


@functools.cache
def _validator() -> jsonschema.protocols.Validator:
    cls = jsonschema.validators.validator_for(schema())
    cls.check_schema(schema())
    validator: jsonschema.protocols.Validator = cls(schema())
    return validator


def parse_duration(value: int | float | str) -> float:
    """``90``, ``"90s"``, ``"30m"``, ``"6h"``, ``"1d"`` → seconds (the schema keeps
    ``interval`` above zero; ``min_interval`` may be 0)."""
    if isinstance(value, bool):
        raise ValueError("a duration is not a boolean")
    if isinstance(value, int | float):
        return float(value)
    m = re.fullmatch(r"([0-9]+)([smhd])", value.strip())
    if m is None:
        raise ValueError(f"{value!r} is not a duration")
    return float(int(m.group(1)) * _UNITS[m.group(2)])


def _known_keys(subschema: Mapping[str, Any]) -> list[str]:
    return sorted(subschema.get("properties", {}))


def _schema_problems(data: Any) -> list[tuple[Path, str]]:
    out: list[tuple[Path, str]] = []
    for error in _validator().iter_errors(data):
        out.extend(_translate(error))
    return out


def _translate(error: jsonschema.ValidationError) -> list[tuple[Path, str]]:
    """Readable messages for the schema errors people meet (one error may give several)."""
    path: Path = tuple(error.absolute_path)
    sub = error.schema if isinstance(error.schema, Mapping) else {}
    instance = error.instance
    kind = error.validator
    if kind == "additionalProperties" and isinstance(instance, Mapping):
        known = _known_keys(sub)
        out = []
        for key in sorted(k for k in instance if k not in known):
            close = [_SYNONYMS[key]] if _SYNONYMS.get(key) in known else []
            close = close or difflib.get_close_matches(key, known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; known: {', '.join(known)}"
            out.append(((*path, key), f"unknown field {key!r}{hint}"))
        return out
    if kind == "oneOf" and isinstance(instance, Mapping) and "name" in sub.get("properties", {}):
        found = [k for k in _SOURCE_KINDS if k in instance]
        if not found:
            return [(path, "a source needs one of static, file, url or geo")]
        return [(path, f"give only one of static, file, url, geo (found {' and '.join(found)})")]
    if kind == "dependentRequired" and isinstance(instance, Mapping):
        needing = error.validator_value if isinstance(error.validator_value, Mapping) else {}
        missing = [k for k in _SOURCE_KINDS if k in instance and k in needing]
        what = missing[0] if missing else "this source"
        return [(path, f"{what} needs 'format' (how to read it)")]
    if kind == "required":
        return [(path, error.message.replace("is a required property", "is required"))]
    if kind == "not":
        return [(path, f"{instance!r} is reserved (a built-in tier); choose another name")]
    custom = sub.get("x-error")
    if kind == "pattern" and isinstance(custom, str):
        return [(path, custom.format(instance=instance))]
    return [(path, error.message)]


# --------------------------------------------------------------------------------------------
# semantic checks


class _Checker:
    def __init__(self) -> None:
        self.problems: list[tuple[Path, str]] = []

    def err(self, path: Path, message: str) -> None:
        self.problems.append((path, message))

    def addresses(self, values: Any, path: Path) -> None:
        if not isinstance(values, list):
            return
        for i, text in enumerate(values):
            if not isinstance(text, str):
                continue
            try:
                got = parse_line(text)
            except EgressguardError as exc:
                self.err((*path, i), f"{text!r}: {exc.message}")
                continue
            if got is None:
                self.err((*path, i), f"{text!r} is not an address, CIDR or range")

    def selector(self, text: Any, path: Path) -> None:
        if not isinstance(text, str):
            return
        try:
            parsed = selector.parse(text)
        except SelectorError as exc:
            self.err(path, exc.message)
            return
        if parsed.contains_global():
            self.err(path, "global() is not allowed in an endpoint selector")

    def source(self, src: Mapping[str, Any], path: Path) -> None:
        if "static" in src:
            self.addresses(src["static"], (*path, "static"))
        fmt = src.get("format")
        if fmt is not None and "file" not in src and "url" not in src:
            self.err((*path, "format"), "format applies only to file and url sources")
        if "csv" in src and fmt != "csv":
            self.err((*path, "csv"), f"csv options need format: csv (format is {fmt!r})")
        if fmt == "csv" and "csv" not in src:
            self.err(path, "format csv needs csv: {column: <header name or 0-based index>}")
        url = src.get("url")
        if isinstance(url, str) and url.startswith("http://") and not src.get("insecure_http"):
            self.err(
                (*path, "url"), "plain http:// needs insecure_http: true (https is the default)"
            )
        geo = src.get("geo")
        if isinstance(geo, Mapping):
            given = [k for k in ("files", "url", "urls") if k in geo]
            if len(given) != 1:
                self.err(
                    (*path, "geo"),
                    "give exactly one of files, url or urls"
                    + (f" (found {' and '.join(given)})" if given else ""),
                )
            both = set(geo.get("countries") or ()) & set(geo.get("exclude_countries") or ())
            if both:
                self.err(
                    (*path, "geo", "exclude_countries"),
                    f"{sorted(both)} are both in countries and exclude_countries",
                )
        for key in ("interval", "min_interval"):
            if key in src:
                try:
                    parse_duration(src[key])
                except ValueError as exc:
                    self.err((*path, key), str(exc))


def _located(doc: yamlio.Document, items: Iterable[tuple[Path, str]]) -> list[Problem]:
    out = [doc.locate(Problem(format_path(path), message), path) for path, message in items]
    out.sort(key=lambda p: (p.line or 0, p.path))
    return out


def check_document(doc: yamlio.Document) -> list[Problem]:
    """Every problem of one config document (schema, then semantics); empty when valid.

    The semantic pass runs even when the schema found problems, on whatever parts have the
    right shape, so one run reports everything.
    """
    data = doc.data
    checker = _Checker()
    checker.problems.extend(_schema_problems(data))
    spec = data.get("spec") if isinstance(data, Mapping) else None
    if not isinstance(spec, Mapping):
        return _located(doc, checker.problems)
    names: dict[str, int] = {}
    sources = spec.get("sources")
    for i, src in enumerate(sources if isinstance(sources, list) else ()):
        if not isinstance(src, Mapping):
            continue
        path: Path = ("spec", "sources", i)
        name = src.get("name")
        if isinstance(name, str):
            if name in names:
                first = doc.line_of(("spec", "sources", names[name]))
                checker.err(
                    (*path, "name"), f"{name!r} is already the name of a source (line {first})"
                )
            names.setdefault(name, i)
        checker.source(src, path)
    checker.addresses(spec.get("allow"), ("spec", "allow"))
    protect = spec.get("protect")
    if isinstance(protect, Mapping):
        for key, values in protect.items():
            checker.addresses(values, ("spec", "protect", key))
    policy = spec.get("policy")
    if isinstance(policy, Mapping):
        checker.selector(policy.get("exempt_selector"), ("spec", "policy", "exempt_selector"))
        label = policy.get("set_label")
        if label == MANAGED_BY_LABEL or (
            isinstance(label, str) and label.startswith("projectcalico.org/")
        ):
            checker.err(
                ("spec", "policy", "set_label"),
                f"{label!r} is reserved (ownership or Calico's own labels); choose a key of "
                "your own",
            )
    return _located(doc, checker.problems)


# --------------------------------------------------------------------------------------------
# building the model


def _resolve(path: str, base: FsPath | None) -> str:
    if base is None or "://" in path:
        return path
    p = FsPath(path).expanduser()
    return str(p if p.is_absolute() else base / p)


def _source_spec_input(src: Mapping[str, Any], base: FsPath | None) -> dict[str, Any]:
    out = {k: v for k, v in src.items() if k not in _BUILD_KEYS}
    if "file" in out:
        out["file"] = _resolve(out["file"], base)
        if "checksum_url" in out:
            out["checksum_url"] = _resolve(out["checksum_url"], base)
    if "min_interval" in out:
        out["min_interval"] = int(parse_duration(out["min_interval"]))
    geo = out.get("geo")
    if isinstance(geo, Mapping):
        geo = dict(geo)
        if "url" in geo:
            geo["urls"] = [geo.pop("url")]
        if "files" in geo:
            files = [geo["files"]] if isinstance(geo["files"], str) else list(geo["files"])
            geo["files"] = [_resolve(f, base) for f in files]
        out["geo"] = geo
    return out


def _build(doc: yamlio.Document, base: FsPath | None) -> BlocklistConfig:
    data = doc.data
    spec = data["spec"]
    name = data["metadata"]["name"]
    sources: list[SourceConfig] = []
    problems: list[tuple[Path, str]] = []
    resolved_sources: list[dict[str, Any]] = []
    for i, src in enumerate(spec["sources"]):
        path: Path = ("spec", "sources", i)
        given = _source_spec_input(src, base)
        resolved_sources.append({**src, **given})
        try:
            source_spec = SourceSpec.from_dict(given)
        except ConfigError as exc:
            problems.append((path, exc.message))
            continue
        sources.append(
            SourceConfig(
                spec=source_spec,
                interval=parse_duration(src.get("interval", DEFAULT_INTERVAL)),
                max_shrink=src.get("max_shrink"),
                optional=bool(src.get("optional", False)),
                path=format_path(path),
                line=doc.line_of(path),
            )
        )
    if problems:
        raise ConfigProblems(_located(doc, problems))
    policy = spec.get("policy") or {}
    tier = policy.get("tier") or {}
    settings = PolicySettings(
        blocklist=name,
        mode=policy.get("mode", "tier"),
        set_label=policy.get("set_label", BLOCKLIST_LABEL),
        tier=tier.get("name", DEFAULT_TIER_NAME),
        tier_order=float(tier.get("order", DEFAULT_TIER_ORDER)),
        order=float(policy.get("order", 0)),
        allow_order=float(policy.get("allow_order", 1000)),
        log=bool(policy.get("log", True)),
        exempt_namespaces=tuple(sorted(set(policy.get("exempt_namespaces", ())))),
        exempt_selector=policy.get("exempt_selector"),
        host_endpoints=bool(policy.get("host_endpoints", False)),
    )
    protect = spec.get("protect") or {}
    shards = spec.get("shards") or {}
    safety = spec.get("safety") or {}
    defaults = SafetyConfig()
    resolved = json.loads(json.dumps(data))
    resolved["spec"]["sources"] = resolved_sources
    return BlocklistConfig(
        name=name,
        sources=tuple(sources),
        allow=tuple(spec.get("allow", ())),
        protect=ProtectConfig(**{k: tuple(v) for k, v in protect.items()}),
        policy=settings,
        api_version=(spec.get("output") or {}).get("api", "crd.projectcalico.org/v1"),
        shards=ShardLimits(
            max_entries=shards.get("max_entries", ShardLimits().max_entries),
            max_bytes=shards.get("max_bytes", ShardLimits().max_bytes),
        ),
        safety=SafetyConfig(
            max_shrink=float(safety.get("max_shrink", defaults.max_shrink)),
            max_coverage=float(safety.get("max_coverage", defaults.max_coverage)),
            max_entries=int(safety.get("max_entries", defaults.max_entries)),
            protect_public_dns=bool(safety.get("protect_public_dns", defaults.protect_public_dns)),
        ),
        file=doc.source,
        data=resolved,
    )


def parse_config(
    text: str, source: str = "<config>", *, base_dir: str | None = None
) -> BlocklistConfig:
    """Check and build a config from YAML text. Raises ``ConfigProblems`` with every problem.

    ``base_dir`` resolves relative paths (``load_config`` passes the file's directory).
    """
    try:
        docs = yamlio.load_text(text, source)
    except ManifestError as exc:
        raise ConfigProblems([Problem("", exc.reason, file=source, line=exc.line)]) from exc
    if not docs:
        raise ConfigProblems([Problem("", "the file holds no document", file=source, line=1)])
    if len(docs) > 1:
        extra = docs[1]
        raise ConfigProblems(
            [Problem("", "one Blocklist per file", file=source, line=extra.line, document=1)]
        )
    doc = docs[0]
    problems = check_document(doc)
    if problems:
        raise ConfigProblems(problems)
    return _build(doc, FsPath(base_dir) if base_dir is not None else None)


def load_config(path: str | FsPath) -> BlocklistConfig:
    """Read, check and build the config at ``path``; relative paths in it are resolved against
    its directory. Raises ``ConfigProblems`` (a ``ConfigError``) listing every problem."""
    p = FsPath(path)
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigProblems([Problem("", f"not UTF-8 text ({exc.reason})", file=str(p))]) from exc
    except FileNotFoundError as exc:
        raise UsageError(f"{p}: no such config file") from exc
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read: {exc.strerror or exc}") from exc
    return parse_config(text, str(path), base_dir=str(p.resolve().parent))
