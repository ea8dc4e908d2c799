"""`egressguard explain` and its pure helpers: labels, pods from the inputs, the text trace,
the JSON document, exit codes and usage errors; plus the explain/lint lines of scripts/demo."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from egressguard import calico
from egressguard.calico import evaluate as ev
from egressguard.calico import explain as ex
from egressguard.cli import main
from egressguard.errors import InputError

REPO = Path(__file__).resolve().parents[3]
BLOG = str(REPO / "examples" / "blog")

PODS = """
apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {env: prod}}
---
apiVersion: v1
kind: Pod
metadata: {name: web-0, namespace: shop, labels: {app: web}}
spec: {containers: [{name: c, image: x, ports: [{name: http, containerPort: 8080}]}]}
status: {podIP: 10.244.1.7}
"""


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def explain_json(argv: list[str], capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    code, out, _ = run(["explain", *argv, "-o", "json"], capsys)
    assert code == 0
    doc: dict[str, Any] = json.loads(out)
    return doc


# --------------------------------------------------------------------------------------------
# helpers


def test_parse_labels() -> None:
    assert ex.parse_labels("app=web, tier=front,,") == {"app": "web", "tier": "front"}
    assert ex.parse_labels("") == {}
    assert ex.parse_labels("example.com/role=") == {"example.com/role": ""}


@pytest.mark.parametrize("text", ["app", "=web", "bad key=x", "a/b/c=x"])
def test_parse_labels_rejects(text: str) -> None:
    with pytest.raises(InputError):
        ex.parse_labels(text)


def test_endpoint_from_pod_in_inputs() -> None:
    loaded = calico.load_text(PODS)
    endpoint = ex.endpoint_from(loaded, pod="shop/web-0")
    assert endpoint.ips == ("10.244.1.7",)
    assert endpoint.labels["pcns.env"] == "prod"
    assert endpoint.ports[0].name == "http"
    with pytest.raises(InputError, match="not among the inputs"):
        ex.endpoint_from(loaded, pod="shop/nope")
    with pytest.raises(InputError, match="not both"):
        ex.endpoint_from(loaded, pod="shop/web-0", labels={"a": "b"})


def test_endpoint_from_pod_with_ip_changes_only_the_address() -> None:
    loaded = calico.load_text(PODS)
    found = ex.endpoint_from(loaded, pod="shop/web-0")
    moved = ex.endpoint_from(loaded, pod="shop/web-0", ip="10.244.9.9")
    assert moved.ips == ("10.244.9.9",)
    assert moved.addresses(4) == {(10 << 24) | (244 << 16) | (9 << 8) | 9}
    assert (moved.labels, moved.own_labels, moved.ports, moved.namespace, moved.name) == (
        found.labels,
        found.own_labels,
        found.ports,
        found.namespace,
        found.name,
    )
    assert (moved.is_host, moved.default_allow) == (False, True)


def test_endpoint_from_labels_uses_namespace_of_inputs() -> None:
    loaded = calico.load_text(PODS)
    endpoint = ex.endpoint_from(loaded, labels={"app": "api"}, namespace="shop", ip="10.0.0.1")
    assert endpoint.labels["pcns.env"] == "prod"
    assert endpoint.ips == ("10.0.0.1",)
    host = ex.endpoint_from(loaded, labels={"role": "node"}, host=True)
    assert host.is_host


def test_render_shows_tiers_policies_rules_and_verdict() -> None:
    loaded = calico.load_paths([BLOG])
    plan = ev.compile_plan(loaded)
    web = ev.Endpoint.pod({"app": "web"})
    flow = ev.Flow(dst="217.160.0.92", dst_port=443)
    text = ex.render(plan.evaluate(web, flow), plan, web, flow)
    assert "tier default (order 1000000" in text
    assert "GlobalNetworkPolicy egress-traffic-blocking (order 0)" in text
    assert "globalnetworkpolicies.yaml:15" in text  # the line of its kind
    assert "egress[0]" in text
    assert "-> logged, evaluation continues" in text
    assert "-> DENY" in text
    assert "217.160.0.92 is in GlobalNetworkSet egress-traffic-blocking (217.160.0.92/32)" in text
    assert text.splitlines()[-1].startswith("verdict: Deny, logged")


# --------------------------------------------------------------------------------------------
# the command


def test_cli_blocked_text(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(
        ["explain", "-f", BLOG, "--src-labels", "app=web", "--dst", "217.160.0.92", "--port",
         "443"],
        capsys,
    )  # fmt: skip
    assert code == 0
    assert "verdict: Deny, logged" in out
    assert err == ""


def test_cli_scenarios_json(capsys: pytest.CaptureFixture[str]) -> None:
    base = ["-f", BLOG, "--src-labels", "app=web", "--port", "443"]
    blocked = explain_json([*base, "--dst", "217.160.0.92"], capsys)
    assert (blocked["verdict"], blocked["logged"]) == ("Deny", True)
    assert blocked["decided_by"]["network_set"] == "egress-traffic-blocking"
    assert blocked["decided_by"]["cidr"] == "217.160.0.92/32"
    assert blocked["version"] == ex.JSON_VERSION
    assert blocked["flow"]["dst"] == "217.160.0.92"
    assert blocked["flow"]["dst_port"] == 443
    assert blocked["endpoint"]["labels"] == {"app": "web"}
    for step in blocked["trace"]:
        assert {"tier", "policy", "rule", "action", "network_set", "cidr"} <= set(step)
    other = explain_json([*base, "--dst", "198.51.100.7"], capsys)
    assert (other["verdict"], other["logged"]) == ("Allow", False)
    assert other["decided_by"]["policy"]["name"] == "egress-traffic-allow"


def test_cli_pod_from_inputs_and_kubernetes_policy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    extra = tmp_path / "k8s.yaml"
    extra.write_text(
        PODS
        + """
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web-egress, namespace: shop}
spec:
  podSelector: {matchLabels: {app: web}}
  policyTypes: [Egress]
  egress: [{to: [{ipBlock: {cidr: 192.0.2.0/24}}]}]
""",
        encoding="utf-8",
    )
    doc = explain_json(
        ["-f", BLOG, str(extra), "--src-pod", "shop/web-0", "--dst", "198.51.100.7"], capsys
    )
    assert doc["verdict"] == "Allow"  # the allow-all policy bypasses the Kubernetes policy
    assert doc["endpoint"]["ips"] == ["10.244.1.7"]
    only_k8s = explain_json(
        ["-f", str(extra), "--src-pod", "shop/web-0", "--dst", "198.51.100.7"], capsys
    )
    assert (only_k8s["verdict"], only_k8s["reason"]) == ("Deny", "end-of-tier")


def test_cli_ingress(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    policy = tmp_path / "p.yaml"
    policy.write_text(
        """
apiVersion: crd.projectcalico.org/v1
kind: GlobalNetworkPolicy
metadata: {name: db-in}
spec:
  selector: app == 'db'
  types: [Ingress]
  ingress: [{action: Allow, protocol: TCP, destination: {ports: [5432]}}]
""",
        encoding="utf-8",
    )
    base = ["-f", str(policy), "--direction", "ingress", "--dst-labels", "app=db"]
    ok = explain_json([*base, "--src-ip", "192.0.2.9", "--port", "5432"], capsys)
    assert (ok["verdict"], ok["direction"]) == ("Allow", "ingress")
    denied = explain_json([*base, "--src-ip", "192.0.2.9", "--port", "22"], capsys)
    assert denied["verdict"] == "Deny"


def test_cli_reports_input_problems(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "apiVersion: crd.projectcalico.org/v1\nkind: GlobalNetworkPolicy\n"
        "metadata: {name: x}\nspec: {egress: [{action: deny}]}\n",
        encoding="utf-8",
    )
    code, out, err = run(["explain", "-f", str(bad), "--dst", "192.0.2.1"], capsys)
    assert code == 0
    assert "verdict: Allow" in out
    assert "1 problem in the inputs" in err
    doc = explain_json(["-f", str(bad), "--dst", "192.0.2.1"], capsys)
    assert doc["input_problems"][0]["path"] == "spec.egress[0].action"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--src-labels", "app=web"], "needs --dst"),
        (["--dst", "192.0.2.1", "--src-labels", "app"], "--src-labels"),
        (["--dst", "192.0.2.1", "--dst-labels", "app=db"], "--dst-labels describes"),
        (["--direction", "ingress", "--dst-labels", "app=db"], "needs --src-ip"),
        (["--dst", "192.0.2.1", "-f", "/nonexistent/x.yaml"], "no such file"),
    ],
)
def test_cli_usage_errors(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(["explain", "-f", BLOG, *argv], capsys)
    assert code == 2
    assert message in err


def test_cli_bad_address_is_an_input_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["explain", "-f", BLOG, "--dst", "217.160.0.300"], capsys)
    assert code == 1
    assert "destination address" in err


def test_cli_help_teaches(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["explain", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "examples:" in out
    assert "docs/explain.md" in out


def test_demo_lines_run() -> None:
    """The explain and lint lines of scripts/demo, as a user runs them (a real process)."""
    exe = [sys.executable, "-m", "egressguard"]
    lint = subprocess.run(
        [*exe, "lint", "-f", "examples/blog"], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert lint.returncode == 0, lint.stderr
    assert "allow-all-bypasses-k8s-isolation" in lint.stdout
    for dst, verdict in (("217.160.0.92", "verdict: Deny, logged"),
                         ("198.51.100.7", "verdict: Allow, not logged")):  # fmt: skip
        done = subprocess.run(
            [*exe, "explain", "-f", "examples/blog", "--src-labels", "app=web", "--dst", dst,
             "--port", "443"],
            cwd=REPO, capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert verdict in done.stdout
    demo = (REPO / "scripts" / "demo").read_text(encoding="utf-8")
    assert "egressguard lint -f examples/blog" in demo
    assert "egressguard explain -f examples/blog --src-labels app=web --dst 217.160.0.92" in demo


def test_readme_explain_and_lint_lines_run(capsys: pytest.CaptureFixture[str]) -> None:
    """Every ``egressguard explain``/``lint`` line of the README runs as written."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    commands = [
        line.split("#")[0].split()
        for line in readme.splitlines()
        if line.startswith(("egressguard explain ", "egressguard lint "))
    ]
    assert len(commands) >= 3
    outputs = []
    for words in commands:
        argv = [BLOG if a == "examples/blog" else a for a in words[1:]]
        code, out, err = run(argv, capsys)
        assert code == 0, err
        outputs.append(out)
    assert "verdict: Deny, logged" in outputs[0]
    second = json.loads(outputs[1])
    assert (second["verdict"], second["logged"]) == ("Allow", False)
