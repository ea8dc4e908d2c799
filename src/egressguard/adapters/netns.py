"""Network namespaces, veth pairs, addresses, routes and sysctls, driven through ``ip``.

Everything here runs the iproute2 and procps binaries with argument lists (never a shell), so
a namespace, link or address name can never be interpreted as shell syntax. The one seam is
``NetnsRunner``: *run this argv inside that namespace* (``ip netns exec NS argv...``) or in the
caller's own namespace (``ns=None``). Other adapters use it too; the nft adapter applies a
script inside a namespace with ``runner.run(ns, ["nft", "-f", "-"], input=script)``.

``IpRoute2`` wraps the handful of ``ip`` operations the lab needs (namespaces, veths, addresses,
routes, static neighbours, sysctls). Processes started in a namespace are tracked as
``ProcessRef`` (pid plus the kernel's start time, so a recycled pid is never killed by
mistake) and stopped with ``stop_process`` / ``stop_namespace_processes``, each with a bounded
wait. ``StateFile`` is the crash-safe JSON file in which the lab records what it created.

``SubprocessNetnsRunner`` is the real runner; ``RecordingNetnsRunner`` is the in-package fake
that records each call and answers from a table, for unit tests of code that only composes
commands.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from egressguard.adapters.state import atomic_write
from egressguard.errors import DataplaneError, EnvironmentProblem

__all__ = [
    "CommandResult",
    "IpRoute2",
    "NetnsRunner",
    "ProcessRef",
    "RecordingNetnsRunner",
    "Responder",
    "StateFile",
    "SubprocessNetnsRunner",
    "check_privileges",
    "process_alive",
    "process_ref",
    "stop_namespace_processes",
    "stop_process",
    "validate_ifname",
    "validate_netns_name",
]

#: Linux limits an interface name to IFNAMSIZ - 1 = 15 bytes.
IFNAME_MAX = 15
_IFNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,14}$")
#: Namespace names become file names under /run/netns; keep them to a safe alphabet.
_NETNS_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")

IPInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def validate_ifname(name: str) -> str:
    """Return ``name`` if it is a usable interface name (≤ 15 chars, safe alphabet)."""
    if not _IFNAME.match(name):
        raise DataplaneError(
            f"{name!r} is not a valid interface name",
            hint=f"use at most {IFNAME_MAX} characters from [A-Za-z0-9_.-]",
        )
    return name


def validate_netns_name(name: str) -> str:
    """Return ``name`` if it is a usable namespace name (≤ 64 chars, safe alphabet)."""
    if not _NETNS_NAME.match(name):
        raise DataplaneError(
            f"{name!r} is not a valid network namespace name",
            hint="use at most 64 characters from [A-Za-z0-9_.-], starting with a letter or digit",
        )
    return name


# --------------------------------------------------------------------------- running commands


@dataclass(frozen=True, slots=True)
class CommandResult:
    """What one command did: its argv (as run, including any ``ip netns exec`` prefix)."""

    argv: tuple[str, ...]
    returncode: int
    stdout: bytes = b""
    stderr: bytes = b""

    @property
    def text(self) -> str:
        """Standard output decoded as UTF-8 (replacing undecodable bytes)."""
        return self.stdout.decode("utf-8", "replace")


class NetnsRunner(Protocol):
    """Run a program inside a network namespace, or in the caller's own with ``ns=None``.

    ``input`` is fed to standard input; ``timeout`` bounds the wait (seconds). With
    ``check=True`` a non-zero exit raises ``DataplaneError`` whose message carries the
    command and its stderr; with ``check=False`` the result is returned whatever the exit code.
    A missing binary raises ``EnvironmentProblem``; a timeout raises a transient
    ``DataplaneError`` after the child has been killed.
    """

    def run(
        self,
        ns: str | None,
        argv: Sequence[str],
        *,
        input: bytes | None = None,
        timeout: float = 30.0,
        check: bool = True,
    ) -> CommandResult: ...


def _netns_argv(ns: str | None, argv: Sequence[str]) -> list[str]:
    if not argv:
        raise DataplaneError("empty command")
    if ns is None:
        return list(argv)
    return ["ip", "netns", "exec", validate_netns_name(ns), *argv]


def _describe(argv: Sequence[str]) -> str:
    return " ".join(argv)


class SubprocessNetnsRunner:
    """The real ``NetnsRunner``: ``subprocess.run`` with an argument list, never a shell.

    ``ip netns exec`` switches namespace and then execs the program (no extra process stays
    around), so the exit code and output are the program's own.
    """

    def run(
        self,
        ns: str | None,
        argv: Sequence[str],
        *,
        input: bytes | None = None,
        timeout: float = 30.0,
        check: bool = True,
    ) -> CommandResult:
        full = _netns_argv(ns, argv)
        try:
            proc = subprocess.run(
                full,
                input=input,
                stdin=None if input is not None else subprocess.DEVNULL,
                capture_output=True,
                timeout=timeout,
                check=False,
            )
        except FileNotFoundError as exc:
            raise EnvironmentProblem(
                f"{full[0]}: command not found",
                hint="install iproute2 (ip), procps (sysctl) and nftables (nft)",
            ) from exc
        except subprocess.TimeoutExpired as exc:
            raise DataplaneError(
                f"`{_describe(full)}` did not finish within {timeout:g} s",
                hint="the command was killed; check the namespace and retry",
                transient=True,
            ) from exc
        result = CommandResult(tuple(full), proc.returncode, proc.stdout, proc.stderr)
        return _checked(result) if check else result


def _checked(result: CommandResult) -> CommandResult:
    """``result`` when it exited 0, else the ``DataplaneError`` ``check=True`` promises."""
    if result.returncode != 0:
        raise DataplaneError(
            f"`{_describe(result.argv)}` failed (exit {result.returncode}): "
            f"{result.stderr.decode('utf-8', 'replace').strip() or 'no message'}",
            hint=_hint_for(result.stderr),
        )
    return result


def _hint_for(stderr: bytes) -> str | None:
    text = stderr.decode("utf-8", "replace")
    if "Operation not permitted" in text or "Permission denied" in text:
        return "run as root (network namespaces and nftables need CAP_NET_ADMIN and CAP_SYS_ADMIN)"
    if "Cannot open network namespace" in text or "No such file" in text:
        return "the namespace does not exist (any more); `egressguard lab status` shows what is up"
    if "File exists" in text:
        return "it exists already; `egressguard lab down` removes a previous lab"
    return None


Responder = Callable[[str | None, tuple[str, ...], bytes | None], CommandResult | None]


@dataclass
class RecordingNetnsRunner:
    """In-package fake ``NetnsRunner``: records every call, answers from ``responders``.

    Each responder gets ``(ns, argv, input)`` and returns a ``CommandResult`` to answer or
    ``None`` to pass; the first answer wins, and with none the call succeeds with empty output.
    ``check`` behaves as in the real runner, so error paths can be exercised.
    """

    responders: list[Responder] = field(default_factory=list)
    calls: list[tuple[str | None, tuple[str, ...], bytes | None]] = field(default_factory=list)

    def run(
        self,
        ns: str | None,
        argv: Sequence[str],
        *,
        input: bytes | None = None,
        timeout: float = 30.0,
        check: bool = True,
    ) -> CommandResult:
        args = tuple(argv)
        _netns_argv(ns, args)  # the same validation as the real runner
        self.calls.append((ns, args, input))
        result: CommandResult | None = None
        for responder in self.responders:
            result = responder(ns, args, input)
            if result is not None:
                break
        if result is None:
            result = CommandResult(args, 0)
        return _checked(result) if check else result


def check_privileges() -> None:
    """Raise ``EnvironmentProblem`` unless this process can manage namespaces (root, ``ip``)."""
    if os.geteuid() != 0:
        raise EnvironmentProblem(
            "the lab needs root: it creates network namespaces, veth pairs and nftables rules",
            hint="run it with sudo, or as root in a VM or container with CAP_SYS_ADMIN",
        )
    if shutil.which("ip") is None:
        raise EnvironmentProblem("ip: command not found", hint="install iproute2")


# --------------------------------------------------------------------------- ip operations


class IpRoute2:
    """The ``ip``/``sysctl`` operations the lab needs, each one command through the runner.

    Deletions are idempotent (a missing namespace is not an error); creations are not (an
    existing namespace or link is an error, so nothing of someone else's is silently adopted).
    """

    def __init__(self, runner: NetnsRunner, *, timeout: float = 10.0) -> None:
        self.runner = runner
        self.timeout = timeout

    def _ip(self, ns: str | None, *args: str, check: bool = True) -> CommandResult:
        argv = ["ip", *args] if ns is None else ["ip", "-n", validate_netns_name(ns), *args]
        return self.runner.run(None, argv, timeout=self.timeout, check=check)

    # namespaces
    def list_namespaces(self) -> list[str]:
        """Names of the named network namespaces (those under /run/netns)."""
        out = self._ip(None, "-j", "netns", "list").text.strip()
        if not out:
            return []
        try:
            rows = json.loads(out)
        except json.JSONDecodeError as exc:
            raise DataplaneError(f"`ip -j netns list` printed no JSON: {out[:80]!r}") from exc
        return sorted(str(row["name"]) for row in rows if isinstance(row, dict) and "name" in row)

    def namespace_exists(self, name: str) -> bool:
        return name in self.list_namespaces()

    def add_namespace(self, name: str) -> None:
        self._ip(None, "netns", "add", validate_netns_name(name))

    def delete_namespace(self, name: str) -> bool:
        """Delete ``name``; returns False when it did not exist."""
        if not self.namespace_exists(validate_netns_name(name)):
            return False
        self._ip(None, "netns", "del", name)
        return True

    def namespace_pids(self, name: str) -> list[int]:
        """Processes whose network namespace is ``name`` (``ip netns pids``)."""
        res = self._ip(None, "netns", "pids", validate_netns_name(name), check=False)
        if res.returncode != 0:
            return []
        return sorted({int(tok) for tok in res.text.split() if tok.isdigit()})

    # links
    def add_veth(
        self,
        *,
        name: str,
        ns: str,
        peer: str,
        peer_ns: str,
        mac: str | None = None,
        peer_mac: str | None = None,
    ) -> None:
        """Create a veth pair with each end directly in its namespace (never in ours)."""
        argv = ["link", "add", validate_ifname(name)]
        if mac:
            argv += ["address", mac]
        argv += ["netns", validate_netns_name(ns), "type", "veth", "peer", "name"]
        argv += [validate_ifname(peer)]
        if peer_mac:
            argv += ["address", peer_mac]
        argv += ["netns", validate_netns_name(peer_ns)]
        self._ip(None, *argv)

    def set_link(
        self, ns: str, dev: str, *, up: bool | None = None, addrgen_none: bool = False
    ) -> None:
        """``ip link set``: ``addrgen_none`` stops the kernel adding an fe80:: address."""
        if addrgen_none:
            self._ip(ns, "link", "set", "dev", validate_ifname(dev), "addrgenmode", "none")
        if up is not None:
            self._ip(ns, "link", "set", "dev", validate_ifname(dev), "up" if up else "down")

    def links(self, ns: str) -> list[dict[str, Any]]:
        """``ip -j link show`` in ``ns``."""
        return _json_rows(self._ip(ns, "-j", "link", "show"))

    def addresses(self, ns: str) -> list[dict[str, Any]]:
        """``ip -j addr show`` in ``ns``: one row per interface with its ``addr_info``."""
        return _json_rows(self._ip(ns, "-j", "addr", "show"))

    def add_address(self, ns: str, dev: str, address: IPInterface) -> None:
        """Add an address; IPv6 ones skip duplicate address detection (``nodad``) so they
        are usable at once instead of after a second of 'tentative'."""
        argv = ["addr", "add", str(address), "dev", validate_ifname(dev)]
        if address.version == 6:
            argv.append("nodad")
        self._ip(ns, *argv)

    def add_route(
        self,
        ns: str,
        dst: IPNetwork | str,
        *,
        dev: str,
        via: IPAddress | None = None,
        version: int | None = None,
    ) -> None:
        """A route to ``dst`` (a network, or ``"default"`` with ``version``) out of ``dev``,
        through ``via`` or, without it, directly on the link (scope link)."""
        if isinstance(dst, str):
            if dst != "default" or version not in (4, 6):
                raise DataplaneError(f"route destination {dst!r} needs a network or 'default'")
            fam = f"-{version}"
        else:
            fam = f"-{dst.version}"
        argv = [fam, "route", "add", str(dst)]
        if via is not None:
            argv += ["via", str(via)]
        argv += ["dev", validate_ifname(dev)]
        if via is None and fam == "-4":
            argv += ["scope", "link"]
        self._ip(ns, *argv)

    def routes(self, ns: str, version: int) -> list[dict[str, Any]]:
        return _json_rows(self._ip(ns, "-j", f"-{version}", "route", "show"))

    def add_neighbor(self, ns: str, dev: str, address: IPAddress, mac: str) -> None:
        """A permanent neighbour entry (no ARP/NDP needed for ``address``)."""
        self._ip(
            ns,
            "neigh",
            "replace",
            str(address),
            "lladdr",
            mac,
            "dev",
            validate_ifname(dev),
            "nud",
            "permanent",
        )

    # sysctls
    def read_sysctl(self, ns: str | None, key: str) -> str:
        """The value of ``key`` (e.g. ``net.ipv4.ip_forward``) in ``ns`` (None: our own)."""
        res = self.runner.run(ns, ["sysctl", "-n", _sysctl_key(key)], timeout=self.timeout)
        return res.text.strip()

    def write_sysctl(self, ns: str | None, key: str, value: str) -> str:
        """Set ``key`` to ``value`` in ``ns``; returns the previous value (for restoring)."""
        previous = self.read_sysctl(ns, key)
        self.runner.run(ns, ["sysctl", "-q", "-w", f"{_sysctl_key(key)}={value}"])
        return previous


_SYSCTL_KEY = re.compile(r"^[a-z0-9_]+(\.[A-Za-z0-9_.-]+)+$")


def _sysctl_key(key: str) -> str:
    if not _SYSCTL_KEY.match(key) or "=" in key:
        raise DataplaneError(f"{key!r} is not a sysctl key")
    return key


def _json_rows(res: CommandResult) -> list[dict[str, Any]]:
    text = res.text.strip()
    if not text:
        return []
    try:
        rows = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataplaneError(
            f"`{_describe(res.argv)}` printed no JSON: {text[:80]!r}",
            hint="iproute2 with JSON output (-j) is needed (iproute2 ≥ 4.13)",
        ) from exc
    return [row for row in rows if isinstance(row, dict)]


# --------------------------------------------------------------------------- processes


@dataclass(frozen=True, slots=True)
class ProcessRef:
    """A process we started: pid plus its start time in clock ticks since boot (field 22 of
    /proc/PID/stat). The pair identifies the process even after its pid is reused."""

    pid: int
    starttime: int
    ns: str
    role: str

    def to_json(self) -> dict[str, Any]:
        return {"pid": self.pid, "starttime": self.starttime, "ns": self.ns, "role": self.role}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ProcessRef:
        return cls(int(data["pid"]), int(data["starttime"]), str(data["ns"]), str(data["role"]))


def _stat(pid: int) -> tuple[str, int] | None:
    """(state letter, starttime) of ``pid`` or None when it does not exist."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may hold spaces: split after it.
    rest = raw[raw.rfind(")") + 2 :].split()
    # rest[0] is field 3 (state); field 22 (starttime) is rest[19].
    return rest[0], int(rest[19])


def process_ref(pid: int, *, ns: str, role: str) -> ProcessRef:
    """Identify the running process ``pid`` (raises ``DataplaneError`` if it is gone)."""
    st = _stat(pid)
    if st is None or st[0] in ("Z", "X"):
        raise DataplaneError(f"process {pid} ({role} in {ns}) is not running")
    return ProcessRef(pid, st[1], ns, role)


def process_alive(ref: ProcessRef) -> bool:
    """True while the very process of ``ref`` runs (not a zombie, not a reused pid)."""
    st = _stat(ref.pid)
    return st is not None and st[0] not in ("Z", "X") and st[1] == ref.starttime


def _wait_gone(is_alive: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    delay = 0.005
    while is_alive():
        if time.monotonic() >= deadline:
            return False
        time.sleep(delay)
        delay = min(delay * 2, 0.1)
    return True


def stop_process(ref: ProcessRef, *, timeout: float = 3.0) -> bool:
    """SIGTERM, wait up to ``timeout``, then SIGKILL and wait again; True when it is gone.

    A process that is not (or no longer) the one of ``ref`` is left alone and counts as gone.
    """
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if not process_alive(ref):
            return True
        with contextlib.suppress(ProcessLookupError):
            os.kill(ref.pid, sig)
        if _wait_gone(lambda: process_alive(ref), timeout):
            return True
    return not process_alive(ref)


def stop_namespace_processes(ip: IpRoute2, ns: str, *, timeout: float = 3.0) -> list[int]:
    """Stop every process living in ``ns`` (tracked or not); returns the pids signalled.

    A namespace stays alive after ``ip netns del`` while any process is inside it, so this
    runs before every deletion.
    """
    own = os.getpid()
    refs: list[ProcessRef] = []
    for pid in ip.namespace_pids(ns):
        if pid == own:
            continue
        st = _stat(pid)
        if st is not None and st[0] not in ("Z", "X"):
            refs.append(ProcessRef(pid, st[1], ns, "unknown"))
    for sig in (signal.SIGTERM, signal.SIGKILL):
        alive = [r for r in refs if process_alive(r)]
        for ref in alive:
            with contextlib.suppress(ProcessLookupError):
                os.kill(ref.pid, sig)
        if _wait_gone(lambda: any(process_alive(r) for r in refs), timeout):
            break
    return [r.pid for r in refs]


# --------------------------------------------------------------------------- state file


class StateFile:
    """A JSON document on disk, replaced atomically (temp file, fsync, rename).

    A crash leaves either the old or the new document, never half of one.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> dict[str, Any] | None:
        """The document, or None when there is no file. A corrupt file raises."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise DataplaneError(f"{self.path}: cannot read: {exc.strerror or exc}") from exc
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataplaneError(
                f"{self.path}:{exc.lineno}: state file is not JSON: {exc.msg}",
                hint="remove it by hand; `lab down` then cleans up by name prefix",
            ) from exc
        if not isinstance(data, dict):
            raise DataplaneError(f"{self.path}: state file does not hold a JSON object")
        return data

    def save(self, document: Mapping[str, Any]) -> None:
        text = json.dumps(document, indent=2, sort_keys=True) + "\n"
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # readable by everyone: `lab status` works without root
            atomic_write(self.path, text.encode(), mode=0o644)
        except OSError as exc:
            raise DataplaneError(
                f"{self.path}: cannot write state file: {exc.strerror or exc}",
                hint="choose a writable --state-dir",
            ) from exc

    def remove(self) -> bool:
        """Delete the file; False when there was none."""
        try:
            self.path.unlink()
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise DataplaneError(f"{self.path}: cannot remove: {exc.strerror or exc}") from exc
        return True
