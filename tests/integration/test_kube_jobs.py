"""The Job client of ``verify --run`` retries as the kube adapter does, over real HTTP.

Both clients call the API through ``adapters.kube.call_with_retry``; these tests pin what that
means for Jobs: reads and deletes are retried on transient answers (with the server's
``Retry-After`` honoured within the cap), a create is never repeated, and a persistent outage
ends in one transient KubeError that says how often it was tried.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lightkube import Client, KubeConfig

sys.path.insert(0, str(Path(__file__).parent))
from kubeapi import KubeApi, serve

from egressguard.adapters.kube import RetryPolicy
from egressguard.adapters.kube_jobs import LightkubeJobClient, connect_jobs
from egressguard.errors import KubeError

pytestmark = pytest.mark.integration

NS = "default"


def job(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "probe", "image": "registry.example/probe:1"}],
                }
            }
        },
    }


@pytest.fixture
def api(tmp_path: Path) -> Iterator[KubeApi]:
    with serve(tmp_path) as running:

        def declare() -> None:
            running.server.serve_resource("batch", "v1", "jobs", "Job", namespaced=True)
            running.server.serve_resource("", "v1", "pods", "Pod", namespaced=True)

        running._in_loop(declare)
        yield running


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def client(api: KubeApi, sleeps: list[float]) -> Iterator[LightkubeJobClient]:
    """A Job client whose backoff sleeps are recorded instead of slept."""
    lightkube = Client(KubeConfig.from_file(api.kubeconfig), field_manager="egressguard")
    with LightkubeJobClient(
        lightkube,
        retry=RetryPolicy(attempts=3, initial_delay=0.1, max_delay=2.0),
        sleep=sleeps.append,
    ) as jobs:
        yield jobs


def methods(api: KubeApi, plural: str) -> list[str]:
    return [r.method for r in api.requests() if f"/{plural}" in r.path]


def test_a_read_is_retried_after_transient_failures(
    api: KubeApi, client: LightkubeJobClient, sleeps: list[float]
) -> None:
    client.create_job(job("j1"))
    api.inject(503, method="GET", plural="jobs", times=2)

    got = client.get_job(NS, "j1")

    assert got is not None
    assert got["metadata"]["name"] == "j1"
    assert methods(api, "jobs") == ["POST", "GET", "GET", "GET"]
    assert len(sleeps) == 2
    assert 0.05 <= sleeps[0] <= 0.1  # initial delay with jitter in [0.5, 1]
    assert 0.1 <= sleeps[1] <= 0.2  # doubled


def test_a_read_waits_as_long_as_the_server_asks_within_the_cap(
    api: KubeApi, client: LightkubeJobClient, sleeps: list[float]
) -> None:
    api.inject(429, method="GET", plural="pods", retry_after=1)
    api.inject(429, method="GET", plural="pods", retry_after=30)

    assert client.list_pods(NS, {"egressguard.io/verify-run": "r1"}) == []
    assert sleeps == [1.0, 2.0]  # the server's 1 s, then 30 s capped at max_delay


def test_a_create_is_never_repeated(
    api: KubeApi, client: LightkubeJobClient, sleeps: list[float]
) -> None:
    api.inject(503, method="POST", plural="jobs")

    with pytest.raises(KubeError) as info:
        client.create_job(job("j1"))

    assert info.value.status == 503
    assert info.value.transient
    assert "attempts" not in info.value.message
    assert methods(api, "jobs") == ["POST"]
    assert sleeps == []


def test_a_persistent_outage_gives_up_with_a_transient_error(
    api: KubeApi, client: LightkubeJobClient, sleeps: list[float]
) -> None:
    client.create_job(job("j1"))
    api.inject(503, method="DELETE", plural="jobs", times=10)

    with pytest.raises(KubeError) as info:
        client.delete_job(NS, "j1")

    assert info.value.status == 503
    assert info.value.transient
    assert "after 3 attempts" in info.value.message
    assert methods(api, "jobs") == ["POST", "DELETE", "DELETE", "DELETE"]
    assert len(sleeps) == 2


def test_a_permanent_failure_is_reported_at_once(
    api: KubeApi, client: LightkubeJobClient, sleeps: list[float]
) -> None:
    api.inject(403, method="GET", plural="jobs")

    with pytest.raises(KubeError) as info:
        client.get_job(NS, "j1")

    assert info.value.status == 403
    assert not info.value.transient
    assert "RBAC" in str(info.value.hint)
    assert methods(api, "jobs") == ["GET"]
    assert sleeps == []


def test_connect_jobs_reads_the_kubeconfig_as_connect_does(api: KubeApi) -> None:
    with connect_jobs(api.kubeconfig) as jobs:
        assert jobs.get_job(NS, "missing") is None  # a 401 would raise
    with pytest.raises(KubeError, match="cannot load the Kubernetes configuration") as info:
        connect_jobs(api.kubeconfig, context="no-such-context")
    assert "--kubeconfig" in str(info.value.hint)
