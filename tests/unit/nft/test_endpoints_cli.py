"""The endpoints file, the compiler's choices that need no kernel, and the nft commands."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from egressguard import calico
from egressguard.cli import build_parser, main
from egressguard.errors import InputError
from egressguard.nft import compile as nft_compile
from egressguard.nft import endpoints, ir

GOOD = """\
apiVersion: egressguard.io/v1alpha1
kind: Endpoints
host:
  name: node-1
  labels: {role: node}
  defaultAction: Deny
namespaces:
  - {name: shop, labels: {team: web}}
workloads:
  - name: web
    namespace: shop
    labels: {app: web}
    interface: "cali*"
    addresses: [198.51.100.11, "2001:db8::11/128"]
    ports: [{name: http, port: 8080}]
"""


def test_a_full_endpoints_file() -> None:
    eps = endpoints.load_text(GOOD, "e.yaml")
    assert eps.host is not None
    assert eps.host.name == "node-1"
    assert dict(eps.host.labels) == {"role": "node"}
    assert eps.host.default_allow is False
    assert eps.host.exempt_interfaces == ("lo",)
    (web,) = eps.workloads
    assert web.addresses == ("198.51.100.11", "2001:db8::11")
    assert web.ports[0].protocol == "TCP"
    assert web.as_pod().calico_labels(eps.namespace("shop"))["pcns.team"] == "web"


def test_host_null_and_host_missing() -> None:
    head = "apiVersion: egressguard.io/v1alpha1\nkind: Endpoints\n"
    assert endpoints.load_text(head + "host: null\n").host is None
    assert endpoints.load_text(head).host == endpoints.Host()


def test_every_problem_is_reported_with_its_line() -> None:
    bad = """\
apiVersion: egressguard.io/v1alpha1
kind: Endpoint
host: {defaultAction: Maybe, colour: blue}
workloads:
  - {name: web, interface: "bad name", addresses: [300.1.1.1]}
  - {name: web, interface: eth1}
  - {name: web, interface: eth2}
"""
    with pytest.raises(InputError) as caught:
        endpoints.load_text(bad, "e.yaml")
    text = caught.value.message
    for expected in (
        "e.yaml:2 kind: must be Endpoints",
        "e.yaml:3 host.defaultAction",
        "e.yaml:3 host.colour: unknown field",
        "e.yaml:5 workloads[0].interface",
        "e.yaml:5 workloads[0].addresses[0]",
        "e.yaml:7 workloads[2].name: workload default/web is defined twice",
    ):
        assert expected in text, text


def test_without_endpoints_the_host_with_no_labels_gets_default_selector_policies() -> None:
    loaded = calico.load_paths(["examples/blog"])
    compiled = nft_compile.compile_table(loaded)
    (host,) = compiled.endpoints
    assert host.kind == "host"
    assert host.policies == (
        "default/gnp/egress-traffic-blocking",
        "default/gnp/egress-traffic-allow",
    )
    hooks = [c.hook.hook for c in compiled.table.chains if c.hook is not None]
    assert hooks == ["output"]  # no workloads: the forward hook is left alone


def test_a_log_prefix_template_is_encoded_per_policy() -> None:
    loaded = calico.load_paths(["examples/blog"])
    options = nft_compile.Options(log_prefix="eg %t %k %n", log_limit=ir.LogLimit(5))
    table = nft_compile.compile_table(loaded, options=options).table
    logs = [s for c in table.chains for r in c.rules for s in r.statements]
    assert {s.prefix for s in logs} == {"eg default gnp egress-traffic-blocking: "}
    assert all(s.limit == ir.LogLimit(5) for s in logs)


@pytest.mark.parametrize("argv", [["nft", "render", "-f", "x"], ["agent", "--manifests", "x"]])
def test_the_log_options_default_to_the_compilers_own(argv: list[str]) -> None:
    # The command line writes its defaults out (start-up); they must give Options().
    from egressguard.cli import dataplane

    assert dataplane._options(build_parser().parse_args(argv)) == nft_compile.Options()


def test_cli_render_apply_needs_valid_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["nft", "render", "-f", "examples/blog"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("table inet egressguard\ndelete table inet egressguard\n")
    assert main(["nft", "render", "-f", "examples/blog", "-o", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["endpoints"][0]["kind"] == "host"
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        (Path("examples/blog/globalnetworkpolicies.yaml").read_text()).replace(
            "action: Deny", "action: deny"
        )
    )
    assert main(["nft", "render", "-f", str(bad)]) == 1
    assert "deny" in capsys.readouterr().err
    assert main(["nft", "render", "-f", "examples/blog", "--log-rate", "fast"]) == 2


@pytest.mark.parametrize("command", ["render", "apply", "diff", "flush"])
def test_every_nft_command_has_a_teaching_help(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as done:
        main(["nft", command, "--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    assert "examples:" in text
    assert "egressguard nft" in text
