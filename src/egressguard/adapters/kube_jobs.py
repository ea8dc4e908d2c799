"""Kubernetes Jobs for ``egressguard verify --run``: create, read, list pods, read logs, delete.

A separate module from :mod:`egressguard.adapters.kube` (which owns the Calico objects and the
Lease) so that each stays a small Protocol; its requests go through that module's
``call_with_retry``, so a failure here is translated, retried and reads like any other
Kubernetes failure.

Objects cross the boundary as plain manifest dicts, like everywhere in egressguard.

Choices worth knowing:

* **Reads and deletes are retried** on transient failures (timeouts, 429, 5xx) exactly as the
  kube adapter retries (capped backoff, ``Retry-After`` honoured). **Creates are not**: a create
  whose answer was lost may have happened, and repeating it would fail with 409 anyway.
* **Delete cascades** (``propagationPolicy=Background``). The REST default for a batch/v1 Job is
  to *orphan* its pods (the Job registry's default garbage-collection policy), which would leave
  the probe pod behind; ``kubectl delete job`` sets Background for the same reason (and users
  of clients that do not are surprised, e.g. juliacomputing/Kuber.jl#52).
* **Logs are bounded**: ``tail_lines`` is sent to the server and at most ``max_bytes`` are read.
* **Answers that do not decode** (lightkube's typed models are strict) become a KubeError too,
  never a traceback.
"""

from __future__ import annotations

import copy
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

from lightkube import Client
from lightkube.codecs import from_dict
from lightkube.resources.batch_v1 import Job
from lightkube.resources.core_v1 import Pod
from lightkube.types import CascadeType

from egressguard.adapters.kube import (
    FIELD_MANAGER,
    ObjectRef,
    RetryPolicy,
    call_with_retry,
    lightkube_client,
)
from egressguard.errors import KubeError, ManifestError

__all__ = [
    "FakeJobClient",
    "FakeRun",
    "JobClient",
    "LightkubeJobClient",
    "connect_jobs",
]

_MAX_LOG_BYTES = 4 * 1024 * 1024


class JobClient(Protocol):
    """What ``verify --run`` needs from a cluster. Objects are plain manifest dicts."""

    def create_job(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        """Create a batch/v1 Job (namespace from its metadata); returns the stored object."""
        ...

    def get_job(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The Job as the server has it now, or None when it does not exist."""
        ...

    def list_pods(self, namespace: str, labels: Mapping[str, str]) -> list[dict[str, Any]]:
        """Pods in ``namespace`` carrying every one of ``labels``."""
        ...

    def pod_log(self, namespace: str, name: str, *, tail_lines: int | None = None) -> str:
        """The log of the pod's only container (stdout and stderr as the kubelet keeps them).

        KubeError(status=400) when the container has not started (the API server says so).
        """
        ...

    def delete_job(self, namespace: str, name: str) -> bool:
        """Delete the Job and, in the background, its pods; False when it was already gone."""
        ...


# --------------------------------------------------------------------------- the real client


def _to_dict(obj: Any) -> dict[str, Any]:
    """A lightkube object as the plain manifest dict the rest of egressguard uses."""
    return dict(obj.to_dict())


_T = TypeVar("_T")


class LightkubeJobClient:
    """:class:`JobClient` over a lightkube ``Client``. Build it with :func:`connect_jobs`."""

    def __init__(
        self,
        client: Client,
        *,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
        max_log_bytes: int = _MAX_LOG_BYTES,
    ) -> None:
        self._kube = client
        self._retry = retry or RetryPolicy()
        self._sleep = sleep
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self._max_log_bytes = max_log_bytes

    def close(self) -> None:
        self._kube.close()

    def __enter__(self) -> LightkubeJobClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, action: str, fn: Callable[[], _T], *, retry: bool = True) -> _T:
        try:
            return call_with_retry(
                action, fn, policy=self._retry, sleep=self._sleep, rng=self._rng, retry=retry
            )
        except ValueError as exc:  # lightkube's models refused the answer (msgspec)
            raise KubeError(
                f"Kubernetes API: {action}: the answer does not decode: {exc}",
                hint="is this a Kubernetes API server of a supported version?",
            ) from exc

    def create_job(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        ref = ObjectRef.of(manifest)
        if (ref.api_version, ref.kind) != ("batch/v1", "Job") or not ref.namespace:
            raise ManifestError(f"{ref}: expected a namespaced batch/v1 Job")
        body = from_dict(copy.deepcopy(dict(manifest)))
        created = self._call(
            f"create {ref}",
            lambda: self._kube.create(body, field_manager=FIELD_MANAGER),
            retry=False,
        )
        return _to_dict(created)

    def get_job(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            job = self._call(
                f"get Job {namespace}/{name}",
                lambda: self._kube.get(Job, name, namespace=namespace),
            )
        except KubeError as err:
            if err.status == 404:
                return None
            raise
        return _to_dict(job)

    def list_pods(self, namespace: str, labels: Mapping[str, str]) -> list[dict[str, Any]]:
        selector: dict[str, Any] = dict(labels)

        def fetch() -> list[dict[str, Any]]:
            return [
                _to_dict(pod) for pod in self._kube.list(Pod, namespace=namespace, labels=selector)
            ]

        return self._call(f"list Pods in {namespace}", fetch)

    def pod_log(self, namespace: str, name: str, *, tail_lines: int | None = None) -> str:
        limit = self._max_log_bytes

        def fetch() -> str:
            chunks: list[str] = []
            size = 0
            for line in self._kube.log(name, namespace=namespace, tail_lines=tail_lines):
                chunks.append(line)
                size += len(line)
                if size >= limit:
                    break
            return "".join(chunks)

        return self._call(f"read the log of Pod {namespace}/{name}", fetch)

    def delete_job(self, namespace: str, name: str) -> bool:
        try:
            self._call(
                f"delete Job {namespace}/{name}",
                lambda: self._kube.delete(
                    Job, name, namespace=namespace, cascade=CascadeType.BACKGROUND
                ),
            )
        except KubeError as err:
            if err.status == 404:
                return False
            raise
        return True


def connect_jobs(
    kubeconfig: str | Path | None = None,
    *,
    context: str | None = None,
    timeout: float = 10.0,
    retry: RetryPolicy | None = None,
) -> LightkubeJobClient:
    """A Job client from a kubeconfig file, or from the environment when ``kubeconfig`` is None
    (in a pod: its service account; else ``KUBECONFIG``, else ``~/.kube/config``)."""
    client = lightkube_client(kubeconfig, context=context, timeout=timeout)
    return LightkubeJobClient(client, retry=retry)


# --------------------------------------------------------------------------- the fake


@dataclass
class FakeRun:
    """How the fake cluster "runs" one Job: what its pod and the Job end up as.

    ``job_condition`` is ``"Complete"``, ``"Failed"`` or None (still running); ``pod`` False means
    no pod was ever created (for example admission refused it). ``waiting_reason`` puts the
    container in a waiting state (``ImagePullBackOff``) instead of terminated. ``log`` None means
    the log cannot be read (the API server answers 400, as for a container that never started).
    ``polls_until_done`` delays the final state by that many ``get_job`` calls.
    """

    log: str | None = ""
    job_condition: str | None = "Complete"
    condition_reason: str = ""
    pod: bool = True
    pod_phase: str = "Succeeded"
    exit_code: int | None = 0
    terminated_reason: str = "Completed"
    waiting_reason: str | None = None
    polls_until_done: int = 0


@dataclass
class _FakeJob:
    manifest: dict[str, Any]
    run: FakeRun
    polls: int = 0


@dataclass
class FakeJobClient:
    """In-memory :class:`JobClient`. ``runtime(job manifest)`` decides how each Job runs.

    ``create_errors`` maps a namespace to the KubeError its create raises. ``deleted`` and
    ``created`` record calls, for assertions. The fake is for tests of the use case's logic
    (waiting, parsing, cleanup); the real API path is tested against an API server emulator.
    """

    runtime: Callable[[dict[str, Any]], FakeRun]
    create_errors: dict[str, KubeError] = field(default_factory=dict)
    log_errors: dict[str, KubeError] = field(default_factory=dict)
    created: list[tuple[str, str]] = field(default_factory=list)
    deleted: list[tuple[str, str]] = field(default_factory=list)
    _jobs: dict[tuple[str, str], _FakeJob] = field(default_factory=dict)

    def create_job(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        ref = ObjectRef.of(manifest)
        namespace = ref.namespace or "default"
        if namespace in self.create_errors:
            raise self.create_errors[namespace]
        key = (namespace, ref.name)
        if key in self._jobs:
            raise KubeError(f"Job {namespace}/{ref.name} already exists", status=409)
        stored = copy.deepcopy(dict(manifest))
        self._jobs[key] = _FakeJob(stored, self.runtime(copy.deepcopy(stored)))
        self.created.append(key)
        return copy.deepcopy(stored)

    def _done(self, job: _FakeJob) -> bool:
        return job.polls >= job.run.polls_until_done

    def get_job(self, namespace: str, name: str) -> dict[str, Any] | None:
        job = self._jobs.get((namespace, name))
        if job is None:
            return None
        job.polls += 1
        out = copy.deepcopy(job.manifest)
        status: dict[str, Any] = {}
        if self._done(job) and job.run.job_condition:
            status["conditions"] = [
                {
                    "type": job.run.job_condition,
                    "status": "True",
                    "reason": job.run.condition_reason,
                }
            ]
            status["succeeded" if job.run.job_condition == "Complete" else "failed"] = 1
        elif job.run.pod:
            status["active"] = 1
        out["status"] = status
        return out

    def list_pods(self, namespace: str, labels: Mapping[str, str]) -> list[dict[str, Any]]:
        pods = []
        for (ns, name), job in sorted(self._jobs.items()):
            if ns != namespace or not job.run.pod:
                continue
            template = job.manifest.get("spec", {}).get("template", {})
            pod_labels = dict(template.get("metadata", {}).get("labels", {}))
            pod_labels["batch.kubernetes.io/job-name"] = name
            if any(pod_labels.get(k) != v for k, v in labels.items()):
                continue
            pods.append(self._pod(namespace, name, job, pod_labels))
        return pods

    def _pod(
        self, namespace: str, job_name: str, job: _FakeJob, labels: dict[str, str]
    ) -> dict[str, Any]:
        run = job.run
        done = self._done(job)
        state: dict[str, Any]
        if run.waiting_reason is not None:
            state = {"waiting": {"reason": run.waiting_reason, "message": "fake"}}
            phase = "Pending"
        elif done and run.exit_code is not None:
            state = {"terminated": {"exitCode": run.exit_code, "reason": run.terminated_reason}}
            phase = run.pod_phase
        else:
            state = {"running": {}}
            phase = "Running"
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": f"{job_name}-fake0", "namespace": namespace, "labels": labels},
            "status": {"phase": phase, "containerStatuses": [{"name": "probe", "state": state}]},
        }

    def pod_log(self, namespace: str, name: str, *, tail_lines: int | None = None) -> str:
        if namespace in self.log_errors:
            raise self.log_errors[namespace]
        for (ns, job_name), job in self._jobs.items():
            if ns == namespace and name == f"{job_name}-fake0" and job.run.pod:
                if job.run.log is None:
                    raise KubeError(
                        f'container "probe" in pod "{name}" is waiting to start', status=400
                    )
                lines: Sequence[str] = job.run.log.splitlines(keepends=True)
                if tail_lines is not None:
                    lines = lines[-tail_lines:] if tail_lines else []
                return "".join(lines)
        raise KubeError(f"pod {namespace}/{name} not found", status=404)

    def delete_job(self, namespace: str, name: str) -> bool:
        self.deleted.append((namespace, name))
        return self._jobs.pop((namespace, name), None) is not None
