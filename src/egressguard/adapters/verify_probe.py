"""The probe that ``egressguard verify`` runs inside a Kubernetes Job, and its wire contract.

Both directions of the contract live here, so they cannot drift apart (CONVENTIONS §13):

* **Plan in** (``encode_plan`` → env var :data:`PLAN_ENV` → ``decode_plan``): a JSON object
  ``{"version": 1, "run": ID, "namespace": NS, "probes": [{"index", "proto", "dst", "port",
  "timeout"}, ...]}``.
* **Results out** (``run_probes`` writes, ``parse_log`` reads): JSON lines on standard output, one
  object per line, each tagged ``"egressguard-verify": "start" | "result" | "end"`` and the run id.
  A result line is written (and flushed) as soon as its probe finishes, so a pod killed half-way
  (deadline, OOM) still leaves the results it had. The reader skips anything else in the log
  (runtime messages, a traceback, a line cut in half) and counts it.

What a probe observes, as an :class:`Outcome`:

``connected``
    TCP: the three-way handshake completed. UDP: a datagram came back from the destination.
``refused``
    TCP RST or ICMP port unreachable (the kernel reports both as ECONNREFUSED): something
    answered, so the packet was not silently dropped on the way out.
``timeout``
    No answer within the probe's timeout: what a Calico ``Deny`` looks like with Felix's default
    deny action, DROP.
``unreachable``
    ICMP host/network unreachable, or no route from the pod (for example IPv6 in an IPv4-only
    cluster).
``error``
    Anything else (a local permission error, an address the pod cannot use).

Unlike the lab's probes (:mod:`egressguard.adapters.probe`), these talk to destinations that
are not ours: a TCP probe cannot wait for the lab banner and a UDP probe cannot expect an echo.
So TCP succeeds on the handshake alone, and UDP sends a DNS query for the root name servers to
port 53 (any DNS server answers it; RFC 1035 §4.1) or a short marker elsewhere and accepts any
reply. No raw sockets: the Job runs as a non-root user with every capability dropped.

This module uses the standard library only, so ``egressguard verify probe`` starts fast in the
Job's container.
"""

from __future__ import annotations

import errno
import ipaddress
import json
import os
import secrets
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal, TextIO, cast

__all__ = [
    "LINE_TAG",
    "MAX_PROBES",
    "MAX_TIMEOUT",
    "PLAN_ENV",
    "PLAN_VERSION",
    "Outcome",
    "ParsedLog",
    "ProbeOutcome",
    "ProbeSpec",
    "Proto",
    "decode_plan",
    "dns_root_query",
    "encode_plan",
    "main",
    "parse_log",
    "run_probe",
    "run_probes",
    "tcp_connect",
    "udp_exchange",
]

PLAN_ENV = "EGRESSGUARD_VERIFY_PLAN"
"""The environment variable that carries the plan into the Job's container."""
PLAN_VERSION = 1
LINE_TAG = "egressguard-verify"
"""The key that marks our lines in a pod log; its value is the line's kind."""
MAX_PROBES = 512
"""Probes per Job: enough for many sets × ports, small enough for an env var and a log."""
MAX_TIMEOUT = 30.0
"""Upper bound of one probe's timeout, in seconds; every wait is bounded."""
_MAX_WORKERS = 32
_OTHER_SAMPLES = 5  # how many foreign log lines a parse keeps for the report

Proto = Literal["tcp", "udp"]


class Outcome(StrEnum):
    """What one probe observed (see the module docstring)."""

    CONNECTED = "connected"
    REFUSED = "refused"
    TIMEOUT = "timeout"
    UNREACHABLE = "unreachable"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class ProbeSpec:
    """One probe of a plan: ``proto`` to ``dst``:``port`` with a timeout in seconds.

    ``index`` identifies the probe within its plan; results refer to it.
    """

    index: int
    proto: Proto
    dst: str
    port: int
    timeout: float

    def __post_init__(self) -> None:
        if self.index < 0:
            raise ValueError(f"probe index {self.index} is negative")
        if self.proto not in ("tcp", "udp"):
            raise ValueError(f"probe protocol must be tcp or udp, not {self.proto!r}")
        try:
            ipaddress.ip_address(self.dst)
        except ValueError:
            raise ValueError(f"probe dst {self.dst!r} is not an IP address") from None
        if not 0 < self.port < 65536:
            raise ValueError(f"probe port {self.port} is not in 1..65535")
        if not 0 < self.timeout <= MAX_TIMEOUT:
            raise ValueError(f"probe timeout {self.timeout} is not in (0, {MAX_TIMEOUT:g}]")

    @property
    def family(self) -> int:
        return ipaddress.ip_address(self.dst).version

    def label(self) -> str:
        """``tcp 192.0.2.7:443`` or ``udp [2001:db8::1]:53``."""
        host = f"[{self.dst}]" if self.family == 6 else self.dst
        return f"{self.proto} {host}:{self.port}"

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "proto": self.proto,
            "dst": self.dst,
            "port": self.port,
            "timeout": self.timeout,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ProbeSpec:
        return cls(
            index=_int(data["index"], "index"),
            proto=cast(Proto, str(data["proto"])),
            dst=str(data["dst"]),
            port=_int(data["port"], "port"),
            timeout=float(data["timeout"]),
        )


def _int(value: Any, name: str) -> int:
    """An int from JSON, refusing bools and floats with a fraction (``int(True)`` is 1)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or int(value) != value:
        raise ValueError(f"{name} must be an integer, not {value!r}")
    return int(value)


@dataclass(frozen=True, slots=True)
class ProbeOutcome:
    """The result of probe ``index``: the outcome, a short detail and the seconds it took.

    ``proto``, ``dst`` and ``port`` echo the probe, so a reader can check that the result is
    for the probe it planned (a stale image or a mixed-up plan shows up as a mismatch).
    """

    index: int
    proto: str
    dst: str
    port: int
    outcome: Outcome
    detail: str
    elapsed: float

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "proto": self.proto,
            "dst": self.dst,
            "port": self.port,
            "outcome": self.outcome.value,
            "detail": self.detail,
            "elapsed": round(self.elapsed, 3),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ProbeOutcome:
        return cls(
            index=_int(data["index"], "index"),
            proto=str(data["proto"]),
            dst=str(data["dst"]),
            port=_int(data["port"], "port"),
            outcome=Outcome(str(data["outcome"])),
            detail=str(data.get("detail", "")),
            elapsed=float(data.get("elapsed", 0.0)),
        )


# --------------------------------------------------------------------------- the plan


def encode_plan(run: str, namespace: str, probes: Sequence[ProbeSpec]) -> str:
    """The plan as compact JSON for :data:`PLAN_ENV`."""
    if len(probes) > MAX_PROBES:
        raise ValueError(f"{len(probes)} probes in one plan; at most {MAX_PROBES}")
    doc = {
        "version": PLAN_VERSION,
        "run": run,
        "namespace": namespace,
        "probes": [p.to_json() for p in probes],
    }
    return json.dumps(doc, separators=(",", ":"), sort_keys=True)


def decode_plan(text: str) -> tuple[str, list[ProbeSpec]]:
    """``(run id, probes)`` from :func:`encode_plan`'s text; ``ValueError`` says what is wrong."""
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"the plan is not JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise ValueError("the plan must be a JSON object")
    if doc.get("version") != PLAN_VERSION:
        raise ValueError(
            f"plan version {doc.get('version')!r} is not {PLAN_VERSION}: "
            "the image and the egressguard that rendered the Job differ"
        )
    run = doc.get("run")
    raw = doc.get("probes")
    if not isinstance(run, str) or not run:
        raise ValueError("the plan has no run id")
    if not isinstance(raw, list):
        raise ValueError("the plan's probes must be a list")
    if len(raw) > MAX_PROBES:
        raise ValueError(f"{len(raw)} probes in one plan; at most {MAX_PROBES}")
    probes: list[ProbeSpec] = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            raise ValueError(f"probes[{i}] is not an object")
        try:
            probes.append(ProbeSpec.from_json(item))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"probes[{i}]: {exc}") from exc
    if len({p.index for p in probes}) != len(probes):
        raise ValueError("the plan repeats a probe index")
    return run, probes


# --------------------------------------------------------------------------- probing


def _sockaddr(dst: str, port: int) -> tuple[Any, ...]:
    return (dst, port) if ipaddress.ip_address(dst).version == 4 else (dst, port, 0, 0)


def _family(dst: str) -> socket.AddressFamily:
    return socket.AF_INET if ipaddress.ip_address(dst).version == 4 else socket.AF_INET6


_UNREACHABLE = {errno.EHOSTUNREACH, errno.ENETUNREACH}


def _classify(exc: OSError, timeout: float) -> tuple[Outcome, str]:
    if isinstance(exc, TimeoutError):
        return Outcome.TIMEOUT, f"no answer within {timeout:g}s"
    if isinstance(exc, ConnectionRefusedError):
        return Outcome.REFUSED, "refused (TCP reset or ICMP port unreachable)"
    if exc.errno in _UNREACHABLE:
        return Outcome.UNREACHABLE, exc.strerror or "unreachable"
    if exc.errno in (errno.EPERM, errno.EACCES):
        return Outcome.ERROR, f"denied locally ({exc.strerror})"
    return Outcome.ERROR, exc.strerror or str(exc) or type(exc).__name__


def tcp_connect(dst: str, port: int, timeout: float) -> tuple[Outcome, str]:
    """Open a TCP connection and close it at once; the handshake is the whole test."""
    with socket.socket(_family(dst), socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        try:
            s.connect(_sockaddr(dst, port))
        except OSError as exc:
            return _classify(exc, timeout)
    return Outcome.CONNECTED, "handshake completed"


def dns_root_query(query_id: int) -> bytes:
    """A DNS query for the NS records of the root zone, recursion desired (RFC 1035 §4.1).

    Header: id, flags 0x0100 (RD), one question, no answers; question: the root name (a single
    zero byte), QTYPE NS (2), QCLASS IN (1). Every resolver and authoritative server answers it,
    even if only with REFUSED, and any answer proves the datagram got through.
    """
    return struct.pack("!HHHHHH", query_id & 0xFFFF, 0x0100, 1, 0, 0, 0) + b"\x00\x00\x02\x00\x01"


def udp_exchange(dst: str, port: int, timeout: float) -> tuple[Outcome, str]:
    """Send one datagram and wait for any reply (or an ICMP error) from ``dst``:``port``."""
    if port == 53:
        payload = dns_root_query(secrets.randbelow(0x10000))
    else:
        payload = b"egressguard-verify probe\n"
    deadline = time.monotonic() + timeout
    with socket.socket(_family(dst), socket.SOCK_DGRAM) as s:
        try:
            s.connect(_sockaddr(dst, port))  # a connected socket hears only from dst:port
            s.send(payload)
            s.settimeout(max(deadline - time.monotonic(), 0.001))
            s.recv(4096)
        except OSError as exc:
            outcome, detail = _classify(exc, timeout)
            if outcome is Outcome.TIMEOUT:
                detail += " (UDP silence can also mean the service does not answer this payload)"
            return outcome, detail
    return Outcome.CONNECTED, "reply received"


def run_probe(spec: ProbeSpec) -> ProbeOutcome:
    """Run one probe from this process's network namespace."""
    start = time.monotonic()
    try:
        if spec.proto == "tcp":
            outcome, detail = tcp_connect(spec.dst, spec.port, spec.timeout)
        else:
            outcome, detail = udp_exchange(spec.dst, spec.port, spec.timeout)
    except OSError as exc:  # the socket itself could not be made (no IPv6 in the pod, ...)
        outcome, detail = _classify(exc, spec.timeout)
    return ProbeOutcome(
        spec.index, spec.proto, spec.dst, spec.port, outcome, detail, time.monotonic() - start
    )


def _line(kind: str, run: str, **fields: Any) -> str:
    return json.dumps({LINE_TAG: kind, "run": run, **fields}, separators=(",", ":"))


def run_probes(
    run: str,
    probes: Sequence[ProbeSpec],
    write: Callable[[str], None],
    *,
    max_workers: int = _MAX_WORKERS,
    probe: Callable[[ProbeSpec], ProbeOutcome] = run_probe,
) -> list[ProbeOutcome]:
    """Run ``probes`` concurrently; write a start line, one result line per probe as it
    finishes, and an end line. ``write`` receives whole lines without the newline and is called
    from one thread at a time. Returns the outcomes in plan order."""
    lock = threading.Lock()

    def emit(text: str) -> None:
        with lock:
            write(text)

    emit(_line("start", run, version=PLAN_VERSION, probes=len(probes)))
    outcomes: dict[int, ProbeOutcome] = {}
    if probes:
        workers = max(1, min(max_workers, len(probes)))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            futures = [pool.submit(probe, p) for p in probes]
            for future in as_completed(futures):
                result = future.result()
                outcomes[result.index] = result
                emit(_line("result", run, **result.to_json()))
    emit(_line("end", run, results=len(outcomes)))
    return [outcomes[p.index] for p in probes]


def main(environ: Mapping[str, str] | None = None, stdout: TextIO | None = None) -> int:
    """``egressguard verify probe``: read the plan from :data:`PLAN_ENV`, probe, print lines.

    Exit 0 when every probe ran (whatever it observed), 2 when the plan is missing or invalid.
    """
    env = os.environ if environ is None else environ
    out = sys.stdout if stdout is None else stdout
    text = env.get(PLAN_ENV)
    if not text:
        sys.stderr.write(f"egressguard verify probe: the plan is missing (set {PLAN_ENV})\n")
        return 2
    try:
        run, probes = decode_plan(text)
    except ValueError as exc:
        sys.stderr.write(f"egressguard verify probe: bad plan: {exc}\n")
        return 2

    def write(line: str) -> None:
        out.write(line + "\n")
        out.flush()

    run_probes(run, probes, write)
    return 0


# --------------------------------------------------------------------------- reading a log


@dataclass(frozen=True)
class ParsedLog:
    """What a pod log says about one run.

    ``results`` maps probe index to its outcome (the first line wins; later ones for the same
    index count as ``duplicates``). ``announced`` is the probe count of the start line and
    ``ended`` whether the end line was seen: a log with a start and no end was cut short.
    ``other_lines`` counts lines that are not ours (with the first few kept in ``other_samples``,
    shortened), ``malformed`` our lines that do not parse, ``foreign_runs`` our lines of another
    run id.
    """

    run: str
    started: bool = False
    announced: int | None = None
    ended: bool = False
    results: Mapping[int, ProbeOutcome] = field(default_factory=dict)
    duplicates: int = 0
    malformed: int = 0
    foreign_runs: int = 0
    other_lines: int = 0
    other_samples: tuple[str, ...] = ()

    @property
    def complete(self) -> bool:
        """Start and end seen, and a result for every announced probe."""
        return self.started and self.ended and self.announced == len(self.results)


def _as_tagged(line: str) -> dict[str, Any] | None:
    """Our JSON object on this line, or None. Tolerates a leading timestamp or prefix that a log
    shipper may add: the object starts at the first ``{"egressguard-verify"``."""
    at = line.find('{"' + LINE_TAG + '"')
    if at < 0:
        return None
    try:
        obj = json.loads(line[at:])
    except ValueError:
        return {}
    return obj if isinstance(obj, dict) else {}


def parse_log(text: str, run: str) -> ParsedLog:
    """Read the lines of ``run`` from a pod log. Never raises for any content."""
    started = ended = False
    announced: int | None = None
    results: dict[int, ProbeOutcome] = {}
    duplicates = malformed = foreign = other = 0
    samples: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        obj = _as_tagged(line)
        if obj is None:
            other += 1
            if len(samples) < _OTHER_SAMPLES:
                samples.append(line[:200])
            continue
        kind = obj.get(LINE_TAG)
        if not obj or not isinstance(kind, str):
            malformed += 1
            continue
        if obj.get("run") != run:
            foreign += 1
            continue
        if kind == "start":
            started = True
            count = obj.get("probes")
            announced = count if isinstance(count, int) and not isinstance(count, bool) else None
        elif kind == "end":
            ended = True
        elif kind == "result":
            try:
                result = ProbeOutcome.from_json(obj)
            except (KeyError, TypeError, ValueError):
                malformed += 1
                continue
            if result.index in results:
                duplicates += 1
            else:
                results[result.index] = result
        else:
            malformed += 1
    return ParsedLog(
        run=run,
        started=started,
        announced=announced,
        ended=ended,
        results=results,
        duplicates=duplicates,
        malformed=malformed,
        foreign_runs=foreign,
        other_lines=other,
        other_samples=tuple(samples),
    )
