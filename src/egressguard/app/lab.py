"""The lab: two pods, a node and an "internet" in network namespaces, on one Linux machine.

Topology (the default; every address is in a documentation range, RFC 5737 / RFC 3849)::

    pod1 ─ eth0 ═══ caliXXXXXXXXXXX ─┐                         ┌─ lo: 203.0.113.10-15/32
      198.51.100.11/32               │                         │      2001:db8:203:113::10-15
      2001:db8:198:51::11/128      node ─ eth0 ═══════ eth0 ─ inet
    pod2 ─ eth0 ═══ caliYYYYYYYYYYY ─┘  192.0.2.1/24    192.0.2.2/24
      198.51.100.12/32                  2001:db8:192:2::1/64  ::2/64
      2001:db8:198:51::12/128          (forwarding on)   (servers: tcp 80, 443; udp 53;
                                                          ICMP echo by the kernel)

The node side of each pod link is named as Calico names it, ``cali`` + the first 11 hex digits
of SHA-1("<namespace>.<pod>"), and has Calico's MAC ``ee:ee:ee:ee:ee:ee``; the pod side is
``eth0``. So the nft compiler can match workloads by ``iifname "cali*"`` exactly as on a node.

Two deliberate departures from a real Calico node, both to keep every address in the
documentation ranges:

* **Gateway.** Calico gives pods the gateway 169.254.1.1 (and fe80::ecee:eeff:feee:eeee),
  answered by proxy ARP on the cali interface. Here the gateway is 198.51.100.1 /
  2001:db8:198:51::1, assigned as /32 and /128 to *every* cali interface on the node: the node
  answers ARP/NDP for its own address, no proxy ARP is needed, and the pod routes
  ``default via 198.51.100.1 dev eth0`` after an on-link host route to it.
* **No link-local addresses.** Every veth is created with ``addrgenmode none``, so no fe80::
  address exists anywhere. Without one the kernel cannot send a Neighbour Solicitation for a
  *forwarded* IPv6 packet, so IPv6 next hops get permanent neighbour entries (the MACs are
  chosen by the lab, so they are known). IPv4 uses ordinary ARP.

The internet addresses live on ``lo`` of the inet namespace as /32 and /128 (this kernel may
lack the dummy driver; a loopback address is reachable from any interface all the same).

State and cleanup: ``/run/egressguard/lab-<prefix>.json`` (``StateFile``) is a journal written
*before* each namespace is created and after each process or sysctl change, so ``lab down``
removes exactly what a run made, even after a crash. Without a state file ``lab down`` removes
the namespaces named ``<prefix><word>`` (word: letters and digits only, so the prefix ``eg-``
never matches another lab's ``eg-lab-node``). Every namespace's processes are stopped before
it is deleted (a namespace with a process inside outlives ``ip netns del``). Teardown is
idempotent. A build that fails or is interrupted (SIGINT, SIGTERM) tears down what it made.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import re
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from egressguard.adapters import netns, probe
from egressguard.adapters.netns import IpRoute2, NetnsRunner, ProcessRef, StateFile
from egressguard.adapters.probe import Probe, ProbeResult, ProbeRunner, ServerSpec
from egressguard.errors import DataplaneError, EgressguardError, InputError, UsageError

__all__ = [
    "CALI_MAC",
    "DEFAULT_PREFIX",
    "DEFAULT_STATE_DIR",
    "DOCUMENTATION_NETWORKS",
    "Lab",
    "LabPod",
    "LabState",
    "LabStatus",
    "SysctlChange",
    "TeardownReport",
    "Topology",
    "attach_lab",
    "cali_name",
    "default_probes",
    "default_topology",
    "in_documentation_ranges",
    "interruptible",
    "lab_down",
    "lab_status",
    "lab_up",
    "matching_namespaces",
    "open_lab",
    "pod_mac",
    "shielded",
    "state_path",
    "topology_from_json",
    "validate_prefix",
]

DEFAULT_PREFIX = "eg-lab-"
DEFAULT_STATE_DIR = Path("/run/egressguard")
#: The only networks the lab may use: RFC 5737 (IPv4) and RFC 3849 (IPv6) documentation ranges.
DOCUMENTATION_NETWORKS: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = (
    ipaddress.ip_network("192.0.2.0/24"),
    ipaddress.ip_network("198.51.100.0/24"),
    ipaddress.ip_network("203.0.113.0/24"),
    ipaddress.ip_network("2001:db8::/32"),
)
#: Calico's CNI plugin gives the host end of every workload veth this MAC
#: (projectcalico cni-plugin, ``net.ParseMAC("EE:EE:EE:EE:EE:EE")`` on the host veth).
CALI_MAC = "ee:ee:ee:ee:ee:ee"
UPLINK = "eth0"
POD_IFACE = "eth0"
STATE_VERSION = 1

_PREFIX = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$")
_ROLE = re.compile(r"^[a-z0-9]+$")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def validate_prefix(prefix: str) -> str:
    """Return ``prefix`` if namespaces may be named with it (≤ 32 chars, [A-Za-z0-9_.-])."""
    if not _PREFIX.match(prefix):
        raise UsageError(
            f"lab prefix {prefix!r} is not usable",
            hint="use 1-32 characters from [A-Za-z0-9_.-], e.g. 'eg-lab-' or 'eg-test1-'",
        )
    return prefix


def cali_name(namespace: str, pod: str) -> str:
    """Calico's host-side veth name: ``cali`` + SHA-1("<namespace>.<pod>") hex, first 11.

    Source: the recipe in canonical/microk8s ``scripts/dump-workload-endpoints.sh``
    (``echo -n ns.pod | sha1sum | cut -b -11``), which mirrors Calico's own naming.
    """
    digest = hashlib.sha1(f"{namespace}.{pod}".encode(), usedforsecurity=False).hexdigest()
    return "cali" + digest[:11]


def pod_mac(namespace: str, pod: str) -> str:
    """A stable, locally administered unicast MAC for the pod's eth0 (02:xx:xx:xx:xx:xx)."""
    digest = hashlib.sha1(f"mac/{namespace}.{pod}".encode(), usedforsecurity=False).digest()
    return ":".join(f"{b:02x}" for b in (0x02, *digest[:5]))


# --------------------------------------------------------------------------- topology value


@dataclass(frozen=True, slots=True)
class LabPod:
    """A pod of the lab: its lab key (``pod1``), Kubernetes identity and addresses."""

    key: str
    namespace: str
    name: str
    labels: tuple[tuple[str, str], ...]
    ipv4: ipaddress.IPv4Address
    ipv6: ipaddress.IPv6Address

    @property
    def cali(self) -> str:
        """The node-side interface name."""
        return cali_name(self.namespace, self.name)

    @property
    def mac(self) -> str:
        return pod_mac(self.namespace, self.name)

    @property
    def label_map(self) -> dict[str, str]:
        return dict(self.labels)

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "namespace": self.namespace,
            "name": self.name,
            "labels": dict(self.labels),
            "ipv4": str(self.ipv4),
            "ipv6": str(self.ipv6),
            "interface": self.cali,
            "mac": self.mac,
        }


@dataclass(frozen=True, slots=True)
class Topology:
    """Everything the lab builds, as a value (the build only executes it)."""

    prefix: str
    pods: tuple[LabPod, ...]
    pod_network4: ipaddress.IPv4Network
    pod_network6: ipaddress.IPv6Network
    gateway4: ipaddress.IPv4Address
    gateway6: ipaddress.IPv6Address
    node_link4: ipaddress.IPv4Interface
    node_link6: ipaddress.IPv6Interface
    inet_link4: ipaddress.IPv4Interface
    inet_link6: ipaddress.IPv6Interface
    internet_network4: ipaddress.IPv4Network
    internet_network6: ipaddress.IPv6Network
    internet4: tuple[ipaddress.IPv4Address, ...]
    internet6: tuple[ipaddress.IPv6Address, ...]
    tcp_ports: tuple[int, ...] = (80, 443)
    udp_ports: tuple[int, ...] = (53,)
    node_mac: str = "02:00:c0:00:02:01"
    inet_mac: str = "02:00:c0:00:02:02"

    def __post_init__(self) -> None:
        problems = self.problems()
        if problems:
            raise InputError(
                "lab topology is not valid: " + "; ".join(problems),
                hint="every address must be in 192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24 "
                "or 2001:db8::/32, and names must fit Linux limits",
            )

    # names
    def ns(self, role: str) -> str:
        """The namespace of ``role`` (``node``, ``inet`` or a pod key)."""
        return f"{self.prefix}{role}"

    @property
    def node_ns(self) -> str:
        return self.ns("node")

    @property
    def inet_ns(self) -> str:
        return self.ns("inet")

    def pod_ns(self, pod: LabPod | str) -> str:
        return self.ns(pod if isinstance(pod, str) else pod.key)

    def namespaces(self) -> list[str]:
        """All namespaces, in build order (teardown goes in reverse)."""
        return [self.pod_ns(p) for p in self.pods] + [self.node_ns, self.inet_ns]

    def pod(self, key: str) -> LabPod:
        for p in self.pods:
            if p.key == key:
                return p
        raise UsageError(f"no pod {key!r} in the lab", hint=f"pods: {self.pod_keys()}")

    def pod_keys(self) -> list[str]:
        return [p.key for p in self.pods]

    @property
    def internet(self) -> tuple[IPAddress, ...]:
        """Every "internet" address, IPv4 first."""
        return (*self.internet4, *self.internet6)

    def server_spec(self) -> ServerSpec:
        return ServerSpec(
            addresses=tuple(str(a) for a in self.internet),
            tcp=self.tcp_ports,
            udp=self.udp_ports,
        )

    # checks
    def ip_values(self) -> Iterator[tuple[str, Any]]:
        """(field path, value) for every address, interface and network in the topology."""
        for name in (
            "pod_network4",
            "pod_network6",
            "gateway4",
            "gateway6",
            "node_link4",
            "node_link6",
            "inet_link4",
            "inet_link6",
            "internet_network4",
            "internet_network6",
        ):
            yield name, getattr(self, name)
        for i, a4 in enumerate(self.internet4):
            yield f"internet4[{i}]", a4
        for i, a6 in enumerate(self.internet6):
            yield f"internet6[{i}]", a6
        for p in self.pods:
            yield f"pods[{p.key}].ipv4", p.ipv4
            yield f"pods[{p.key}].ipv6", p.ipv6

    def interface_names(self) -> list[str]:
        return ["lo", UPLINK, POD_IFACE, *(p.cali for p in self.pods)]

    def problems(self) -> list[str]:
        """Everything wrong with this topology (empty when it may be built)."""
        out: list[str] = []
        if not _PREFIX.match(self.prefix):
            out.append(f"prefix {self.prefix!r} is not usable")
        for where, value in self.ip_values():
            if not in_documentation_ranges(value):
                out.append(f"{where} = {value} is outside the documentation ranges")
        for p in self.pods:
            if not _ROLE.match(p.key) or p.key in ("node", "inet"):
                out.append(f"pod key {p.key!r} must be letters/digits and not node/inet")
            if p.ipv4 not in self.pod_network4 or p.ipv6 not in self.pod_network6:
                out.append(f"pod {p.key} addresses are outside the pod networks")
        for a in self.internet4:
            if a not in self.internet_network4:
                out.append(f"internet address {a} is outside {self.internet_network4}")
        for a6 in self.internet6:
            if a6 not in self.internet_network6:
                out.append(f"internet address {a6} is outside {self.internet_network6}")
        if self.gateway4 not in self.pod_network4 or self.gateway6 not in self.pod_network6:
            out.append("the pod gateway must be in the pod networks")
        if self.node_link4.network != self.inet_link4.network:
            out.append("node_link4 and inet_link4 are not on one network")
        if self.node_link6.network != self.inet_link6.network:
            out.append("node_link6 and inet_link6 are not on one network")
        if not self.internet4 or not self.internet6:
            out.append("the internet needs at least one IPv4 and one IPv6 address")
        all_addrs = [str(v) for w, v in self.ip_values() if "network" not in w]
        dupes = sorted({a for a in all_addrs if all_addrs.count(a) > 1})
        if dupes:
            out.append(f"addresses used twice: {', '.join(dupes)}")
        keys = self.pod_keys()
        if len(set(keys)) != len(keys):
            out.append("pod keys must be unique")
        cali = [p.cali for p in self.pods]
        if len(set(cali)) != len(cali):
            out.append("two pods share a namespace/name (and so a cali interface)")
        for name in self.interface_names():
            if len(name) > netns.IFNAME_MAX:
                out.append(f"interface name {name!r} is longer than {netns.IFNAME_MAX}")
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "prefix": self.prefix,
            "namespaces": {
                "node": self.node_ns,
                "inet": self.inet_ns,
                **{p.key: self.pod_ns(p) for p in self.pods},
            },
            "pods": [p.to_json() for p in self.pods],
            "networks": {
                "pods": [str(self.pod_network4), str(self.pod_network6)],
                "internet": [str(self.internet_network4), str(self.internet_network6)],
            },
            "gateway": [str(self.gateway4), str(self.gateway6)],
            "node": {
                "uplink": UPLINK,
                "addresses": [str(self.node_link4), str(self.node_link6)],
                "mac": self.node_mac,
            },
            "inet": {
                "uplink": UPLINK,
                "addresses": [str(self.inet_link4), str(self.inet_link6)],
                "mac": self.inet_mac,
                "internet": [str(a) for a in self.internet],
                "tcp": list(self.tcp_ports),
                "udp": list(self.udp_ports),
            },
        }


def topology_from_json(doc: Mapping[str, Any]) -> Topology:
    """The inverse of ``Topology.to_json`` (as stored in the state file)."""
    try:
        v4a, v6a = ipaddress.IPv4Address, ipaddress.IPv6Address
        pods = tuple(
            LabPod(
                str(p["key"]),
                str(p["namespace"]),
                str(p["name"]),
                tuple(sorted((str(k), str(v)) for k, v in p["labels"].items())),
                v4a(p["ipv4"]),
                v6a(p["ipv6"]),
            )
            for p in doc["pods"]
        )
        inet, node = doc["inet"], doc["node"]
        internet = [ipaddress.ip_address(a) for a in inet["internet"]]
        return Topology(
            prefix=str(doc["prefix"]),
            pods=pods,
            pod_network4=ipaddress.IPv4Network(doc["networks"]["pods"][0]),
            pod_network6=ipaddress.IPv6Network(doc["networks"]["pods"][1]),
            gateway4=v4a(doc["gateway"][0]),
            gateway6=v6a(doc["gateway"][1]),
            node_link4=ipaddress.IPv4Interface(node["addresses"][0]),
            node_link6=ipaddress.IPv6Interface(node["addresses"][1]),
            inet_link4=ipaddress.IPv4Interface(inet["addresses"][0]),
            inet_link6=ipaddress.IPv6Interface(inet["addresses"][1]),
            internet_network4=ipaddress.IPv4Network(doc["networks"]["internet"][0]),
            internet_network6=ipaddress.IPv6Network(doc["networks"]["internet"][1]),
            internet4=tuple(a for a in internet if isinstance(a, v4a)),
            internet6=tuple(a for a in internet if isinstance(a, v6a)),
            tcp_ports=tuple(int(x) for x in inet["tcp"]),
            udp_ports=tuple(int(x) for x in inet["udp"]),
            node_mac=str(node["mac"]),
            inet_mac=str(inet["mac"]),
        )
    except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
        raise DataplaneError(
            f"the lab topology in the state file is damaged: {exc!r}",
            hint="`egressguard lab down` removes the lab; then build it again",
        ) from exc


def in_documentation_ranges(value: Any) -> bool:
    """True when an address, interface or network lies wholly inside a documentation range."""
    if isinstance(value, ipaddress.IPv4Interface | ipaddress.IPv6Interface):
        value = value.network
    if isinstance(value, ipaddress.IPv4Network | ipaddress.IPv6Network):
        return any(
            value.version == doc.version and value.subnet_of(doc)  # type: ignore[arg-type]
            for doc in DOCUMENTATION_NETWORKS
        )
    if isinstance(value, ipaddress.IPv4Address | ipaddress.IPv6Address):
        return any(value in doc for doc in DOCUMENTATION_NETWORKS)
    return False


def default_topology(
    prefix: str = DEFAULT_PREFIX,
    *,
    internet4: Sequence[str] | None = None,
    internet6: Sequence[str] | None = None,
) -> Topology:
    """The standard lab: pods ``pod1`` (default/web) and ``pod2`` (payments/api).

    ``internet4`` / ``internet6`` replace the default internet addresses (203.0.113.10-15,
    2001:db8:203:113::10-15), e.g. with the addresses the lab's rewritten manifests block.
    """
    v4 = ipaddress.IPv4Address
    v6 = ipaddress.IPv6Address
    inet4 = tuple(v4(a) for a in (internet4 or [f"203.0.113.{i}" for i in range(10, 16)]))
    inet6 = tuple(v6(a) for a in (internet6 or [f"2001:db8:203:113::{i}" for i in range(10, 16)]))
    return Topology(
        prefix=validate_prefix(prefix),
        pods=(
            LabPod(
                "pod1",
                "default",
                "web",
                (("app", "web"),),
                v4("198.51.100.11"),
                v6("2001:db8:198:51::11"),
            ),
            LabPod(
                "pod2",
                "payments",
                "api",
                (("app", "api"), ("team", "payments")),
                v4("198.51.100.12"),
                v6("2001:db8:198:51::12"),
            ),
        ),
        pod_network4=ipaddress.IPv4Network("198.51.100.0/24"),
        pod_network6=ipaddress.IPv6Network("2001:db8:198:51::/64"),
        gateway4=v4("198.51.100.1"),
        gateway6=v6("2001:db8:198:51::1"),
        node_link4=ipaddress.IPv4Interface("192.0.2.1/24"),
        node_link6=ipaddress.IPv6Interface("2001:db8:192:2::1/64"),
        inet_link4=ipaddress.IPv4Interface("192.0.2.2/24"),
        inet_link6=ipaddress.IPv6Interface("2001:db8:192:2::2/64"),
        internet_network4=ipaddress.IPv4Network("203.0.113.0/24"),
        internet_network6=ipaddress.IPv6Network("2001:db8:203:113::/64"),
        internet4=inet4,
        internet6=inet6,
    )


def default_probes(
    topology: Topology,
    *,
    pods: Sequence[str] | None = None,
    destinations: Sequence[str] | None = None,
    timeout: float = 2.0,
) -> list[Probe]:
    """Every probe kind (each TCP port, each UDP port, ICMP) from each pod to each destination
    (default: every internet address, IPv4 and IPv6)."""
    keys = list(pods) if pods is not None else topology.pod_keys()
    dsts = list(destinations) if destinations is not None else [str(a) for a in topology.internet]
    out: list[Probe] = []
    for key in keys:
        topology.pod(key)
        for dst in dsts:
            out.extend(Probe(key, "tcp", dst, port, timeout) for port in topology.tcp_ports)
            out.extend(Probe(key, "udp", dst, port, timeout) for port in topology.udp_ports)
            out.append(Probe(key, "icmp", dst, None, timeout))
    return out


# --------------------------------------------------------------------------- state


@dataclass(frozen=True, slots=True)
class SysctlChange:
    """A sysctl the lab changed and must restore: ``ns`` None means the host's own."""

    ns: str | None
    key: str
    previous: str

    def to_json(self) -> dict[str, Any]:
        return {"ns": self.ns, "key": self.key, "previous": self.previous}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SysctlChange:
        ns = data.get("ns")
        return cls(None if ns is None else str(ns), str(data["key"]), str(data["previous"]))


@dataclass(slots=True)
class LabState:
    """The journal of one lab: what exists because of it. Persisted as JSON."""

    prefix: str
    status: str = "building"  # building | up | failed
    namespaces: list[str] = field(default_factory=list)
    processes: list[ProcessRef] = field(default_factory=list)
    sysctls: list[SysctlChange] = field(default_factory=list)
    topology: dict[str, Any] | None = None
    created_at: float = field(default_factory=time.time)

    def to_json(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "prefix": self.prefix,
            "status": self.status,
            "namespaces": list(self.namespaces),
            "processes": [p.to_json() for p in self.processes],
            "sysctls": [s.to_json() for s in self.sysctls],
            "topology": self.topology,
            "created_at": self.created_at,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LabState:
        if data.get("version") != STATE_VERSION:
            raise DataplaneError(
                f"lab state file has version {data.get('version')!r}, expected {STATE_VERSION}",
                hint="remove it; `lab down` then cleans up by name prefix",
            )
        try:
            return cls(
                prefix=str(data["prefix"]),
                status=str(data.get("status", "building")),
                namespaces=[str(n) for n in data.get("namespaces", [])],
                processes=[ProcessRef.from_json(p) for p in data.get("processes", [])],
                sysctls=[SysctlChange.from_json(s) for s in data.get("sysctls", [])],
                topology=data.get("topology"),
                created_at=float(data.get("created_at", 0.0)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise DataplaneError(
                f"lab state file is damaged: {exc}",
                hint="remove it; `lab down` then cleans up by name prefix",
            ) from exc


def state_path(state_dir: Path, prefix: str) -> Path:
    return Path(state_dir) / f"lab-{validate_prefix(prefix)}.json"


def matching_namespaces(names: Sequence[str], prefix: str) -> list[str]:
    """The namespaces a lab with ``prefix`` would own: ``<prefix><letters/digits>``."""
    return sorted(n for n in names if n.startswith(prefix) and _ROLE.match(n[len(prefix) :]))


# --------------------------------------------------------------------------- the lab


@dataclass
class TeardownReport:
    prefix: str
    had_state: bool = False
    stopped_pids: list[int] = field(default_factory=list)
    removed_namespaces: list[str] = field(default_factory=list)
    restored_sysctls: list[SysctlChange] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def nothing_to_do(self) -> bool:
        return not (self.had_state or self.stopped_pids or self.removed_namespaces or self.errors)

    def to_json(self) -> dict[str, Any]:
        return {
            "prefix": self.prefix,
            "had_state": self.had_state,
            "stopped_pids": self.stopped_pids,
            "removed_namespaces": self.removed_namespaces,
            "restored_sysctls": [s.to_json() for s in self.restored_sysctls],
            "errors": self.errors,
        }


@dataclass
class LabStatus:
    prefix: str
    state_file: Path
    state: LabState | None
    namespaces: dict[str, bool]
    processes: list[tuple[ProcessRef, bool]]
    stray: list[str]

    @property
    def exists(self) -> bool:
        return self.state is not None or bool(self.stray)

    @property
    def healthy(self) -> bool:
        return (
            self.state is not None
            and self.state.status == "up"
            and all(self.namespaces.values())
            and all(alive for _, alive in self.processes)
            and not self.stray
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "prefix": self.prefix,
            "state_file": str(self.state_file),
            "status": self.state.status if self.state else None,
            "healthy": self.healthy,
            "namespaces": self.namespaces,
            "processes": [dict(ref.to_json(), alive=alive) for ref, alive in self.processes],
            "stray_namespaces": self.stray,
            "sysctls": [s.to_json() for s in self.state.sysctls] if self.state else [],
            "topology": self.state.topology if self.state else None,
        }


class Lab:
    """A lab on this machine: its topology, its journal, and the runners that reach it.

    Made by ``lab_up`` (or ``open_lab``). The next steps use ``runner`` to act inside a
    namespace (``lab.runner.run(lab.topology.node_ns, ["nft", "-f", "-"], input=...)``),
    ``set_sysctl`` for host-wide sysctls that teardown must restore, and ``probe``.
    """

    def __init__(
        self,
        topology: Topology,
        state: LabState,
        *,
        runner: NetnsRunner,
        state_dir: Path,
        probe_runner: ProbeRunner | None = None,
    ) -> None:
        self.topology = topology
        self.state = state
        self.runner = runner
        self.state_dir = Path(state_dir)
        self.ip = IpRoute2(runner)
        self.probe_runner: ProbeRunner = probe_runner or probe.NetnsProbeRunner(runner)
        self.state_file = StateFile(state_path(self.state_dir, topology.prefix))

    def save(self) -> None:
        self.state_file.save(self.state.to_json())

    def set_sysctl(self, ns: str | None, key: str, value: str) -> str:
        """Set a sysctl and journal its previous value first, so teardown restores it even
        after a crash. Returns the previous value."""
        previous = self.ip.read_sysctl(ns, key)
        if not any(c.ns == ns and c.key == key for c in self.state.sysctls):
            self.state.sysctls.append(SysctlChange(ns, key, previous))
            self.save()
        self.ip.write_sysctl(ns, key, value)
        return previous

    def probe(self, probes: Sequence[Probe]) -> list[ProbeResult]:
        """Run ``probes`` (one subprocess per pod, pods in parallel); results in input order."""
        by_pod: dict[str, list[int]] = {}
        for i, p in enumerate(probes):
            self.topology.pod(p.pod)
            by_pod.setdefault(p.pod, []).append(i)
        results: list[ProbeResult | None] = [None] * len(probes)

        def one(key: str) -> None:
            idx = by_pod[key]
            got = self.probe_runner.run_probes(self.topology.pod_ns(key), [probes[i] for i in idx])
            for i, r in zip(idx, got, strict=True):
                results[i] = r

        with ThreadPoolExecutor(max_workers=max(1, len(by_pod))) as pool:
            for fut in [pool.submit(one, key) for key in by_pod]:
                fut.result()
        return [r for r in results if r is not None]

    def status(self) -> LabStatus:
        return lab_status(self.topology.prefix, runner=self.runner, state_dir=self.state_dir)

    def down(self) -> TeardownReport:
        return lab_down(self.topology.prefix, runner=self.runner, state_dir=self.state_dir)

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc: object) -> None:
        with shielded():
            self.down()


def attach_lab(prefix: str, *, runner: NetnsRunner, state_dir: Path = DEFAULT_STATE_DIR) -> Lab:
    """The running lab ``prefix`` as recorded in its state file (for a later process)."""
    path = state_path(Path(state_dir), prefix)
    doc = StateFile(path).load()
    if doc is None:
        raise UsageError(
            f"no lab with prefix {prefix!r} (no state file {path})",
            hint=f"egressguard lab up --prefix {prefix}",
        )
    state = LabState.from_json(doc)
    if state.status != "up" or state.topology is None:
        raise UsageError(
            f"the lab {prefix!r} is not up (status {state.status!r})",
            hint=f"egressguard lab down --prefix {prefix}, then lab up",
        )
    return Lab(topology_from_json(state.topology), state, runner=runner, state_dir=state_dir)


def lab_up(
    topology: Topology,
    *,
    runner: NetnsRunner,
    state_dir: Path = DEFAULT_STATE_DIR,
    progress: Callable[[str], None] | None = None,
) -> Lab:
    """Build ``topology`` and start its servers; returns the running ``Lab``.

    Refuses when a lab with the same prefix exists (state file or namespaces). On any failure,
    and on SIGINT/SIGTERM, it removes what it created and re-raises.
    """
    ip = IpRoute2(runner)
    path = state_path(Path(state_dir), topology.prefix)
    existing = matching_namespaces(ip.list_namespaces(), topology.prefix)
    if StateFile(path).load() is not None or existing:
        raise UsageError(
            f"a lab with prefix {topology.prefix!r} exists already"
            + (f" (namespaces: {', '.join(existing)})" if existing else f" (state file {path})"),
            hint=f"egressguard lab down --prefix {topology.prefix}",
        )
    state = LabState(prefix=topology.prefix, topology=topology.to_json())
    lab = Lab(topology, state, runner=runner, state_dir=Path(state_dir))
    lab.save()
    try:
        with interruptible():
            _build(lab, progress or (lambda _msg: None))
            state.status = "up"
            lab.save()
    except BaseException:
        with shielded():
            state.status = "failed"
            with contextlib.suppress(EgressguardError):
                lab.save()
            with contextlib.suppress(EgressguardError):
                lab.down()
        raise
    return lab


@contextlib.contextmanager
def open_lab(
    topology: Topology,
    *,
    runner: NetnsRunner,
    state_dir: Path = DEFAULT_STATE_DIR,
    progress: Callable[[str], None] | None = None,
) -> Iterator[Lab]:
    """``with open_lab(t, runner=r) as lab:`` builds the lab and always tears it down."""
    lab = lab_up(topology, runner=runner, state_dir=state_dir, progress=progress)
    try:
        with interruptible():
            yield lab
    finally:
        with shielded():
            lab.down()


def _build(lab: Lab, progress: Callable[[str], None]) -> None:
    t = lab.topology
    ip = lab.ip
    node, inet = t.node_ns, t.inet_ns

    progress("namespaces")
    for ns in t.namespaces():
        lab.state.namespaces.append(ns)  # journal first: a crash right after still cleans up
        lab.save()
        ip.add_namespace(ns)
        ip.set_link(ns, "lo", up=True)

    progress("links")
    ip.add_veth(
        name=UPLINK, ns=node, mac=t.node_mac, peer=UPLINK, peer_ns=inet, peer_mac=t.inet_mac
    )
    ends: list[tuple[str, str]] = [(node, UPLINK), (inet, UPLINK)]
    for p in t.pods:
        ip.add_veth(
            name=p.cali, ns=node, mac=CALI_MAC, peer=POD_IFACE, peer_ns=t.pod_ns(p), peer_mac=p.mac
        )
        ends += [(node, p.cali), (t.pod_ns(p), POD_IFACE)]
    for ns, dev in ends:
        ip.set_link(ns, dev, addrgen_none=True)

    progress("addresses")
    ip.add_address(node, UPLINK, t.node_link4)
    ip.add_address(node, UPLINK, t.node_link6)
    ip.add_address(inet, UPLINK, t.inet_link4)
    ip.add_address(inet, UPLINK, t.inet_link6)
    for a4 in t.internet4:
        ip.add_address(inet, "lo", ipaddress.IPv4Interface(f"{a4}/32"))
    for a6 in t.internet6:
        ip.add_address(inet, "lo", ipaddress.IPv6Interface(f"{a6}/128"))
    for p in t.pods:
        pns = t.pod_ns(p)
        ip.add_address(pns, POD_IFACE, ipaddress.IPv4Interface(f"{p.ipv4}/32"))
        ip.add_address(pns, POD_IFACE, ipaddress.IPv6Interface(f"{p.ipv6}/128"))
        ip.add_address(node, p.cali, ipaddress.IPv4Interface(f"{t.gateway4}/32"))
        ip.add_address(node, p.cali, ipaddress.IPv6Interface(f"{t.gateway6}/128"))
    for ns, dev in ends:
        ip.set_link(ns, dev, up=True)

    progress("routes")
    gw4 = ipaddress.IPv4Network(f"{t.gateway4}/32")
    gw6 = ipaddress.IPv6Network(f"{t.gateway6}/128")
    for p in t.pods:
        pns = t.pod_ns(p)
        ip.add_route(pns, gw4, dev=POD_IFACE)
        ip.add_route(pns, "default", via=t.gateway4, dev=POD_IFACE, version=4)
        ip.add_route(pns, gw6, dev=POD_IFACE)
        ip.add_route(pns, "default", via=t.gateway6, dev=POD_IFACE, version=6)
        ip.add_route(node, ipaddress.IPv4Network(f"{p.ipv4}/32"), dev=p.cali)
        ip.add_route(node, ipaddress.IPv6Network(f"{p.ipv6}/128"), dev=p.cali)
        # No link-local addresses: IPv6 next hops are static (see the module docstring).
        ip.add_neighbor(pns, POD_IFACE, t.gateway6, CALI_MAC)
        ip.add_neighbor(node, p.cali, p.ipv6, p.mac)
    ip.add_route(node, t.internet_network4, via=t.inet_link4.ip, dev=UPLINK)
    ip.add_route(node, t.internet_network6, via=t.inet_link6.ip, dev=UPLINK)
    ip.add_route(inet, t.pod_network4, via=t.node_link4.ip, dev=UPLINK)
    ip.add_route(inet, t.pod_network6, via=t.node_link6.ip, dev=UPLINK)
    ip.add_neighbor(node, UPLINK, t.inet_link6.ip, t.inet_mac)
    ip.add_neighbor(inet, UPLINK, t.node_link6.ip, t.node_mac)

    progress("forwarding")
    # Only the node routes. Set it everywhere: a new namespace copies the host's IPv4
    # conf/all values (net.core.devconf_inherit_init_net = 0), so a host that forwards would
    # otherwise make pods and inet forward too. Namespaced sysctls vanish with their
    # namespace: nothing to restore.
    for ns in t.namespaces():
        on = "1" if ns == node else "0"
        ip.write_sysctl(ns, "net.ipv4.ip_forward", on)
        ip.write_sysctl(ns, "net.ipv6.conf.all.forwarding", on)

    progress("servers")
    pid = probe.start_servers(lab.runner, inet, t.server_spec())
    lab.state.processes.append(netns.process_ref(pid, ns=inet, role="servers"))
    lab.save()


def lab_down(
    prefix: str,
    *,
    runner: NetnsRunner,
    state_dir: Path = DEFAULT_STATE_DIR,
    process_timeout: float = 3.0,
) -> TeardownReport:
    """Remove the lab ``prefix``: its processes, namespaces (with their links), and restore
    the sysctls it changed. Idempotent; a second call finds nothing and does nothing.

    Errors are collected (teardown goes on); the state file is removed only when everything
    went, so a later ``lab down`` can retry.
    """
    ip = IpRoute2(runner)
    sf = StateFile(state_path(Path(state_dir), prefix))
    report = TeardownReport(prefix)
    state: LabState | None = None
    try:
        doc = sf.load()
        state = LabState.from_json(doc) if doc is not None else None
    except DataplaneError as exc:
        report.errors.append(f"state file ignored: {exc.message}")
        report.had_state = True
    if state is not None:
        report.had_state = True
        for ref in state.processes:
            if netns.process_alive(ref):
                if netns.stop_process(ref, timeout=process_timeout):
                    report.stopped_pids.append(ref.pid)
                else:
                    report.errors.append(f"process {ref.pid} ({ref.role}) did not stop")
    existing = ip.list_namespaces()
    wanted = set(matching_namespaces(existing, prefix))
    if state is not None:
        wanted |= set(state.namespaces)
    order = list(reversed(state.namespaces)) if state is not None else []
    order += sorted(wanted - set(order))
    for ns in order:
        if ns not in existing:
            continue
        try:
            report.stopped_pids += netns.stop_namespace_processes(ip, ns, timeout=process_timeout)
            ip.delete_namespace(ns)
            report.removed_namespaces.append(ns)
        except EgressguardError as exc:
            report.errors.append(f"{ns}: {exc.message}")
    if state is not None:
        remaining = set(ip.list_namespaces())
        for change in reversed(state.sysctls):
            if change.ns is not None and change.ns not in remaining:
                continue  # it went with its namespace
            try:
                ip.write_sysctl(change.ns, change.key, change.previous)
                report.restored_sysctls.append(change)
            except EgressguardError as exc:
                report.errors.append(f"sysctl {change.key}: {exc.message}")
    if not report.errors:
        sf.remove()
    return report


def lab_status(
    prefix: str, *, runner: NetnsRunner, state_dir: Path = DEFAULT_STATE_DIR
) -> LabStatus:
    """What exists of the lab ``prefix``: per recorded namespace and process, is it there."""
    ip = IpRoute2(runner)
    path = state_path(Path(state_dir), prefix)
    doc = StateFile(path).load()
    state = LabState.from_json(doc) if doc is not None else None
    existing = ip.list_namespaces()
    recorded = state.namespaces if state else []
    return LabStatus(
        prefix=prefix,
        state_file=path,
        state=state,
        namespaces={ns: ns in existing for ns in recorded},
        processes=[(ref, netns.process_alive(ref)) for ref in (state.processes if state else [])],
        stray=[ns for ns in matching_namespaces(existing, prefix) if ns not in recorded],
    )


# --------------------------------------------------------------------------- signals


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@contextlib.contextmanager
def interruptible() -> Iterator[None]:
    """Within the block SIGTERM raises KeyboardInterrupt (like SIGINT), so a killed build
    unwinds through the same cleanup. Only the main thread can install handlers."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def shielded() -> Iterator[None]:
    """Cleanup is bounded and must not be cut short by a second Ctrl-C or SIGTERM."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
