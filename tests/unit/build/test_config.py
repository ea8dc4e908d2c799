"""The Blocklist config: every field, every kind of error with path and line, the schema file."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from egressguard.app import config
from egressguard.app.config import ConfigProblems, parse_config
from egressguard.calico.model import CALICO_API_GROUPS
from egressguard.errors import ConfigError, UsageError
from egressguard.feeds import registry
from egressguard.feeds.geo import maxmind

REPO = Path(__file__).resolve().parents[3]
SCHEMA_FILE = REPO / "src" / "egressguard" / "schemas" / "blocklist.schema.json"
DOCS = REPO / "docs" / "config.md"

FULL = """\
apiVersion: egressguard.io/v1alpha1
kind: Blocklist
metadata:
  name: egress-blocklist
  description: every field once
spec:
  sources:
  - name: inline
    description: hand-picked
    static: [192.0.2.0/24, "198.51.100.1 - 198.51.100.9", "2001:db8:bad::/48"]
    interval: 30m
    max_shrink: 0.9
    optional: true
  - name: drop
    url: https://www.spamhaus.org/drop/drop_v4.json
    format: spamhaus-json
    checksum_url: https://example.invalid/drop.sha256
    interval: 6h
    min_interval: 2h
    size_cap: 1048576
    timeout: 12.5
    attempts: 4
    allow_empty: true
    max_invalid: 0.05
  - name: local
    file: lists/custom.csv
    format: csv
    csv: {column: ip, header: true, delimiter: ";", comment: "#"}
    insecure_http: false
  - name: countries
    geo:
      provider: maxmind-csv
      url: https://download.maxmind.com/geoip/databases/GeoLite2-Country-CSV/download?suffix=zip
      countries: [ru, KP]
      exclude_countries: [us]
      country_field: registered_country
      country_fallback: false
      checksum: required
      checksum_urls: [https://download.maxmind.com/x.sha256]
      license_key_env: MAXMIND_LICENSE_KEY
      account_id_env: MAXMIND_ACCOUNT_ID
    interval: 1d
  - name: rir
    geo: {provider: rir, files: [rir/delegated-afrinic-extended-latest], countries: [NG]}
  allow: [203.0.113.0/24, "2001:db8::1"]
  protect:
    cluster_cidrs: [10.244.0.0/16]
    service_cidrs: [10.0.0.0/16]
    node_cidrs: [10.224.0.0/12]
    dns: [10.0.0.10]
    api_server: [20.50.60.70]
    other: [198.51.100.200]
  policy:
    mode: blog
    tier: {name: blocking, order: 50}
    order: 5
    allow_order: 2000
    log: false
    exempt_namespaces: [monitoring, kube-system]
    exempt_selector: egress == 'open'
    host_endpoints: true
    set_label: policy
  output: {api: projectcalico.org/v3}
  shards: {max_entries: 5000, max_bytes: 100000}
  safety:
    max_shrink: 0.3
    max_coverage: 0.2
    max_entries: 500000
    protect_public_dns: false
"""


def test_every_field_reaches_the_model(tmp_path: Path) -> None:
    cfg = parse_config(FULL, "blocklist.yaml", base_dir=str(tmp_path))
    assert cfg.name == "egress-blocklist"
    assert [s.name for s in cfg.sources] == ["inline", "drop", "local", "countries", "rir"]
    inline, drop, local, countries, rir = cfg.sources
    assert inline.spec.static == (
        "192.0.2.0/24",
        "198.51.100.1 - 198.51.100.9",
        "2001:db8:bad::/48",
    )
    assert (inline.interval, inline.max_shrink, inline.optional) == (1800.0, 0.9, True)
    assert inline.path == "spec.sources[0]"
    assert inline.line == 8
    assert drop.spec.url == "https://www.spamhaus.org/drop/drop_v4.json"
    assert drop.spec.format == "spamhaus-json"
    assert drop.spec.checksum_url == "https://example.invalid/drop.sha256"
    assert drop.interval == 6 * 3600
    assert drop.spec.min_interval == 2 * 3600
    assert (drop.spec.size_cap, drop.spec.timeout, drop.spec.attempts) == (1048576, 12.5, 4)
    assert (drop.spec.allow_empty, drop.spec.max_invalid) == (True, 0.05)
    assert (drop.max_shrink, drop.optional) == (None, False)
    assert local.spec.file == str(tmp_path / "lists" / "custom.csv")  # relative to the config
    assert dict(local.spec.options) == {
        "column": "ip",
        "header": True,
        "delimiter": ";",
        "comment": "#",
    }
    assert local.spec.insecure_http is False
    geo = countries.spec.geo
    assert geo is not None
    assert geo.provider == "maxmind-csv"
    assert geo.urls == (
        "https://download.maxmind.com/geoip/databases/GeoLite2-Country-CSV/download?suffix=zip",
    )
    assert geo.countries == ("RU", "KP")
    assert geo.exclude_countries == ("US",)
    assert (geo.country_field, geo.country_fallback, geo.checksum) == (
        "registered_country",
        False,
        "required",
    )
    assert geo.checksum_urls == ("https://download.maxmind.com/x.sha256",)
    assert (geo.license_key_env, geo.account_id_env) == (
        "MAXMIND_LICENSE_KEY",
        "MAXMIND_ACCOUNT_ID",
    )
    assert countries.interval == 86400
    assert rir.spec.geo is not None
    assert rir.spec.geo.files == (str(tmp_path / "rir" / "delegated-afrinic-extended-latest"),)
    assert cfg.allow == ("203.0.113.0/24", "2001:db8::1")
    assert "203.0.113.7" in cfg.allow_set
    p = cfg.protect
    assert (p.cluster_cidrs, p.service_cidrs, p.node_cidrs) == (
        ("10.244.0.0/16",),
        ("10.0.0.0/16",),
        ("10.224.0.0/12",),
    )
    assert (p.dns, p.api_server, p.other) == (("10.0.0.10",), ("20.50.60.70",), ("198.51.100.200",))
    assert set(p.by_category()) == {
        "cluster_cidrs",
        "service_cidrs",
        "node_cidrs",
        "dns",
        "api_server",
        "other",
    }
    pol = cfg.policy
    assert (pol.blocklist, pol.mode, pol.tier, pol.tier_order) == (
        "egress-blocklist",
        "blog",
        "blocking",
        50.0,
    )
    assert (pol.order, pol.allow_order, pol.log) == (5.0, 2000.0, False)
    assert pol.exempt_namespaces == ("kube-system", "monitoring")
    assert (pol.exempt_selector, pol.host_endpoints, pol.set_label) == (
        "egress == 'open'",
        True,
        "policy",
    )
    assert cfg.api_version == "projectcalico.org/v3"
    assert (cfg.shards.max_entries, cfg.shards.max_bytes) == (5000, 100000)
    s = cfg.safety
    assert (s.max_shrink, s.max_coverage, s.max_entries, s.protect_public_dns) == (
        0.3,
        0.2,
        500000,
        False,
    )
    assert cfg.file == "blocklist.yaml"


MINIMAL = """\
apiVersion: egressguard.io/v1alpha1
kind: Blocklist
metadata: {name: bl}
spec:
  sources:
  - {name: one, static: [192.0.2.1]}
"""


def _defaults(node: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    schema = config.schema()
    if isinstance(node, dict):
        if "$ref" in node:
            target = schema["$defs"][node["$ref"].rsplit("/", 1)[-1]]
            if "default" in node:
                yield path, node["default"]
            yield from _defaults(target, path)
            return
        if "default" in node:
            yield path, node["default"]
        for key, sub in (node.get("properties") or {}).items():
            yield from _defaults(sub, (*path, key))


def test_schema_defaults_are_the_models_defaults() -> None:
    """What the schema (and so docs/config.md) calls the default is what the build uses."""
    cfg = parse_config(MINIMAL)
    src = cfg.sources[0]
    model = {
        ("spec", "allow"): list(cfg.allow),
        ("spec", "policy", "mode"): cfg.policy.mode,
        ("spec", "policy", "tier", "name"): cfg.policy.tier,
        ("spec", "policy", "tier", "order"): cfg.policy.tier_order,
        ("spec", "policy", "order"): cfg.policy.order,
        ("spec", "policy", "allow_order"): cfg.policy.allow_order,
        ("spec", "policy", "log"): cfg.policy.log,
        ("spec", "policy", "exempt_namespaces"): list(cfg.policy.exempt_namespaces),
        ("spec", "policy", "host_endpoints"): cfg.policy.host_endpoints,
        ("spec", "policy", "set_label"): cfg.policy.set_label,
        ("spec", "output", "api"): cfg.api_version,
        ("spec", "shards", "max_entries"): cfg.shards.max_entries,
        ("spec", "shards", "max_bytes"): cfg.shards.max_bytes,
        ("spec", "safety", "max_shrink"): cfg.safety.max_shrink,
        ("spec", "safety", "max_coverage"): cfg.safety.max_coverage,
        ("spec", "safety", "max_entries"): cfg.safety.max_entries,
        ("spec", "safety", "protect_public_dns"): cfg.safety.protect_public_dns,
    }
    for key in ("cluster_cidrs", "service_cidrs", "node_cidrs", "dns", "api_server", "other"):
        model[("spec", "protect", key)] = list(getattr(cfg.protect, key))
    schema = config.schema()
    found = dict(_defaults(schema))
    for path, value in found.items():
        assert model[path] == value, path
    assert set(model) <= set(found)
    source_defaults = {k: v for k, v in _defaults(schema["$defs"]["source"]) if len(k) == 1}
    assert source_defaults == {
        ("interval",): "24h",
        ("size_cap",): src.spec.size_cap,
        ("timeout",): src.spec.timeout,
        ("attempts",): src.spec.attempts,
        ("insecure_http",): src.spec.insecure_http,
        ("allow_empty",): src.spec.allow_empty,
        ("max_invalid",): src.spec.max_invalid,
        ("optional",): src.optional,
    }
    assert config.parse_duration(source_defaults[("interval",)]) == src.interval
    geo_defaults = dict(_defaults(schema["$defs"]["geo"]))
    geo = config.SourceSpec.from_dict({"name": "g", "geo": {"provider": "rir", "files": ["x"]}}).geo
    assert geo is not None
    assert geo_defaults == {
        ("country_field",): geo.country_field,
        ("country_fallback",): geo.country_fallback,
        ("checksum",): geo.checksum,
    }


# --------------------------------------------------------------------------------------------
# problems, located


def problems_of(text: str) -> list[str]:
    with pytest.raises(ConfigProblems) as info:
        parse_config(textwrap.dedent(text), "blocklist.yaml")
    return [str(p) for p in info.value.problems]


HEAD = """\
apiVersion: egressguard.io/v1alpha1
kind: Blocklist
metadata: {name: bl}
spec:
  sources:
"""


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            "  - {name: a, url: 'https://x.example/l', format: csvv}\n",
            "blocklist.yaml:6 spec.sources[0].format: 'csvv' is not one of ['plain', 'netset', "
            "'ipset', 'abusech', 'csv', 'spamhaus-text', 'spamhaus-json', 'tor-exits']",
        ),
        (
            "  - name: a\n    static: [192.0.2.1]\n    intervall: 1h\n",
            "blocklist.yaml:8 spec.sources[0].intervall: unknown field 'intervall'; did you mean "
            "'interval'?",
        ),
        (
            "  - {name: a}\n",
            "blocklist.yaml:6 spec.sources[0]: a source needs one of static, file, url or geo",
        ),
        (
            "  - {name: a, static: [192.0.2.1], url: 'https://x.example/', format: plain}\n",
            "blocklist.yaml:6 spec.sources[0]: give only one of static, file, url, geo (found "
            "static and url)",
        ),
        (
            "  - {name: a, file: x.txt}\n",
            "blocklist.yaml:6 spec.sources[0]: file needs 'format' (how to read it)",
        ),
        (
            "  - {name: A_b, static: [192.0.2.1]}\n",
            "blocklist.yaml:6 spec.sources[0].name: 'A_b' is not a valid source name: lowercase "
            "letters, digits, '-', '_' and '.', starting and ending with a letter or digit",
        ),
        (
            "  - name: a\n    static:\n    - 192.0.2.1\n    - 10.0.0.300/8\n",
            "blocklist.yaml:9 spec.sources[0].static[1]: '10.0.0.300/8': IPv4 octet 300 out of "
            "range 0-255 in '10.0.0.300'",
        ),
        (
            "  - {name: a, static: [192.0.2.1]}\n  - {name: a, static: [192.0.2.2]}\n",
            "blocklist.yaml:7 spec.sources[1].name: 'a' is already the name of a source (line 6)",
        ),
        (
            "  - {name: a, url: 'http://x.example/l', format: plain}\n",
            "blocklist.yaml:6 spec.sources[0].url: plain http:// needs insecure_http: true (https "
            "is the default)",
        ),
        (
            "  - {name: a, url: 'ftp://x.example/l', format: plain}\n",
            "blocklist.yaml:6 spec.sources[0].url: 'ftp://x.example/l' is not an http(s) URL",
        ),
        (
            "  - {name: a, static: [192.0.2.1], format: plain}\n",
            "blocklist.yaml:6 spec.sources[0].format: format applies only to file and url sources",
        ),
        (
            "  - {name: a, file: x.csv, format: csv}\n",
            "blocklist.yaml:6 spec.sources[0]: format csv needs csv: {column: <header name or "
            "0-based index>}",
        ),
        (
            "  - {name: a, file: x.txt, format: plain, csv: {column: 1}}\n",
            "blocklist.yaml:6 spec.sources[0].csv: csv options need format: csv (format is "
            "'plain')",
        ),
        (
            "  - name: a\n    geo: {provider: rir, files: [x], countries: [RUS]}\n",
            "blocklist.yaml:7 spec.sources[0].geo.countries[0]: 'RUS' is not a two-letter ISO "
            "3166 country code",
        ),
        (
            "  - name: a\n    geo: {provider: rir, files: [x], url: 'https://x.example/'}\n",
            "blocklist.yaml:7 spec.sources[0].geo: give exactly one of files, url or urls (found "
            "files and url)",
        ),
        (
            "  - name: a\n    geo: {provider: rir, files: [x], countries: [RU], "
            "exclude_countries: [RU]}\n",
            "blocklist.yaml:7 spec.sources[0].geo.exclude_countries: ['RU'] are both in countries "
            "and exclude_countries",
        ),
        (
            "  - name: a\n    geo: {provider: geoip2, files: [x]}\n",
            "blocklist.yaml:7 spec.sources[0].geo.provider: 'geoip2' is not one of ['rir', "
            "'maxmind-csv', 'maxmind-mmdb', 'dbip-csv', 'ip2location-csv', 'cidr-dir']",
        ),
        (
            "  - name: a\n"
            "    geo: {provider: maxmind-csv, files: [x], license_key_env: 'my key'}\n",
            "blocklist.yaml:7 spec.sources[0].geo.license_key_env: 'my key' is not an environment "
            "variable name",
        ),
        (
            "  - {name: a, static: [192.0.2.1], interval: 5 minutes}\n",
            "blocklist.yaml:6 spec.sources[0].interval: '5 minutes' is not a duration: a number of "
            "seconds or a number with a unit s, m, h or d (30m, 6h, 1d)",
        ),
        (
            "  - {name: a, static: [192.0.2.1], interval: 0m}\n",
            "blocklist.yaml:6 spec.sources[0].interval: '0m' is not a duration",
        ),
        (
            "  - {name: a, static: [192.0.2.1], interval: 0}\n",
            "blocklist.yaml:6 spec.sources[0].interval: 0 is less than the minimum of 1",
        ),
        (
            "  - {name: a, static: [192.0.2.1], max_shrink: 1.5}\n",
            "blocklist.yaml:6 spec.sources[0].max_shrink: 1.5 is greater than the maximum of 1",
        ),
        (
            "  - {name: a, static: [192.0.2.1], timeout: 0}\n",
            "blocklist.yaml:6 spec.sources[0].timeout: 0 is less than or equal to the minimum of 0",
        ),
        (
            "  - {name: a, static: [192.0.2.1], optional: 'yes please'}\n",
            "blocklist.yaml:6 spec.sources[0].optional: 'yes please' is not of type 'boolean'",
        ),
        (
            "  - {name: a, static: [192.0.2.1]}\n  allow: [192.0.2.0/33]\n",
            "blocklist.yaml:7 spec.allow[0]: '192.0.2.0/33': prefix length /33 out of range "
            "for IPv4",
        ),
        (
            "  - {name: a, static: [192.0.2.1]}\n  protect:\n    dns: [coredns]\n",
            "blocklist.yaml:8 spec.protect.dns[0]: 'coredns': not an IP address (hostnames are "
            "not resolved)",
        ),
        (
            "  - {name: a, static: [192.0.2.1]}\n  protect: {pod_cidrs: [10.0.0.0/8]}\n",
            "blocklist.yaml:7 spec.protect.pod_cidrs: unknown field 'pod_cidrs'; did you mean "
            "'cluster_cidrs'?",
        ),
        (
            "  - {name: a, static: [192.0.2.1]}\n  policy: {mode: tiers}\n",
            "blocklist.yaml:7 spec.policy.mode: 'tiers' is not one of ['tier', 'blog']",
        ),
        (
            "  - {name: a, static: [192.0.2.1]}\n  policy:\n    tier: {name: default}\n",
            "blocklist.yaml:8 spec.policy.tier.name: 'default' is reserved (a built-in tier); "
            "choose another name",
        ),
        (
            "  - {name: a, static: [192.0.2.1]}\n  policy:\n    tier: {name: My.Tier}\n",
            "blocklist.yaml:8 spec.policy.tier.name: 'My.Tier' is not a valid tier name: a DNS "
            "label (lowercase letters, digits, '-'), at most 63 characters",
        ),
        (
            "  - {name: a, static: [192.0.2.1]}\n  policy:\n    exempt_namespaces: [Kube_System]\n",
            "blocklist.yaml:8 spec.policy.exempt_namespaces[0]: 'Kube_System' is not a namespace "
            "name",
        ),
        (
            "  - {name: a, static: [192.0.2.1]}\n  policy:\n    exempt_selector: app = 'x'\n",
            "blocklist.yaml:8 spec.policy.exempt_selector: ",
        ),
        (
            "  - {name: a, static: [192.0.2.1]}\n  policy:\n    exempt_selector: global()\n",
            "blocklist.yaml:8 spec.policy.exempt_selector: global() is not allowed in an endpoint "
            "selector",
        ),
        (
            "  - {name: a, static: [192.0.2.1]}\n  policy: {set_label: 'bad label'}\n",
            "blocklist.yaml:7 spec.policy.set_label: 'bad label' is not a valid label key",
        ),
        (
            "  - {name: a, static: [192.0.2.1]}\n"
            "  policy: {set_label: projectcalico.org/namespace}\n",
            "blocklist.yaml:7 spec.policy.set_label: 'projectcalico.org/namespace' is reserved",
        ),
        (
            "  - {name: a, static: [192.0.2.1]}\n"
            "  policy: {set_label: app.kubernetes.io/managed-by}\n",
            "blocklist.yaml:7 spec.policy.set_label: 'app.kubernetes.io/managed-by' is reserved",
        ),
        (
            "  - {name: a, static: [192.0.2.1]}\n  output: {api: projectcalico.org/v1}\n",
            "blocklist.yaml:7 spec.output.api: 'projectcalico.org/v1' is not one of "
            "['crd.projectcalico.org/v1', 'projectcalico.org/v3']",
        ),
        (
            "  - {name: a, static: [192.0.2.1]}\n  shards: {max_bytes: 2000000}\n",
            "blocklist.yaml:7 spec.shards.max_bytes: 2000000 is greater than the maximum of "
            "1048576",
        ),
        (
            "  - {name: a, static: [192.0.2.1]}\n  safety: {max_shrink: -0.1}\n",
            "blocklist.yaml:7 spec.safety.max_shrink: -0.1 is less than the minimum of 0",
        ),
        (
            "  - {name: a, static: [192.0.2.1]}\n  safty: {}\n",
            "blocklist.yaml:7 spec.safty: unknown field 'safty'; did you mean 'safety'?",
        ),
    ],
)
def test_each_problem_has_path_and_line(body: str, expected: str) -> None:
    found = problems_of(HEAD + body)
    assert any(p.startswith(expected) for p in found), found


def test_top_level_problems() -> None:
    text = """\
    apiVersion: egressguard.io/v1
    kind: BlockList
    metadata: {name: Egress_Blocklist}
    spec: {sources: []}
    """
    assert problems_of(text) == [
        "blocklist.yaml:1 apiVersion: 'egressguard.io/v1alpha1' was expected",
        "blocklist.yaml:2 kind: 'Blocklist' was expected",
        "blocklist.yaml:3 metadata.name: 'Egress_Blocklist' is not a valid blocklist name: "
        "lowercase letters, digits and '-', starting and ending with a letter or digit, at most "
        "50 characters",
        "blocklist.yaml:4 spec.sources: [] should be non-empty",
    ]


def test_missing_required_keys() -> None:
    assert problems_of("apiVersion: egressguard.io/v1alpha1\nkind: Blocklist\n") == [
        "blocklist.yaml:1: 'metadata' is required",
        "blocklist.yaml:1: 'spec' is required",
    ]


def test_every_problem_is_reported_at_once() -> None:
    text = HEAD + (
        "  - {name: a, url: 'https://x.example/l', format: csvv}\n"
        "  - {name: b}\n"
        "  allow: [not-an-address]\n"
        "  policy: {mode: x}\n"
    )
    found = problems_of(text)
    assert [p.split(" ", 1)[0] for p in found] == [
        "blocklist.yaml:6",
        "blocklist.yaml:7",
        "blocklist.yaml:8",
        "blocklist.yaml:9",
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "blocklist.yaml:1: the file holds no document"),
        (MINIMAL + "---\n" + MINIMAL, "blocklist.yaml:8: one Blocklist per file"),
        ("a: [1\n", "blocklist.yaml:2: invalid YAML"),
        ("a: 1\na: 2\n", "blocklist.yaml:2: duplicate key 'a'"),
    ],
)
def test_file_level_problems(text: str, expected: str) -> None:
    found = problems_of(text)
    assert found[0].startswith(expected), found


def test_config_problems_is_a_config_error_with_a_hint() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(HEAD + "  - {name: a}\n  - {name: b}\n", "x.yaml")
    assert "(and 1 more)" in info.value.message
    assert info.value.hint is not None
    assert "docs/config.md" in info.value.hint


def test_load_config_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError):
        config.load_config(tmp_path / "nope.yaml")


def test_load_config_resolves_paths_against_its_directory(tmp_path: Path) -> None:
    (tmp_path / "cfg").mkdir()
    path = tmp_path / "cfg" / "blocklist.yaml"
    path.write_text(HEAD + "  - {name: a, file: ../data/list.txt, format: plain}\n")
    cfg = config.load_config(path)
    assert cfg.sources[0].spec.file == str(tmp_path / "cfg" / ".." / "data" / "list.txt")


@pytest.mark.parametrize(
    ("value", "seconds"),
    [(90, 90.0), ("90s", 90.0), ("30m", 1800.0), ("6h", 21600.0), ("2d", 172800.0)],
)
def test_durations(value: int | str, seconds: float) -> None:
    assert config.parse_duration(value) == seconds


@pytest.mark.parametrize("value", ["", "1.5h", "h", "-1m", "1w", True])
def test_bad_durations(value: Any) -> None:
    with pytest.raises(ValueError, match="duration"):
        config.parse_duration(value)


def test_digest_changes_with_content() -> None:
    a = parse_config(MINIMAL)
    b = parse_config(MINIMAL.replace("192.0.2.1", "192.0.2.2"))
    assert a.digest() == parse_config(MINIMAL).digest()
    assert a.digest() != b.digest()


# --------------------------------------------------------------------------------------------
# the published schema


def test_published_schema_is_the_one_the_code_enforces() -> None:
    packaged = resources.files("egressguard").joinpath(config.SCHEMA_RESOURCE).read_text()
    assert json.loads(SCHEMA_FILE.read_text()) == json.loads(packaged) == config.schema()
    cls = jsonschema.validators.validator_for(config.schema())
    cls.check_schema(config.schema())
    assert cls is jsonschema.Draft202012Validator
    pyproject = (REPO / "pyproject.toml").read_text()
    assert '"schemas/*.json"' in pyproject  # shipped as package data


def test_schema_enums_follow_the_registries() -> None:
    defs = config.schema()["$defs"]
    assert defs["source"]["properties"]["format"]["enum"] == list(registry.FORMATS)
    assert defs["geo"]["properties"]["provider"]["enum"] == list(registry.PROVIDERS)
    assert defs["geo"]["properties"]["country_field"]["enum"] == list(maxmind.COUNTRY_FIELDS)
    assert defs["output"]["properties"]["api"]["enum"] == list(CALICO_API_GROUPS)


def _property_names(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, sub in (node.get("properties") or {}).items():
            yield key
            yield from _property_names(sub)
        for sub in (node.get("$defs") or {}).values():
            yield from _property_names(sub)


def test_docs_document_every_field() -> None:
    docs = DOCS.read_text()
    missing = sorted(
        {
            k
            for k in _property_names(config.schema())
            if f"`{k}`" not in docs and f".{k}`" not in docs
        }
    )
    assert missing == []


def test_the_example_config_is_valid(examples_dir: Path) -> None:
    cfg = config.load_config(examples_dir / "blocklist.yaml")
    assert cfg.name
    assert {s.spec.kind for s in cfg.sources} >= {"file", "geo"}
