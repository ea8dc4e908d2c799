"""The probe Jobs ``verify`` renders: valid Kubernetes objects, hardened, carrying their plan."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from egressguard import calico, cli
from egressguard.adapters.verify_probe import MAX_TIMEOUT, PLAN_ENV, decode_plan
from egressguard.app import verify
from egressguard.errors import UsageError

K8S_VERSIONS = ["1.30.0", kubernetes_validate.latest_version()]
EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "blog"


@pytest.fixture(scope="module")
def plan() -> verify.VerifyPlan:
    options = verify.VerifyOptions(
        namespaces=("default", "web"),
        allowed=("198.51.100.7",),
        ports=(verify.PortSpec("tcp", 443), verify.PortSpec("udp", 53)),
        pod_labels={"app": "web"},
    )
    return verify.make_plan(calico.load_paths([EXAMPLES]), options)


def container(job: dict[str, Any]) -> dict[str, Any]:
    (only,) = job["spec"]["template"]["spec"]["containers"]
    return dict(only)


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_every_job_is_valid_against_the_kubernetes_schema(
    plan: verify.VerifyPlan, version: str
) -> None:
    jobs = verify.render_jobs(plan)
    assert len(jobs) == 2
    for job in jobs:
        # strict: unknown fields are errors too, so a misspelt field cannot hide.
        kubernetes_validate.validate(job, version, strict=True)


def test_the_validator_does_reject_a_broken_job(plan: verify.VerifyPlan) -> None:
    job = verify.render_job(plan, plan.namespaces[0])
    job["spec"]["backoffLimit"] = "none"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(job, K8S_VERSIONS[-1], strict=True)
    job = verify.render_job(plan, plan.namespaces[0])
    job["spec"]["template"]["spec"]["restartPolicy_"] = "Never"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(job, K8S_VERSIONS[-1], strict=True)


def test_the_pod_meets_the_restricted_pod_security_standard(plan: verify.VerifyPlan) -> None:
    """The checks of the ``restricted`` profile (kubernetes.io/docs/concepts/security/
    pod-security-standards) that apply to this pod, plus what the brief asks beyond them."""
    for job in verify.render_jobs(plan):
        pod = job["spec"]["template"]["spec"]
        c = container(job)
        sc = c["securityContext"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] != 0
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["capabilities"] == {"drop": ["ALL"]}
        assert sc["runAsNonRoot"] is True
        assert sc["readOnlyRootFilesystem"] is True
        assert "privileged" not in sc
        for host_or_volume in ("hostNetwork", "hostPID", "hostIPC", "volumes"):
            assert host_or_volume not in pod
        assert pod["automountServiceAccountToken"] is False
        assert pod["restartPolicy"] == "Never"
        assert set(c["resources"]["limits"]) == {"cpu", "memory"}
        assert set(c["resources"]["requests"]) == {"cpu", "memory"}


def test_the_job_is_short_lived_and_never_retries(plan: verify.VerifyPlan) -> None:
    for ns_plan, job in zip(plan.namespaces, verify.render_jobs(plan), strict=True):
        spec = job["spec"]
        assert spec["backoffLimit"] == 0
        assert spec["ttlSecondsAfterFinished"] > 0
        # The deadline leaves room for start-up plus every probe's timeout.
        waves = -(-len(ns_plan.probes) // 32)
        assert spec["activeDeadlineSeconds"] >= 60 + waves * plan.options.timeout
        assert spec["activeDeadlineSeconds"] <= 600


def test_labels_identify_the_run_on_the_job_and_its_pod(plan: verify.VerifyPlan) -> None:
    for job in verify.render_jobs(plan):
        own = {
            "app.kubernetes.io/managed-by": "egressguard",
            "app.kubernetes.io/name": "egressguard-verify",
            "egressguard.io/verify-run": plan.run_id,
        }
        assert job["metadata"]["labels"] == own
        assert job["spec"]["template"]["metadata"]["labels"] == {**own, "app": "web"}
        assert job["metadata"]["name"] == f"egressguard-verify-{plan.run_id}"
        # The Job name becomes a pod label value (job-name): at most 63 characters.
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", job["metadata"]["name"])


def test_the_ownership_label_is_the_one_sync_uses() -> None:
    from egressguard.app import sync

    assert (verify.MANAGED_BY_LABEL, verify.MANAGED_BY_VALUE) == (
        sync.MANAGED_BY_LABEL,
        sync.MANAGED_BY_VALUE,
    )


def test_each_job_carries_exactly_its_namespaces_probes(plan: verify.VerifyPlan) -> None:
    for ns_plan, job in zip(plan.namespaces, verify.render_jobs(plan), strict=True):
        assert job["metadata"]["namespace"] == ns_plan.namespace
        c = container(job)
        assert c["command"] == ["egressguard"]
        assert c["args"] == ["verify", "probe"]
        env = {e["name"]: e["value"] for e in c["env"]}
        run, probes = decode_plan(env[PLAN_ENV])
        assert run == plan.run_id
        assert probes == [p.spec for p in ns_plan.probes]


def test_valid_pod_labels_are_accepted() -> None:
    labels = {"app": "web", "example.com/tier": "front_end.1", "team": ""}
    assert verify.VerifyOptions(pod_labels=labels).pod_labels == labels


def test_the_image_can_be_replaced(plan: verify.VerifyPlan) -> None:
    options = verify.VerifyOptions(image="registry.example/eg:dev", allowed=("192.0.2.1",))
    other = verify.make_plan(calico.load_paths([EXAMPLES]), options)
    assert container(verify.render_jobs(other)[0])["image"] == "registry.example/eg:dev"
    assert container(verify.render_jobs(plan)[0])["image"] == verify.DEFAULT_IMAGE


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"pod_labels": {"egressguard.io/verify-run": "x"}}, "sets this label itself"),
        ({"pod_labels": {"app": "we b"}}, "not a valid Kubernetes label"),
        ({"pod_labels": {"-app": "web"}}, "not a valid Kubernetes label"),
        ({"pod_labels": {"Example.com/app": "web"}}, "not a valid Kubernetes label"),
        ({"pod_labels": {"app": "x" * 64}}, "not a valid Kubernetes label"),
        ({"namespaces": ("Default",)}, "not a valid Kubernetes namespace"),
        ({"namespaces": ()}, "at least one namespace"),
        ({"timeout": 0.0}, "--timeout"),
        ({"timeout": MAX_TIMEOUT + 1}, "--timeout"),
        ({"samples": -1}, "--samples"),
        ({"ports": ()}, "--port"),
        ({"run_id": "UPPER"}, "run id"),
        ({"family": 5}, "--family"),
    ],
)
def test_bad_options_are_usage_errors(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        verify.VerifyOptions(**kwargs)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("443", ("tcp", 443)), ("tcp/80", ("tcp", 80)), ("UDP/53", ("udp", 53))],
)
def test_port_specs(text: str, expected: tuple[str, int]) -> None:
    assert tuple(verify.PortSpec.parse(text)) == expected


@pytest.mark.parametrize("text", ["sctp/9", "0", "65536", "tcp/", "http"])
def test_bad_port_specs(text: str) -> None:
    with pytest.raises(UsageError):
        verify.PortSpec.parse(text)


def test_the_command_prints_the_jobs_ready_for_kubectl(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = cli.main(["verify", "-f", str(EXAMPLES), "-n", "default", "-n", "web"])
    assert code == 0
    out = capsys.readouterr().out
    docs = [d for d in yaml.safe_load_all(out) if d is not None]
    options = verify.VerifyOptions(namespaces=("default", "web"))
    expected = verify.render_jobs(verify.make_plan(calico.load_paths([EXAMPLES]), options))
    assert docs == expected
    # The plan travels along as YAML comments, one line per probe.
    comments = [line for line in out.splitlines() if line.startswith("#")]
    assert sum("Blocked" in line for line in comments) == 6  # 3 addresses x 2 namespaces
    assert any(line.startswith("# note: no --allowed destination") for line in comments)
