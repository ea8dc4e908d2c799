"""The host dataplane use cases: compile manifests for this host, apply, diff, and the agent.

The CLI commands ``nft render|apply|diff|flush`` and ``agent`` are thin wrappers around this
module; the lab calls the compiler and the adapter directly.

``Agent`` is the long-running loop of ``egressguard agent``:

1. on start, compile the manifests and compare with the kernel's state marker (one cheap
   netlink rule dump): if the kernel already holds exactly this table nothing is sent,
   otherwise the table is replaced in one transaction;
2. every ``interval`` seconds, look at the manifest directory and the endpoints file (names,
   sizes, modification times; contents are hashed only when those moved): on a change,
   recompile (with the agent's ``CompileCache``: unchanged network sets are not parsed again
   and, when only set contents changed, the chains are reused) and apply the
   *difference*: when only set contents changed, one batch of element deletions and
   additions (:mod:`egressguard.adapters.nfnetlink`, on the adapter's one socket), else a
   full replace;
3. every ``verify_interval`` seconds, re-read the marker: if someone flushed or changed the
   table, it is replaced again.

An apply that fails leaves the previous ruleset in place (every kernel change is one atomic
transaction), is reported as a structured log line (``"event": "apply-failed"``), and the
agent keeps running; a later change, or the next verification, tries again. Input that does
not load (YAML or Calico validation problems) is reported the same way and never applied.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from egressguard.adapters.nftables import Nftables
from egressguard.calico import evaluate as ev
from egressguard.calico.load import Manifests, expand_paths, load_paths
from egressguard.errors import DataplaneError, EgressguardError, InputError, SafetyError
from egressguard.nft import compile as nft_compile
from egressguard.nft import diff, endpoints, ir, render, state

__all__ = [
    "SAFETY_FLOWS",
    "Agent",
    "ApplyResult",
    "Inputs",
    "apply_compiled",
    "compile_inputs",
    "kernel_plan",
    "load_inputs",
    "safety_findings",
]

#: Flows that must stay allowed unless the user forces it (DESIGN §6): cloud DNS and
#: metadata addresses, and an ordinary internet destination (its denial means the policy set
#: default-denies all egress). These are only evaluated, never sent.
SAFETY_FLOWS: tuple[tuple[str, str, int, str], ...] = (
    ("168.63.129.16", "UDP", 53, "Azure DNS (168.63.129.16)"),
    ("168.63.129.16", "TCP", 80, "Azure wireserver (168.63.129.16)"),
    ("169.254.169.254", "TCP", 80, "cloud instance metadata (169.254.169.254)"),
    ("192.0.2.123", "TCP", 443, "an address in no network set (default-deny of all egress)"),
)


@dataclass(frozen=True, slots=True)
class Inputs:
    """Loaded manifests and endpoints, plus a digest of the files they came from."""

    manifests: Manifests
    endpoints: endpoints.Endpoints
    files: tuple[str, ...] = ()
    digest: str = ""


def _file_digest(paths: Iterable[Path]) -> str:
    h = hashlib.sha256()
    for path in paths:
        h.update(str(path).encode() + b"\0")
        try:
            h.update(path.read_bytes())
        except OSError as exc:
            h.update(f"unreadable:{exc.errno}".encode())
        h.update(b"\0")
    return h.hexdigest()[:16]


def load_inputs(paths: Sequence[str | Path], endpoints_path: str | Path | None = None) -> Inputs:
    """Load and validate manifests (files or directories) and the endpoints file.

    Raises ``InputError`` listing every problem; nothing invalid is ever compiled.
    """
    files = expand_paths(paths)
    missing = [str(p) for p in files if not p.exists()]
    if missing:
        raise InputError(f"no such file: {', '.join(missing)}")
    manifests = load_paths(files)
    if manifests.problems:
        listing = "\n  ".join(str(p) for p in manifests.problems[:50])
        more = len(manifests.problems) - 50
        extra = f"\n  ... and {more} more" if more > 0 else ""
        raise InputError(
            f"{len(manifests.problems)} problem(s) in the manifests:\n  {listing}{extra}",
            hint="`egressguard validate FILES` lists them; nothing was applied",
        )
    eps = endpoints.DEFAULT
    all_files = list(files)
    if endpoints_path is not None:
        path = Path(endpoints_path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from exc
        eps = endpoints.load_text(text, str(path))
        all_files.append(path)
    return Inputs(manifests, eps, tuple(str(f) for f in all_files), _file_digest(all_files))


def compile_inputs(
    inputs: Inputs,
    options: nft_compile.Options | None = None,
    *,
    cache: nft_compile.CompileCache | None = None,
) -> nft_compile.Compiled:
    """The compiled table for ``inputs`` (``options``: defaults when ``None``; ``cache``: parsed
    network sets of the previous compile, see ``nft.compile.CompileCache``)."""
    return nft_compile.compile_table(
        inputs.manifests, inputs.endpoints, options or nft_compile.Options(), cache=cache
    )


def safety_findings(inputs: Inputs) -> list[str]:
    """Egress the policies would deny that must stay open (see ``SAFETY_FLOWS``), per endpoint.

    Uses the evaluator (Calico's semantics), so the answer is what the dataplane will do.
    """
    eps = inputs.endpoints
    resources = list(inputs.manifests.resources)
    resources.extend(w.as_pod() for w in eps.workloads)
    resources.extend(ns for ns in eps.namespaces if ns not in resources)
    plan = ev.compile_plan(Manifests.of(resources))
    subjects: list[tuple[str, Any]] = []
    if eps.host is not None:
        host = eps.host
        subjects.append(
            (
                f"host {host.name}",
                ev.Endpoint.host(
                    dict(host.labels),
                    ips=host.addresses,
                    name=host.name,
                    default_allow=host.default_allow,
                ),
            )
        )
    for wl in eps.workloads:
        subjects.append(
            (
                f"workload {wl.namespace}/{wl.name}",
                ev.Endpoint.from_pod(wl.as_pod(), eps.namespace(wl.namespace)),
            )
        )
    findings: list[str] = []
    for who, endpoint in subjects:
        for dst, proto, port, what in SAFETY_FLOWS:
            verdict = plan.evaluate(
                endpoint, ev.Flow(dst=dst, protocol=proto, dst_port=port), trace=False
            )
            if not verdict.allowed:
                findings.append(f"{who}: {proto} {dst}:{port} ({what}) would be denied")
    return findings


@dataclass(frozen=True, slots=True)
class ApplyResult:
    """What an apply did: ``kind`` is unchanged, elements, replace (or check for dry runs)."""

    kind: str
    reason: str
    seconds: float
    changes: tuple[diff.SetChange, ...] = ()
    dry_run: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "reason": self.reason,
            "seconds": round(self.seconds, 6),
            "dry_run": self.dry_run,
            "sets": [c.to_json() for c in self.changes],
        }


def apply_compiled(
    nft: Nftables,
    table: ir.Table,
    *,
    previous: ir.Table | None = None,
    dry_run: bool = False,
) -> ApplyResult:
    """Bring the kernel to ``table``: nothing if its marker says it is there, element updates
    when ``previous`` is what the kernel holds and only set contents differ, else a full
    replace. ``dry_run`` checks the full script with ``nft -c`` and changes nothing.

    A failed element update falls back to a full replace; a failed replace raises
    ``DataplaneError`` with the kernel unchanged.
    """
    start = time.perf_counter()
    wanted = render.table_marker(table)
    if dry_run:
        nft.check(render.script(table))
        return ApplyResult(
            "check", "nft -c accepted the script", time.perf_counter() - start, dry_run=True
        )
    try:
        current_marker = nft.read_marker()
    except DataplaneError:
        current_marker = None  # unreadable: act as if unknown and replace
    if current_marker == wanted:
        return ApplyResult(
            "unchanged", "the kernel already holds this table", time.perf_counter() - start
        )
    plan = diff.plan(previous, table) if previous is not None else None
    previous_marker = render.table_marker(previous) if previous is not None else None
    if plan is not None and plan.kind == "elements" and current_marker == previous_marker:
        try:
            nft.update(plan)
            return ApplyResult("elements", plan.reason, time.perf_counter() - start, plan.changes)
        except DataplaneError:
            pass  # the kernel differs from what we believed: replace it all (below)
    nft.apply(render.script(table))
    reason = "full replace" if current_marker is None else "the kernel's table differs"
    if plan is not None and plan.kind == "replace":
        reason = plan.reason
    return ApplyResult("replace", reason, time.perf_counter() - start)


def kernel_plan(nft: Nftables, table: ir.Table) -> diff.Plan:
    """What an apply would change, against the table the kernel holds now (reads all sets)."""
    document = nft.list_table()
    if document is None:
        return diff.Plan("replace", table, reason="the kernel has no egressguard table")
    return diff.plan(state.from_json(document), table)


# --------------------------------------------------------------------------------- agent


def _log_line(record: dict[str, Any]) -> None:
    record = {"ts": round(time.time(), 3), **record}
    sys.stderr.write(json.dumps(record, sort_keys=True, separators=(",", ":")) + "\n")
    sys.stderr.flush()


@dataclass
class Agent:
    """Keep the kernel's egressguard table equal to what the manifest directory says.

    ``log`` receives one dict per event (default: a JSON line on stderr). ``sleep`` and
    ``clock`` are injectable so tests can drive the loop without waiting.
    """

    nft: Nftables
    manifests: Path
    endpoints_path: Path | None = None
    options: nft_compile.Options = field(default_factory=nft_compile.Options)
    interval: float = 2.0
    verify_interval: float = 60.0
    force: bool = False
    log: Callable[[dict[str, Any]], None] = _log_line
    clock: Callable[[], float] = time.monotonic
    applied: ir.Table | None = field(default=None, init=False)
    #: Parsed network sets of the last compile: a reload parses only what changed.
    cache: nft_compile.CompileCache = field(default_factory=nft_compile.CompileCache, init=False)
    failures: int = field(default=0, init=False)
    _stat: tuple[Any, ...] | None = field(default=None, init=False)
    _digest: str | None = field(default=None, init=False)
    _verified_at: float = field(default=0.0, init=False)

    def __post_init__(self) -> None:
        self.interval = min(max(self.interval, 0.2), 60.0)
        self.verify_interval = max(self.verify_interval, self.interval)

    def _files(self) -> list[Path]:
        try:
            files = expand_paths([self.manifests])
        except OSError:
            files = []
        if self.endpoints_path is not None:
            files.append(self.endpoints_path)
        return files

    def _stat_key(self) -> tuple[Any, ...]:
        out: list[Any] = []
        for path in self._files():
            try:
                st = path.stat()
                out.append((str(path), st.st_size, st.st_mtime_ns, st.st_ino))
            except OSError:
                out.append((str(path), None))
        return tuple(out)

    def step(self) -> dict[str, Any] | None:
        """One look at the inputs (and the kernel, when it is time); returns the event logged."""
        key = self._stat_key()
        now = self.clock()
        if key == self._stat and self.applied is not None:
            if now - self._verified_at >= self.verify_interval:
                return self._verify(now)
            return None
        self._stat = key
        try:
            inputs = load_inputs([self.manifests], self.endpoints_path)
        except EgressguardError as exc:
            return self._failed("load", exc)
        if inputs.digest == self._digest and self.applied is not None:
            return None  # touched, not changed
        try:
            if not self.force:
                findings = safety_findings(inputs)
                if findings:
                    raise SafetyError(
                        "refusing to apply: " + "; ".join(findings),
                        hint="fix the policies, or run the agent with --force",
                    )
            compiled = compile_inputs(inputs, self.options, cache=self.cache)
            result = apply_compiled(self.nft, compiled.table, previous=self.applied)
        except EgressguardError as exc:
            self._digest = None
            if exc.transient:
                self._stat = None  # retry at the next step, not only at the next change
            return self._failed("apply", exc)
        self.applied = compiled.table
        self._digest = inputs.digest
        self._verified_at = now
        self.failures = 0
        event = {
            "event": "applied",
            "digest": inputs.digest,
            "files": len(inputs.files),
            **result.to_json(),
        }
        if compiled.notes:
            event["notes"] = list(compiled.notes)
        self.log(event)
        return event

    def _verify(self, now: float) -> dict[str, Any] | None:
        self._verified_at = now
        if self.applied is None:
            return None
        wanted = render.table_marker(self.applied)
        try:
            found = self.nft.read_marker()
        except EgressguardError as exc:
            return self._failed("verify", exc)
        if found == wanted:
            return None
        try:
            self.nft.apply(render.script(self.applied))
        except EgressguardError as exc:
            return self._failed("repair", exc)
        event = {
            "event": "repaired",
            "reason": "the kernel's table was changed or removed",
            "found_marker": found,
        }
        self.log(event)
        return event

    def _failed(self, stage: str, exc: EgressguardError) -> dict[str, Any]:
        self.failures += 1
        event = {
            "event": f"{stage}-failed",
            "error": exc.message,
            "hint": exc.hint,
            "kept": "the previous ruleset" if self.applied is not None else "no ruleset applied",
            "failures": self.failures,
        }
        self.log(event)
        return event

    def run(self, stop: threading.Event | None = None, *, max_steps: int | None = None) -> None:
        """Loop until ``stop`` is set (or ``max_steps`` steps); never raises for bad input."""
        stop = stop or threading.Event()
        self.log(
            {
                "event": "started",
                "manifests": str(self.manifests),
                "endpoints": str(self.endpoints_path) if self.endpoints_path else None,
                "netns": self.nft.netns,
                "interval": self.interval,
                "pid": os.getpid(),
            }
        )
        steps = 0
        try:
            while not stop.is_set():
                self.step()
                steps += 1
                if max_steps is not None and steps >= max_steps:
                    break
                stop.wait(self.interval)
        finally:
            self.nft.close()
        self.log({"event": "stopped"})
