"""deploy/logs-daemonset.yaml: valid Kubernetes, and what it runs is a command we have."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from egressguard.cli import build_parser

MANIFEST = Path(__file__).resolve().parents[3] / "deploy" / "logs-daemonset.yaml"
DOCS = [d for d in yaml.safe_load_all(MANIFEST.read_text()) if d is not None]


def daemonset() -> dict[str, Any]:
    (ds,) = [d for d in DOCS if d["kind"] == "DaemonSet"]
    return ds


@pytest.mark.parametrize("version", ["1.30.0", kubernetes_validate.latest_version()])
@pytest.mark.parametrize("doc", DOCS, ids=lambda d: d["kind"])
def test_manifest_validates(doc: dict[str, Any], version: str) -> None:
    kubernetes_validate.validate(doc, version, strict=True)


def test_command_is_a_valid_follow_invocation() -> None:
    (container,) = daemonset()["spec"]["template"]["spec"]["containers"]
    command = container["command"]
    assert command[:3] == ["egressguard", "logs", "follow"]
    args = build_parser().parse_args(command[1:])
    assert args.handler.__name__ == "_run_follow"
    assert (args.source, args.root, args.output) == ("auto", "/host", "json")
    assert (args.metrics_port, args.metrics_address) == (9108, "0.0.0.0")
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["metrics"] == args.metrics_port
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"


def test_pods_of_this_node_are_watched_with_read_only_rights() -> None:
    """--kube attributes sources to pods; the node comes from the downward API and the
    service account may only read pods."""
    (container,) = daemonset()["spec"]["template"]["spec"]["containers"]
    args = build_parser().parse_args(container["command"][1:])
    assert args.kube is True
    assert args.dedup_window == 2.0
    env = {e["name"]: e for e in container["env"]}
    assert env["NODE_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"
    (role,) = [d for d in DOCS if d["kind"] == "ClusterRole"]
    assert role["rules"] == [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list", "watch"]}]
    (binding,) = [d for d in DOCS if d["kind"] == "ClusterRoleBinding"]
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    account = daemonset()["spec"]["template"]["spec"]["serviceAccountName"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": account, "namespace": "egressguard-system"}
    ]


def test_host_logs_are_read_only_and_the_pod_is_unprivileged() -> None:
    spec = daemonset()["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert mounts["/host/var/log"]["readOnly"] is True
    assert all(m.get("readOnly") is True for m in mounts.values())
    host_paths = {v["hostPath"]["path"] for v in spec["volumes"] if "hostPath" in v}
    assert host_paths == {"/var/log", "/run/log/journal", "/etc/machine-id"}
    security = container["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["readOnlyRootFilesystem"] is True
    assert security["capabilities"]["drop"] == ["ALL"]
    assert container["image"] == "ghcr.io/egressguard/egressguard:0.1.0"
