"""The endpoints the host dataplane enforces policy for: the host itself and local workloads.

Calico learns endpoints from its datastore; a plain Linux host has none, so egressguard reads
them from a small YAML file (``--endpoints FILE``)::

    apiVersion: egressguard.io/v1alpha1
    kind: Endpoints
    host:                            # the host's own traffic (nft output hook), like a
      name: node-1                   #   HostEndpoint; omit the key for a host with no labels,
      labels: {role: node}           #   write `host: null` to leave host traffic alone
      addresses: [192.0.2.1]         # optional: makes the host a member of selector sets
      defaultAction: Allow           # when no policy decides: Allow (default) or Deny
      exemptInterfaces: [lo]         # egress through these is never host-policy traffic
    namespaces:                      # optional: namespace labels, inherited as pcns.*
      - name: shop
        labels: {team: web}
    workloads:                       # traffic routed through the host from local
      - name: web                    #   interfaces (nft forward hook), like pods
        namespace: shop
        labels: {app: web}
        interface: cali1a2b3c4d5e6   # an interface name, or a prefix with `*` (`cali*`)
        addresses: [198.51.100.11, 2001:db8::11]  # its source addresses (others are dropped)
        ports:                       # named ports rules may refer to
          - {name: http, port: 8080, protocol: TCP}
        serviceAccount: default

Without a file the only endpoint is the host with no labels and default allow, so a
GlobalNetworkPolicy with the default selector (``all()``) applies to the host's traffic.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from egressguard import yamlio
from egressguard.calico.model import ContainerPort, FrozenMap, Metadata, Namespace, Pod
from egressguard.cidr.addresses import CidrError, parse_address
from egressguard.errors import InputError, ManifestError
from egressguard.problems import Path, Problem, format_path

__all__ = ["API_VERSION", "DEFAULT", "KIND", "Endpoints", "Host", "Workload", "load_text"]

API_VERSION = "egressguard.io/v1alpha1"
KIND = "Endpoints"

_IFACE = re.compile(r"^[A-Za-z0-9_.-]{1,15}\*?$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_PORT_NAME = re.compile(r"^[a-zA-Z0-9_.-]{1,128}$")
_PORT_PROTOCOLS = ("TCP", "UDP", "SCTP")


@dataclass(frozen=True, slots=True)
class Host:
    """The host as an endpoint: its own labels only (like a HostEndpoint)."""

    name: str = "host"
    labels: FrozenMap = field(default_factory=FrozenMap)
    addresses: tuple[str, ...] = ()
    default_allow: bool = True
    exempt_interfaces: tuple[str, ...] = ("lo",)


@dataclass(frozen=True, slots=True)
class Workload:
    """A local workload behind an interface, with the labels of a pod in ``namespace``."""

    name: str
    interface: str
    namespace: str = "default"
    labels: FrozenMap = field(default_factory=FrozenMap)
    addresses: tuple[str, ...] = ()
    ports: tuple[ContainerPort, ...] = ()
    service_account: str = "default"

    def as_pod(self) -> Pod:
        """The pod Calico would see: same labels, addresses and named ports."""
        return Pod(
            metadata=Metadata(self.name, self.namespace, self.labels),
            api_version="v1",
            ips=self.addresses,
            ports=self.ports,
            service_account=self.service_account,
        )

    def address_values(self, family: int) -> list[int]:
        out = []
        for text in self.addresses:
            fam, value = parse_address(text)
            if fam == family:
                out.append(value)
        return out


@dataclass(frozen=True, slots=True)
class Endpoints:
    """Every endpoint of this host. ``host`` ``None``: the host's own traffic is not enforced."""

    host: Host | None = field(default_factory=Host)
    workloads: tuple[Workload, ...] = ()
    namespaces: tuple[Namespace, ...] = ()

    def namespace(self, name: str) -> Namespace | None:
        for ns in self.namespaces:
            if ns.name == name:
                return ns
        return None


#: No file: the host with no labels, default allow; no workloads.
DEFAULT = Endpoints()


class _Reader:
    def __init__(self, doc: yamlio.Document) -> None:
        self.doc = doc
        self.problems: list[Problem] = []

    def bad(self, path: Path, message: str) -> None:
        self.problems.append(self.doc.locate(Problem(format_path(path), message), path))

    def mapping(self, value: Any, path: Path) -> Mapping[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            self.bad(path, "must be a mapping")
            return {}
        return value

    def keys(self, value: Mapping[str, Any], path: Path, allowed: tuple[str, ...]) -> None:
        for key in value:
            if key not in allowed:
                self.bad((*path, key), f"unknown field (expected one of {', '.join(allowed)})")

    def string(self, value: Any, path: Path, pattern: re.Pattern[str] | None = None) -> str | None:
        if value is None:
            return None
        if not isinstance(value, str) or (pattern is not None and not pattern.match(value)):
            what = f"must match {pattern.pattern}" if pattern is not None else "must be a string"
            self.bad(path, f"{value!r} {what}")
            return None
        return value

    def labels(self, value: Any, path: Path) -> FrozenMap:
        raw = self.mapping(value, path)
        out: dict[str, str] = {}
        for key, item in raw.items():
            if not isinstance(item, str):
                self.bad((*path, key), f"label value {item!r} must be a string")
                continue
            out[str(key)] = item
        return FrozenMap(out)

    def addresses(self, value: Any, path: Path) -> tuple[str, ...]:
        if value is None:
            return ()
        if not isinstance(value, list):
            self.bad(path, "must be a list of addresses")
            return ()
        out = []
        for i, item in enumerate(value):
            text = str(item).strip()
            try:
                parse_address(text.removesuffix("/32").removesuffix("/128"))
            except CidrError as exc:
                self.bad((*path, i), f"{item!r} is not an address: {exc.message}")
                continue
            out.append(text.removesuffix("/32").removesuffix("/128"))
        return tuple(out)

    def ports(self, value: Any, path: Path) -> tuple[ContainerPort, ...]:
        if value is None:
            return ()
        if not isinstance(value, list):
            self.bad(path, "must be a list of {name, port, protocol}")
            return ()
        out = []
        for i, item in enumerate(value):
            at = (*path, i)
            raw = self.mapping(item, at)
            self.keys(raw, at, ("name", "port", "protocol"))
            name = self.string(raw.get("name"), (*at, "name"), _PORT_NAME)
            port = raw.get("port")
            protocol = raw.get("protocol", "TCP")
            if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
                self.bad((*at, "port"), f"{port!r} is not a port number 1-65535")
                continue
            if protocol not in _PORT_PROTOCOLS:
                self.bad((*at, "protocol"), f"{protocol!r} is not one of {_PORT_PROTOCOLS}")
                continue
            out.append(ContainerPort(port, protocol, name))
        return tuple(out)

    def host(self, value: Any, path: Path) -> Host | None:
        if value is None:
            return None
        raw = self.mapping(value, path)
        self.keys(raw, path, ("name", "labels", "addresses", "defaultAction", "exemptInterfaces"))
        action = raw.get("defaultAction", "Allow")
        if action not in ("Allow", "Deny"):
            self.bad((*path, "defaultAction"), f"{action!r} must be Allow or Deny")
        exempt: list[str] = []
        for i, item in enumerate(raw.get("exemptInterfaces", ["lo"]) or []):
            found = self.string(item, (*path, "exemptInterfaces", i), _IFACE)
            if found:
                exempt.append(found)
        return Host(
            name=self.string(raw.get("name"), (*path, "name"), _DNS_SUBDOMAIN) or "host",
            labels=self.labels(raw.get("labels"), (*path, "labels")),
            addresses=self.addresses(raw.get("addresses"), (*path, "addresses")),
            default_allow=action != "Deny",
            exempt_interfaces=tuple(exempt),
        )

    def workload(self, value: Any, path: Path) -> Workload | None:
        raw = self.mapping(value, path)
        self.keys(
            raw,
            path,
            ("name", "namespace", "labels", "interface", "addresses", "ports", "serviceAccount"),
        )
        name = self.string(raw.get("name"), (*path, "name"), _DNS_SUBDOMAIN)
        iface = self.string(raw.get("interface"), (*path, "interface"), _IFACE)
        if "name" not in raw:
            self.bad(path, "a workload needs a name")
        if "interface" not in raw:
            self.bad(path, "a workload needs an interface (a name, or a prefix and *)")
        namespace = self.string(raw.get("namespace"), (*path, "namespace"), _DNS_LABEL)
        account = self.string(raw.get("serviceAccount"), (*path, "serviceAccount"), _DNS_SUBDOMAIN)
        labels = self.labels(raw.get("labels"), (*path, "labels"))
        addresses = self.addresses(raw.get("addresses"), (*path, "addresses"))
        ports = self.ports(raw.get("ports"), (*path, "ports"))
        if name is None or iface is None:
            return None
        return Workload(
            name=name,
            interface=iface,
            namespace=namespace or "default",
            labels=labels,
            addresses=addresses,
            ports=ports,
            service_account=account or "default",
        )

    def read(self) -> Endpoints:
        data = self.mapping(self.doc.data, ())
        self.keys(data, (), ("apiVersion", "kind", "host", "namespaces", "workloads"))
        if data.get("apiVersion") != API_VERSION:
            self.bad(("apiVersion",), f"must be {API_VERSION}")
        if data.get("kind") != KIND:
            self.bad(("kind",), f"must be {KIND}")
        host = self.host(data["host"], ("host",)) if "host" in data else Host()
        namespaces = []
        for i, item in enumerate(data.get("namespaces") or []):
            raw = self.mapping(item, ("namespaces", i))
            self.keys(raw, ("namespaces", i), ("name", "labels"))
            ns_name = self.string(raw.get("name"), ("namespaces", i, "name"), _DNS_LABEL)
            if ns_name is None:
                if "name" not in raw:
                    self.bad(("namespaces", i), "a namespace needs a name")
                continue
            labels = self.labels(raw.get("labels"), ("namespaces", i, "labels"))
            namespaces.append(
                Namespace(metadata=Metadata(ns_name, labels=labels), api_version="v1")
            )
        workloads = []
        seen: set[tuple[str, str]] = set()
        for i, item in enumerate(data.get("workloads") or []):
            found = self.workload(item, ("workloads", i))
            if found is None:
                continue
            key = (found.namespace, found.name)
            if key in seen:
                self.bad(
                    ("workloads", i, "name"),
                    f"workload {found.namespace}/{found.name} is defined twice",
                )
                continue
            seen.add(key)
            workloads.append(found)
        return Endpoints(host, tuple(workloads), tuple(namespaces))


def load_text(text: str, source: str = "<endpoints>") -> Endpoints:
    """Parse an endpoints file; every problem is reported at once in one ``InputError``."""
    try:
        docs = yamlio.load_text(text, source)
    except ManifestError as exc:
        raise InputError(exc.message, hint="check the YAML syntax of the endpoints file") from exc
    if len(docs) != 1:
        raise InputError(f"{source}: an endpoints file holds exactly one document, not {len(docs)}")
    reader = _Reader(docs[0])
    result = reader.read()
    if reader.problems:
        listing = "\n  ".join(str(p) for p in reader.problems)
        raise InputError(
            f"{source}: {len(reader.problems)} problem(s) in the endpoints file:\n  {listing}",
            hint="see `egressguard nft render --help` for the endpoints file format",
        )
    return result
