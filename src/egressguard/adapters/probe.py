"""Real TCP, UDP and ICMP probes and the lab's "internet" servers, run inside a namespace.

Two halves share this module:

* **Host side** (imported by the app): ``Probe`` / ``ProbeResult`` values, the ``ProbeRunner``
  protocol and ``NetnsProbeRunner``, which runs *all* probes of one pod in a single
  ``ip netns exec NS python -m egressguard.adapters.probe probe`` call (JSON in on stdin, JSON
  out on stdout, probes in parallel threads), and ``start_servers``, which starts the server
  daemon in a namespace and returns its ``ProcessRef``.
* **Namespace side** (``python -m egressguard.adapters.probe probe|serve``): the probes
  themselves and the servers. It uses the standard library only, so it starts fast.

Probe semantics (what ``ok`` means):

* ``tcp``: the handshake completes *and* the lab server's banner line arrives
  (``egressguard-lab tcp <addr> <port>``), which proves the packet reached the server we meant.
* ``udp``: a random payload comes back byte for byte from the destination address and port.
* ``icmp``: an echo reply with our identifier, sequence and payload comes back from the
  destination. Raw sockets are used (the lab runs as root; no ``ping`` binary is needed), and an
  ICMP error that quotes our request is reported as ``unreachable``.

Failures carry a short ``detail``: ``timeout``, ``refused``, ``unreachable``, or the OS error.

Servers (``serve``): per address and port, TCP listeners that send the banner and close, and UDP
sockets that echo each datagram. Sockets are bound per address (not to the wildcard) so a UDP
reply always leaves from the address the client asked. The daemon binds everything *before* it
forks, then the parent prints ``{"pid": N}`` and exits: when ``start_servers`` returns, every
socket is listening. ICMP echo is answered by the kernel. The daemon ends on SIGTERM or after
``max_lifetime`` seconds (a forgotten lab does not serve forever).
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import secrets
import selectors
import signal
import socket
import struct
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol, cast

from egressguard.errors import DataplaneError

if TYPE_CHECKING:  # netns imports subprocess; the namespace side does not need it
    from egressguard.adapters.netns import NetnsRunner

__all__ = [
    "BANNER_PREFIX",
    "PROTOCOLS",
    "NetnsProbeRunner",
    "Probe",
    "ProbeResult",
    "ProbeRunner",
    "ScriptedProbeRunner",
    "ServerSpec",
    "icmp_checksum",
    "main",
    "run_probe",
    "run_probes_locally",
    "start_servers",
]

MODULE = "egressguard.adapters.probe"
BANNER_PREFIX = "egressguard-lab"
Proto = Literal["tcp", "udp", "icmp"]
PROTOCOLS: tuple[Proto, ...] = ("tcp", "udp", "icmp")
#: Upper bound for one probe's timeout (seconds); keeps every wait bounded.
MAX_TIMEOUT = 30.0
MAX_PROBES = 4096


# --------------------------------------------------------------------------- values


@dataclass(frozen=True, slots=True)
class Probe:
    """One attempt from ``pod`` (a lab pod key, e.g. ``pod1``) to ``dst`` (and ``port`` for
    TCP/UDP; ``None`` for ICMP). ``timeout`` bounds the whole attempt, in seconds."""

    pod: str
    proto: Proto
    dst: str
    port: int | None = None
    timeout: float = 2.0

    def __post_init__(self) -> None:
        if self.proto not in PROTOCOLS:
            raise ValueError(f"unknown probe protocol {self.proto!r}")
        ipaddress.ip_address(self.dst)  # raises ValueError for anything but an address
        if self.proto == "icmp":
            if self.port is not None:
                raise ValueError("an icmp probe has no port")
        elif self.port is None or not 0 < self.port < 65536:
            raise ValueError(f"a {self.proto} probe needs a port in 1..65535")
        if not 0 < self.timeout <= MAX_TIMEOUT:
            raise ValueError(f"probe timeout must be in (0, {MAX_TIMEOUT:g}] seconds")

    @property
    def family(self) -> int:
        """4 or 6."""
        return ipaddress.ip_address(self.dst).version

    def label(self) -> str:
        """``tcp 203.0.113.10:443`` / ``icmp 2001:db8::1``, for tables."""
        if self.port is None:
            return f"{self.proto} {self.dst}"
        host = f"[{self.dst}]" if self.family == 6 else self.dst
        return f"{self.proto} {host}:{self.port}"

    def to_json(self) -> dict[str, Any]:
        return {
            "pod": self.pod,
            "proto": self.proto,
            "dst": self.dst,
            "port": self.port,
            "timeout": self.timeout,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Probe:
        port = data.get("port")
        return cls(
            pod=str(data["pod"]),
            proto=cast(Proto, str(data["proto"])),
            dst=str(data["dst"]),
            port=None if port is None else int(port),
            timeout=float(data.get("timeout", 2.0)),
        )


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """What a probe observed: ``ok`` (reached the server and got its answer), a short
    ``detail`` and ``elapsed`` seconds."""

    probe: Probe
    ok: bool
    detail: str
    elapsed: float

    def to_json(self) -> dict[str, Any]:
        return {
            "probe": self.probe.to_json(),
            "ok": self.ok,
            "detail": self.detail,
            "elapsed": round(self.elapsed, 6),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ProbeResult:
        return cls(
            probe=Probe.from_json(data["probe"]),
            ok=bool(data["ok"]),
            detail=str(data["detail"]),
            elapsed=float(data["elapsed"]),
        )


@dataclass(frozen=True, slots=True)
class ServerSpec:
    """What the server daemon listens on: every ``address`` × ``tcp`` / ``udp`` port."""

    addresses: tuple[str, ...]
    tcp: tuple[int, ...] = (80, 443)
    udp: tuple[int, ...] = (53,)
    max_lifetime: float = 86400.0
    banner: str = BANNER_PREFIX

    def to_json(self) -> dict[str, Any]:
        return {
            "addresses": list(self.addresses),
            "tcp": list(self.tcp),
            "udp": list(self.udp),
            "max_lifetime": self.max_lifetime,
            "banner": self.banner,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ServerSpec:
        return cls(
            addresses=tuple(str(a) for a in data["addresses"]),
            tcp=tuple(int(p) for p in data.get("tcp", ())),
            udp=tuple(int(p) for p in data.get("udp", ())),
            max_lifetime=float(data.get("max_lifetime", 86400.0)),
            banner=str(data.get("banner", BANNER_PREFIX)),
        )


# --------------------------------------------------------------------------- host side


class ProbeRunner(Protocol):
    """Run probes from inside network namespace ``ns``; results in the order of ``probes``."""

    def run_probes(self, ns: str, probes: Sequence[Probe]) -> list[ProbeResult]: ...


class ScriptedProbeRunner:
    """In-package fake ``ProbeRunner``: ``verdict(ns, probe)`` decides each result.

    For unit tests of code that only interprets results (tables, expected-vs-observed); the
    real probes run in tests/integration. ``calls`` records ``(ns, probes)`` per call.
    """

    def __init__(self, verdict: Callable[[str, Probe], tuple[bool, str]]) -> None:
        self.verdict = verdict
        self.calls: list[tuple[str, list[Probe]]] = []

    def run_probes(self, ns: str, probes: Sequence[Probe]) -> list[ProbeResult]:
        self.calls.append((ns, list(probes)))
        out = []
        for p in probes:
            ok, detail = self.verdict(ns, p)
            out.append(ProbeResult(p, ok, detail, 0.0 if ok else p.timeout))
        return out


def _module_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", MODULE, *args]


class NetnsProbeRunner:
    """The real ``ProbeRunner``: one ``ip netns exec`` subprocess per call, probes in parallel.

    ``startup_allowance`` is added to the longest probe timeout to bound the subprocess.
    """

    def __init__(self, runner: NetnsRunner, *, startup_allowance: float = 15.0) -> None:
        self.runner = runner
        self.startup_allowance = startup_allowance

    def run_probes(self, ns: str, probes: Sequence[Probe]) -> list[ProbeResult]:
        if not probes:
            return []
        if len(probes) > MAX_PROBES:
            raise DataplaneError(f"{len(probes)} probes in one call; at most {MAX_PROBES}")
        payload = json.dumps({"probes": [p.to_json() for p in probes]}).encode()
        timeout = max(p.timeout for p in probes) + self.startup_allowance
        res = self.runner.run(ns, _module_argv("probe"), input=payload, timeout=timeout)
        try:
            doc = json.loads(res.stdout)
            results = [ProbeResult.from_json(r) for r in doc["results"]]
        except (ValueError, KeyError, TypeError) as exc:
            raise DataplaneError(
                f"probe runner in {ns} printed no valid result: {res.stdout[:200]!r}"
            ) from exc
        if [r.probe for r in results] != list(probes):
            raise DataplaneError(f"probe runner in {ns} answered for other probes than asked")
        return results


def start_servers(
    runner: NetnsRunner, ns: str | None, spec: ServerSpec, *, timeout: float = 10.0
) -> int:
    """Start the server daemon in ``ns`` (None: the caller's own namespace); returns its pid
    once every socket is listening.

    The daemon is not our child (it double-forks away from ``ip netns exec``), so it outlives
    the command that started it; stop it with ``netns.stop_process``.
    """
    res = runner.run(
        ns,
        _module_argv("serve", "--daemon"),
        input=json.dumps(spec.to_json()).encode(),
        timeout=timeout,
    )
    try:
        pid = int(json.loads(res.stdout)["pid"])
    except (ValueError, KeyError, TypeError) as exc:
        raise DataplaneError(
            f"server daemon in {ns} did not report its pid: {res.stdout[:200]!r}",
            hint=res.stderr.decode("utf-8", "replace").strip()[:200] or None,
        ) from exc
    return pid


# --------------------------------------------------------------------------- namespace side


def icmp_checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071): one's complement of the one's-complement sum of
    16-bit big-endian words, an odd trailing byte padded with zero."""
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _fail_detail(exc: OSError) -> str:
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, ConnectionRefusedError):
        return "refused"
    if exc.errno in (113, 101):  # EHOSTUNREACH, ENETUNREACH
        return f"unreachable ({exc.strerror})"
    if exc.errno in (1, 13):  # EPERM, EACCES: a local firewall rejected the send
        return f"denied locally ({exc.strerror})"
    return f"error: {exc.strerror or exc}"


def _sockaddr(dst: str, port: int) -> tuple[Any, ...]:
    return (dst, port) if ipaddress.ip_address(dst).version == 4 else (dst, port, 0, 0)


def _af(dst: str) -> socket.AddressFamily:
    return socket.AF_INET if ipaddress.ip_address(dst).version == 4 else socket.AF_INET6


def probe_tcp(dst: str, port: int, timeout: float) -> tuple[bool, str]:
    deadline = time.monotonic() + timeout
    with socket.socket(_af(dst), socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        try:
            s.connect(_sockaddr(dst, port))
        except OSError as exc:
            return False, _fail_detail(exc)
        data = b""
        try:
            while b"\n" not in data and len(data) < 512:
                s.settimeout(max(deadline - time.monotonic(), 0.001))
                chunk = s.recv(512)
                if not chunk:
                    break
                data += chunk
        except OSError as exc:
            return False, f"connected, then {_fail_detail(exc)} waiting for the banner"
    banner = data.decode("utf-8", "replace").strip()
    if banner.startswith(BANNER_PREFIX):
        return True, f"connected: {banner}"
    return False, f"connected, unexpected banner {banner[:60]!r}"


def probe_udp(dst: str, port: int, timeout: float) -> tuple[bool, str]:
    deadline = time.monotonic() + timeout
    payload = b"egressguard-probe " + secrets.token_hex(8).encode()
    with socket.socket(_af(dst), socket.SOCK_DGRAM) as s:
        try:
            s.connect(_sockaddr(dst, port))  # a connected socket only hears from dst:port
            s.send(payload)
            while True:
                s.settimeout(max(deadline - time.monotonic(), 0.001))
                if s.recv(2048) == payload:
                    return True, "echo received"
        except OSError as exc:
            return False, _fail_detail(exc)


_ICMP4_ECHO, _ICMP4_REPLY, _ICMP4_ERRORS = 8, 0, {3: "unreachable", 11: "time exceeded"}
_ICMP6_ECHO, _ICMP6_REPLY = 128, 129
_ICMP6_ERRORS = {1: "unreachable", 3: "time exceeded", 2: "packet too big"}


def probe_icmp(dst: str, timeout: float, ident: int) -> tuple[bool, str]:
    """Echo request over a raw socket; waits for the matching reply or a quoting error."""
    version = ipaddress.ip_address(dst).version
    target = ipaddress.ip_address(dst)
    seq = 1
    payload = b"egressguard-probe " + secrets.token_hex(8).encode()
    if version == 4:
        s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
        header = struct.pack("!BBHHH", _ICMP4_ECHO, 0, 0, ident, seq)
        csum = icmp_checksum(header + payload)
        packet = struct.pack("!BBHHH", _ICMP4_ECHO, 0, csum, ident, seq) + payload
    else:
        # The kernel fills in the ICMPv6 checksum (it covers a pseudo-header) on raw sockets.
        s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
        packet = struct.pack("!BBHHH", _ICMP6_ECHO, 0, 0, ident, seq) + payload
    deadline = time.monotonic() + timeout
    with s:
        try:
            s.sendto(packet, _sockaddr(dst, 0))
            while True:
                s.settimeout(max(deadline - time.monotonic(), 0.001))
                data, addr = s.recvfrom(4096)
                verdict = _match_icmp(
                    version, data, addr[0], target=target, ident=ident, seq=seq, payload=payload
                )
                if verdict is not None:
                    return verdict
        except OSError as exc:
            return False, _fail_detail(exc)


def _match_icmp(
    version: int,
    data: bytes,
    src: str,
    *,
    target: ipaddress.IPv4Address | ipaddress.IPv6Address,
    ident: int,
    seq: int,
    payload: bytes,
) -> tuple[bool, str] | None:
    """Classify one received ICMP packet: our reply, an error quoting our request, or noise."""
    if version == 4:
        # A raw IPv4 socket delivers the IP header too; its length is IHL × 4.
        if len(data) < 20:
            return None
        data = data[(data[0] & 0x0F) * 4 :]
        reply, errors, quoted_header = _ICMP4_REPLY, _ICMP4_ERRORS, None
    else:
        reply, errors, quoted_header = _ICMP6_REPLY, _ICMP6_ERRORS, 40
    if len(data) < 8:
        return None
    typ, code, _csum, pid, pseq = struct.unpack("!BBHHH", data[:8])
    if typ == reply:
        if (
            pid == ident
            and pseq == seq
            and data[8:] == payload
            and ipaddress.ip_address(src.split("%", maxsplit=1)[0]) == target
        ):
            return True, "echo reply"
        return None
    if typ in errors:
        # The error quotes our original IP header and at least 8 bytes of our ICMP header.
        inner = data[8:]
        if quoted_header is None:
            if len(inner) < 20:
                return None
            inner = inner[(inner[0] & 0x0F) * 4 :]
        else:
            inner = inner[quoted_header:]
        if len(inner) >= 8:
            qtyp, _qc, _qs, qid, qseq = struct.unpack("!BBHHH", inner[:8])
            if qtyp in (_ICMP4_ECHO, _ICMP6_ECHO) and qid == ident and qseq == seq:
                return False, f"{errors[typ]} (type {typ} code {code} from {src})"
    return None


def run_probe(probe: Probe, *, ident: int | None = None) -> ProbeResult:
    """Run one probe from the current namespace."""
    start = time.monotonic()
    try:
        if probe.proto == "tcp":
            ok, detail = probe_tcp(probe.dst, cast(int, probe.port), probe.timeout)
        elif probe.proto == "udp":
            ok, detail = probe_udp(probe.dst, cast(int, probe.port), probe.timeout)
        else:
            if ident is None:
                ident = secrets.randbelow(0x10000)
            ok, detail = probe_icmp(probe.dst, probe.timeout, ident)
    except OSError as exc:  # socket creation itself failed (e.g. no CAP_NET_RAW)
        ok, detail = False, _fail_detail(exc)
    return ProbeResult(probe, ok, detail, time.monotonic() - start)


def run_probes_locally(probes: Sequence[Probe], *, max_workers: int = 32) -> list[ProbeResult]:
    """Run ``probes`` concurrently from the current namespace, results in input order.

    ICMP identifiers are distinct within the batch so parallel raw sockets (which all see
    every reply) never take each other's answers.
    """
    if not probes:
        return []
    base = secrets.randbelow(0x10000)
    idents = [(base + i) & 0xFFFF for i in range(len(probes))]
    workers = max(1, min(max_workers, len(probes)))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda p, i: run_probe(p, ident=i), probes, idents))


# --------------------------------------------------------------------------- servers


def open_server_sockets(spec: ServerSpec) -> list[tuple[socket.socket, str]]:
    """Bind and listen on everything in ``spec``; returns (socket, kind) pairs."""
    socks: list[tuple[socket.socket, str]] = []
    try:
        for addr in spec.addresses:
            for kind, ports in (("tcp", spec.tcp), ("udp", spec.udp)):
                for port in ports:
                    typ = socket.SOCK_STREAM if kind == "tcp" else socket.SOCK_DGRAM
                    s = socket.socket(_af(addr), typ)
                    socks.append((s, kind))
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    s.bind(_sockaddr(addr, port))
                    if kind == "tcp":
                        s.listen(64)
                    s.setblocking(False)
    except OSError:
        for s, _ in socks:
            s.close()
        raise
    return socks


class _Stop(Exception):
    pass


def _raise_stop(signum: int, frame: object) -> None:
    raise _Stop


def serve(
    socks: Sequence[tuple[socket.socket, str]],
    *,
    banner: str,
    max_lifetime: float,
    should_stop: Callable[[], bool] = lambda: False,
) -> None:
    """Answer on ``socks`` until SIGTERM (in the daemon), ``should_stop()`` or the lifetime."""
    deadline = time.monotonic() + max_lifetime
    sel = selectors.DefaultSelector()
    for s, kind in socks:
        sel.register(s, selectors.EVENT_READ, kind)
    try:
        while time.monotonic() < deadline and not should_stop():
            for key, _ in sel.select(timeout=0.2):
                sock = cast(socket.socket, key.fileobj)
                if key.data == "tcp":
                    _answer_tcp(sock, banner)
                else:
                    _answer_udp(sock)
    except _Stop:
        pass
    finally:
        sel.close()
        for s, _ in socks:
            s.close()


def _answer_tcp(sock: socket.socket, banner: str) -> None:
    try:
        conn, _peer = sock.accept()
    except (BlockingIOError, InterruptedError, ConnectionAbortedError):
        return
    with conn:
        local = conn.getsockname()
        try:
            conn.settimeout(1.0)
            conn.sendall(f"{banner} tcp {local[0]} {local[1]}\n".encode())
            conn.shutdown(socket.SHUT_WR)
        except OSError:
            return


def _answer_udp(sock: socket.socket) -> None:
    try:
        data, peer = sock.recvfrom(65535)
        sock.sendto(data, peer)
    except (BlockingIOError, InterruptedError, OSError):
        return


def _daemonize(socks: list[tuple[socket.socket, str]], spec: ServerSpec) -> int:
    """Fork; the parent reports the child's pid and exits, the child serves until told."""
    sys.stdout.flush()
    pid = os.fork()
    if pid > 0:
        os.write(1, (json.dumps({"pid": pid}) + "\n").encode())
        os._exit(0)
    # Child: own session (a terminal's Ctrl-C is not ours), no inherited pipes so the
    # starter's read of our parent's stdout ends when the parent exits.
    os.setsid()
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.close(devnull)
    signal.signal(signal.SIGTERM, _raise_stop)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    code = 0
    try:
        serve(socks, banner=spec.banner, max_lifetime=spec.max_lifetime)
    except Exception:
        code = 1
    os._exit(code)


def _read_stdin_json() -> Any:
    raw = sys.stdin.buffer.read(16 * 1024 * 1024)
    return json.loads(raw)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m egressguard.adapters.probe probe|serve [--daemon]`` (JSON on stdin)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] not in ("probe", "serve"):
        sys.stderr.write(
            "usage: python -m egressguard.adapters.probe probe|serve [--daemon]\n"
            "  probe: stdin {'probes': [...]} -> stdout {'results': [...]}\n"
            "  serve: stdin ServerSpec JSON; --daemon forks and prints {'pid': N}\n"
        )
        return 2
    try:
        doc = _read_stdin_json()
    except ValueError as exc:
        sys.stderr.write(f"stdin is not JSON: {exc}\n")
        return 2
    if args[0] == "probe":
        try:
            probes = [Probe.from_json(p) for p in doc["probes"]]
        except (KeyError, TypeError, ValueError) as exc:
            sys.stderr.write(f"bad probe list: {exc}\n")
            return 2
        if len(probes) > MAX_PROBES:
            sys.stderr.write(f"at most {MAX_PROBES} probes per call\n")
            return 2
        results = run_probes_locally(probes)
        sys.stdout.write(json.dumps({"results": [r.to_json() for r in results]}) + "\n")
        return 0
    try:
        spec = ServerSpec.from_json(doc)
    except (KeyError, TypeError, ValueError) as exc:
        sys.stderr.write(f"bad server spec: {exc}\n")
        return 2
    try:
        socks = open_server_sockets(spec)
    except OSError as exc:
        sys.stderr.write(f"cannot listen: {exc}\n")
        return 1
    if "--daemon" in args[1:]:
        return _daemonize(socks, spec)
    signal.signal(signal.SIGTERM, _raise_stop)
    with contextlib.suppress(KeyboardInterrupt):
        serve(socks, banner=spec.banner, max_lifetime=spec.max_lifetime)
    return 0


if __name__ == "__main__":
    sys.exit(main())
