"""Jobs, pods and pod logs for ``egressguard verify --run`` tests, on the test API server.

``tests/integration/kubeapi.py`` (the kube adapter's test server: kmock's scaffold with a
stateful store, label selectors, Status bodies, injected failures) serves any resource type
once declared. A real cluster also *runs* Jobs and keeps pod logs, which that server does not.
This module adds, as documented behaviour of a real cluster:

1. **Resources** ``batch/v1 jobs`` and ``v1 pods`` (namespaced), and ``namespaces`` that exist:
   creating a Job in any other namespace answers ``404 NotFound`` (``namespaces "x" not found``),
   as the real API server does.
2. **The Job controller**: a new Job gets one Pod named ``<job>-<5 characters>`` with the pod
   template's labels plus ``batch.kubernetes.io/job-name``/``job-name`` and
   ``batch.kubernetes.io/controller-uid``/``controller-uid``, an ``ownerReference`` to the Job
   (``controller: true``), and the template's spec. The Job's ``status`` follows the pod:
   ``active``, then ``succeeded`` or ``failed`` with a ``Complete`` / ``Failed`` condition
   (reason ``BackoffLimitExceeded`` for a failed pod with ``backoffLimit: 0``,
   ``DeadlineExceeded`` when ``activeDeadlineSeconds`` ran out).
3. **The kubelet**: it runs the pod's single container. ``command: [egressguard]`` is this
   checkout's ``python -m egressguard``; the environment is only the container's ``env`` (as in
   a container). stdout and stderr are kept together as the pod's log. A test can replace the
   runtime per image (``runtimes``) to script what a broken container does: an image that
   cannot be pulled stays ``Pending`` with ``ImagePullBackOff``, a crash exits non-zero with a
   partial log. The deadline (``activeDeadlineSeconds``) is enforced by killing the process.
4. **Pod logs**: ``GET .../pods/<name>/log`` answers ``text/plain`` (``tailLines`` honoured);
   ``400 BadRequest`` ("container ... is waiting to start") before the container ran.
5. **Garbage collection**: when a Job is deleted with ``propagationPolicy=Background`` (or
   ``Foreground``) its pods are deleted; without a policy, or with ``Orphan``, the pods stay and
   lose their ownerReference: the batch/v1 Job's default policy is to orphan (the reason
   ``kubectl delete job`` asks for Background).

What it is not: no scheduling, no networking. The probe process runs in the test's own network
namespace, so tests point probes only at loopback listeners they create.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import secrets
import string
import sys
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kmock
from kubeapi import KubeApi, Stored, _now, json_answer, leaves, serve, status_body

ScriptedRun = tuple[int | None, str, str]
"""A scripted container: (exit code, or None to stay Pending; log text; waiting reason)."""


@dataclass
class _Running:
    task: asyncio.Task[None]
    process: asyncio.subprocess.Process | None = None


@dataclass
class Cluster:
    """A handle on the running emulation (use from the test thread)."""

    api: KubeApi
    namespaces: set[str]
    runtimes: dict[str, Callable[[Mapping[str, Any]], ScriptedRun]] = field(default_factory=dict)
    logs: dict[tuple[str, str], str] = field(default_factory=dict)
    running: dict[str, _Running] = field(default_factory=dict)

    def jobs(self, namespace: str) -> dict[str, dict[str, Any]]:
        return self._objects("batch", "jobs", namespace)

    def pods(self, namespace: str) -> dict[str, dict[str, Any]]:
        return self._objects("", "pods", namespace)

    def _objects(self, group: str, plural: str, namespace: str) -> dict[str, dict[str, Any]]:
        def collect() -> dict[str, dict[str, Any]]:
            prefix = self.api.server.key(group, plural, None, "")[0]
            return {
                name: copy.deepcopy(stored.obj)
                for (kind, ns, name), stored in self.api.server.store.items()
                if kind == prefix and ns == namespace
            }

        result: dict[str, dict[str, Any]] = self.api._in_loop(collect)
        return result

    def wait_until(self, predicate: Callable[[], bool], *, timeout: float = 10.0) -> bool:
        """Poll ``predicate`` (bounded) for eventual state such as garbage collection."""
        import time

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.02)
        return predicate()


# --------------------------------------------------------------------------- in the loop


def _suffix() -> str:
    return "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(5))


def _store(cluster: Cluster, group: str, plural: str, ns: str, name: str) -> Stored | None:
    stored: Stored | None = cluster.api.server.store.get(
        cluster.api.server.key(group, plural, ns, name)
    )
    return stored


def _touch(cluster: Cluster, stored: Stored) -> None:
    stored.obj["metadata"]["resourceVersion"] = cluster.api.server._bump()


def _make_pod(cluster: Cluster, job_key: tuple[str, str], job: Stored) -> Stored:
    ns, job_name = job_key
    template = copy.deepcopy(job.obj["spec"]["template"])
    uid = job.obj["metadata"]["uid"]
    labels = dict((template.get("metadata") or {}).get("labels") or {})
    labels.update(
        {
            "batch.kubernetes.io/job-name": job_name,
            "job-name": job_name,
            "batch.kubernetes.io/controller-uid": uid,
            "controller-uid": uid,
        }
    )
    name = f"{job_name}-{_suffix()}"
    obj = {
        "metadata": {
            "name": name,
            "namespace": ns,
            "labels": labels,
            "uid": str(uuid.uuid4()),
            "creationTimestamp": _now(),
            "generation": 1,
            "ownerReferences": [
                {
                    "apiVersion": "batch/v1",
                    "kind": "Job",
                    "name": job_name,
                    "uid": uid,
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": template["spec"],
        "status": {"phase": "Pending"},
    }
    stored = Stored(obj, {("kube-controller-manager", "Update"): set(leaves(obj))})
    _touch(cluster, stored)
    cluster.api.server.store[cluster.api.server.key("", "pods", ns, name)] = stored
    return stored


def _container_status(image: str, state: dict[str, Any]) -> list[dict[str, Any]]:
    """A containerStatuses list with the fields a real kubelet always reports."""
    return [
        {
            "name": "probe",
            "image": image,
            "imageID": "" if "waiting" in state else f"{image}@sha256:{'0' * 64}",
            "ready": "running" in state,
            "restartCount": 0,
            "started": "running" in state,
            "state": state,
        }
    ]


def _finish(
    cluster: Cluster,
    job: Stored,
    pod: Stored,
    exit_code: int,
    reason: str,
    *,
    job_reason: str | None = None,
) -> None:
    succeeded = exit_code == 0 and job_reason is None
    pod.obj["status"] = {
        "phase": "Succeeded" if succeeded else "Failed",
        "containerStatuses": _container_status(
            pod.obj["spec"]["containers"][0]["image"],
            {"terminated": {"exitCode": exit_code, "reason": reason}},
        ),
    }
    _touch(cluster, pod)
    condition = {
        "type": "Complete" if succeeded else "Failed",
        "status": "True",
        "reason": "Completed" if succeeded else (job_reason or "BackoffLimitExceeded"),
        "lastTransitionTime": _now(),
    }
    if not succeeded:
        condition["message"] = (
            "Job was active longer than specified deadline"
            if job_reason == "DeadlineExceeded"
            else "Job has reached the specified backoff limit"
        )
    job.obj["status"] = {
        "active": 0,
        "succeeded" if succeeded else "failed": 1,
        "conditions": [condition],
    }
    _touch(cluster, job)


def _argv(container: Mapping[str, Any]) -> list[str]:
    command = list(container.get("command") or [])
    args = list(container.get("args") or [])
    if command[:1] == ["egressguard"]:
        command = [sys.executable, "-m", "egressguard", *command[1:]]
    return command + args


async def _kubelet(cluster: Cluster, job_key: tuple[str, str], job: Stored, pod: Stored) -> None:
    ns = job_key[0]
    pod_name = pod.obj["metadata"]["name"]
    container = pod.obj["spec"]["containers"][0]
    deadline = float(job.obj["spec"].get("activeDeadlineSeconds") or 600)
    script = cluster.runtimes.get(container["image"])
    if script is not None:
        exit_code, log, waiting = script(container)
        if exit_code is None:
            pod.obj["status"] = {
                "phase": "Pending",
                "containerStatuses": _container_status(
                    container["image"],
                    {"waiting": {"reason": waiting, "message": f"image {container['image']}"}},
                ),
            }
            _touch(cluster, pod)
            return
        cluster.logs[(ns, pod_name)] = log
        _finish(cluster, job, pod, exit_code, "Completed" if exit_code == 0 else waiting)
        return
    env = {e["name"]: e.get("value", "") for e in container.get("env") or ()}
    env.setdefault("PATH", "/usr/bin:/bin")
    process = await asyncio.create_subprocess_exec(
        *_argv(container),
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    cluster.running[pod_name].process = process
    pod.obj["status"] = {
        "phase": "Running",
        "containerStatuses": _container_status(
            container["image"], {"running": {"startedAt": _now()}}
        ),
    }
    _touch(cluster, pod)
    assert process.stdout is not None
    chunks: list[bytes] = []

    async def read() -> None:
        assert process.stdout is not None
        while chunk := await process.stdout.read(4096):
            chunks.append(chunk)
            cluster.logs[(ns, pod_name)] = b"".join(chunks).decode("utf-8", "replace")

    try:
        await asyncio.wait_for(asyncio.gather(read(), process.wait()), timeout=deadline)
    except TimeoutError:
        process.kill()
        await process.wait()
        _finish(cluster, job, pod, 137, "Error", job_reason="DeadlineExceeded")
        return
    code = process.returncode if process.returncode is not None else 1
    _finish(cluster, job, pod, code, "Completed" if code == 0 else "Error")


def _collect_garbage(cluster: Cluster) -> None:
    """Pods whose controlling Job is gone: delete or orphan them, by the delete's policy."""
    server = cluster.api.server
    job_uids = {
        stored.obj["metadata"]["uid"]
        for (kind, _, _), stored in server.store.items()
        if kind == server.key("batch", "jobs", None, "")[0]
    }
    policies = {
        (r.namespace, r.name): r.params.get("propagationPolicy", "Orphan")
        for r in server
        if r.method.value == "DELETE" and r.resource is not None and r.resource.plural == "jobs"
    }
    pod_prefix = server.key("", "pods", None, "")[0]
    for key, stored in list(server.store.items()):
        if key[0] != pod_prefix:
            continue
        owners = stored.obj["metadata"].get("ownerReferences") or []
        gone = [o for o in owners if o.get("kind") == "Job" and o["uid"] not in job_uids]
        if not gone:
            continue
        policy = policies.get((key[1], gone[0]["name"]), "Orphan")
        if policy in ("Background", "Foreground"):
            del server.store[key]
            server._bump()
            running = cluster.running.get(key[2])
            if running is not None and running.process is not None:
                with contextlib.suppress(ProcessLookupError):
                    running.process.kill()
        else:
            stored.obj["metadata"]["ownerReferences"] = [o for o in owners if o not in gone]
            _touch(cluster, stored)


async def _controller(cluster: Cluster) -> None:
    server = cluster.api.server
    started: set[str] = set()
    job_prefix = server.key("batch", "jobs", None, "")[0]
    while True:
        for (kind, ns, name), job in list(server.store.items()):
            if kind != job_prefix or job.obj["metadata"]["uid"] in started:
                continue
            started.add(job.obj["metadata"]["uid"])
            assert ns is not None
            pod = _make_pod(cluster, (ns, name), job)
            job.obj["status"] = {"active": 1, "startTime": _now()}
            _touch(cluster, job)
            pod_name = pod.obj["metadata"]["name"]
            task = asyncio.get_running_loop().create_task(_kubelet(cluster, (ns, name), job, pod))
            cluster.running[pod_name] = _Running(task)
        _collect_garbage(cluster)
        await asyncio.sleep(0.02)


# --------------------------------------------------------------------------- HTTP reactions


def _is_pod_log(request: kmock.Request) -> bool:
    res = request.resource
    return res is not None and res.plural == "pods" and request.subresource == "log"


def _is_create_in_missing_namespace(cluster: Cluster) -> Callable[[kmock.Request], bool]:
    def match(request: kmock.Request) -> bool:
        res = request.resource
        return (
            res is not None
            and res.plural == "jobs"
            and request.method.value == "POST"
            and request.namespace not in cluster.namespaces
        )

    return match


def _answer_log(cluster: Cluster) -> Callable[[kmock.Request], Any]:
    def answer(request: kmock.Request) -> Any:
        ns, name = request.namespace, request.name
        assert ns is not None
        assert name is not None
        if _store(cluster, "", "pods", ns, name) is None:
            return json_answer(404, status_body(404, "NotFound", f'pods "{name}" not found'))
        text = cluster.logs.get((ns, name))
        if text is None:
            message = f'container "probe" in pod "{name}" is waiting to start: ContainerCreating'
            return json_answer(400, status_body(400, "BadRequest", message))
        lines = text.splitlines(keepends=True)
        tail = request.params.get("tailLines")
        if tail is not None:
            lines = lines[-int(tail) :] if int(tail) else []
        return kmock.Response(
            status=200,
            payload="".join(lines).encode(),
            headers={"Content-Type": "text/plain"},
        )

    return answer


def _answer_missing_namespace(request: kmock.Request) -> Any:
    message = f'namespaces "{request.namespace}" not found'
    return json_answer(404, status_body(404, "NotFound", message))


@contextmanager
def run_cluster(tmp_path: Path, *, namespaces: tuple[str, ...] = ("default",)) -> Iterator[Cluster]:
    """The test API server plus the Job controller, kubelet, logs and garbage collector."""
    with serve(tmp_path) as api:
        cluster = Cluster(api, set(namespaces))

        def declare() -> None:
            server = api.server
            server.serve_resource("batch", "v1", "jobs", "Job", namespaced=True)
            server.serve_resource("", "v1", "pods", "Pod", namespaced=True)
            server[_is_pod_log] << _answer_log(cluster)
            server[_is_create_in_missing_namespace(cluster)] << _answer_missing_namespace

        api._in_loop(declare)
        controller = asyncio.run_coroutine_threadsafe(_controller(cluster), api.loop)
        try:
            yield cluster
        finally:
            controller.cancel()

            async def stop_all() -> None:
                for running in cluster.running.values():
                    if running.process is not None and running.process.returncode is None:
                        with contextlib.suppress(ProcessLookupError):
                            running.process.kill()
                        await running.process.wait()
                    running.task.cancel()

            asyncio.run_coroutine_threadsafe(stop_all(), api.loop).result(timeout=10)
