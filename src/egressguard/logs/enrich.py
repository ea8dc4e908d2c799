"""Enrichment of blocked-packet events: where the packet was going, who sent it, how often.

Pure (no I/O): the CLI reads files and the Kubernetes adapter watches pods; this module gets
their contents as values.

``NetworkIndex`` — destination address → the network set(s), feed(s) and country holding it.
    Built from tagged CIDR lists through the CIDR engine's ``ProvenanceIndex`` (one bisect per
    lookup), with a bounded cache of answers in front (a node blocks few distinct
    destinations). Tags come from network sets (``network_set_tags``: a GlobalNetworkSet or
    NetworkSet by name, or, for the shards of an egressguard build, by the blocklist name in
    their ``egressguard.io/blocklist`` label) and from a build's provenance
    (``provenance_tags``: the ``provenance`` of each source in ``egressguard.lock``, per
    country for geo sources). ``set`` is the set's name (several, comma-joined in name order);
    ``feeds`` the sources whose data holds the address (geo sources included); ``country``
    the country of the most specific matching CIDR.

``PodIndex`` — (source address, time) → pod. Each pod address is a span
    ``[start, end)`` of wall-clock time: from the pod's creation to the moment it was seen
    deleted or terminated (open while it runs). A reused address is thus attributed by time.
    Where spans overlap (a new pod is created before the old one is gone), the span that
    closes first wins: an address belongs to one pod at a time, and the old pod holds it
    until it is gone. Times may miss a span by ``slack`` seconds (clocks of the node and the
    API server differ). Host-network pods are left out (they share the node's address).
    Closed spans older than ``retention`` are pruned; open spans are bounded by the pods on
    the node.

``Deduper`` — SYN retries (and any repeat of the same packet) in a time window → one event.
    The key is (prefix, src, dst, protocol, source port, destination port, ICMP id): a TCP
    client retries its SYN from the same source port, a new connection takes a new port. The
    window opens with the first packet and lasts ``window`` seconds (a fixed window, so an
    event is never held longer than that); repeats inside it raise ``repeat_count`` of the
    first event, which is emitted when a later packet (or ``expire``) shows the window has
    passed, or on ``flush``. At most ``capacity`` windows are open; beyond that the oldest is
    emitted early.

``Enricher`` — applies a ``NetworkIndex`` and a ``PodIndex`` to events.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, tzinfo
from typing import Any, NamedTuple

from egressguard.calico.model import GlobalNetworkSet, NetworkSet
from egressguard.cidr.addresses import CidrError
from egressguard.cidr.lookup import ProvenanceIndex
from egressguard.logs.events import Event, event_epoch, parse_time

__all__ = [
    "BLOCKLIST_LABEL",
    "Deduper",
    "Destination",
    "Enricher",
    "NetworkIndex",
    "PodIndex",
    "PodSpan",
    "Tag",
    "network_set_tags",
    "parse_time",
    "pod_addresses",
    "provenance_tags",
]

#: The label an egressguard build puts on every shard (``render.ownership.BLOCKLIST_LABEL``;
#: the layers keep ``logs`` from importing ``render``, a test holds the two together).
BLOCKLIST_LABEL = "egressguard.io/blocklist"


# --------------------------------------------------------------------------------------------
# destinations


class Tag(NamedTuple):
    """Where addresses came from: ``kind`` is ``set``, ``feed`` or ``country``; ``name`` the
    set name, source name or ISO code; ``source`` the geo source of a country."""

    kind: str
    name: str
    source: str | None = None


class Destination(NamedTuple):
    """What holds an address: the enrichment fields ``set``, ``feeds``, ``country``."""

    set: str | None
    feeds: tuple[str, ...]
    country: str | None


_NOWHERE = Destination(None, (), None)


def network_set_tags(
    sets: Iterable[GlobalNetworkSet | NetworkSet], *, blocklist_label: str = BLOCKLIST_LABEL
) -> list[tuple[Tag, list[str]]]:
    """One ``set`` tag per network set with its ``nets``; the shards of a build (labelled
    ``blocklist_label``) are one set named after their blocklist, namespaced sets are
    ``namespace/name``."""
    nets: dict[str, list[str]] = {}
    for obj in sets:
        meta = obj.metadata
        name = meta.labels.get(blocklist_label) or (
            f"{meta.namespace}/{meta.name}" if isinstance(obj, NetworkSet) else meta.name
        )
        nets.setdefault(name, []).extend(obj.nets)
    return [(Tag("set", name), entries) for name, entries in sorted(nets.items())]


def _split(text: Any) -> list[str]:
    return text.split() if isinstance(text, str) else []


def provenance_tags(lock: Mapping[str, Any]) -> list[tuple[Tag, list[str]]]:
    """``feed`` and ``country`` tags from a build lock (``egressguard.lock``): each source's
    ``provenance`` lists what it put into the set, per country for geo sources. A lock
    written before provenance was recorded gives no tags."""
    out: list[tuple[Tag, list[str]]] = []
    for source in lock.get("sources") or ():
        if not isinstance(source, Mapping) or not isinstance(source.get("name"), str):
            continue
        name = source["name"]
        prov = source.get("provenance")
        if not isinstance(prov, Mapping):
            continue
        cidrs = prov.get("cidrs")
        if isinstance(cidrs, Mapping):
            out.append((Tag("feed", name), _split(cidrs.get("ipv4")) + _split(cidrs.get("ipv6"))))
        countries = prov.get("countries")
        if isinstance(countries, Mapping):
            for code, fams in sorted(countries.items()):
                if isinstance(fams, Mapping):
                    entries = _split(fams.get("ipv4")) + _split(fams.get("ipv6"))
                    out.append((Tag("country", str(code), name), entries))
    return out


class NetworkIndex:
    """Destination address → ``Destination``. Tags given twice are merged."""

    def __init__(
        self, tagged: Iterable[tuple[Tag, Iterable[str]]], *, cache_size: int = 65536
    ) -> None:
        merged: dict[Tag, list[str]] = {}
        for tag, entries in tagged:
            merged.setdefault(tag, []).extend(entries)
        items: list[tuple[Hashable, list[str]]] = [(t, e) for t, e in merged.items() if e]
        self.tags: tuple[Tag, ...] = tuple(t for t, _ in items)  # type: ignore[misc]
        self._index = ProvenanceIndex(items)
        self._cache: dict[str, Destination] = {}
        self._cache_size = cache_size
        self._composed: dict[int, Destination] = {}
        self._keep: list[tuple[Any, ...]] = []

    def __bool__(self) -> bool:
        return bool(self.tags)

    def lookup(self, address: str) -> Destination:
        """What holds ``address`` (text); nothing for text that is not an address."""
        hit = self._cache.get(address)
        if hit is not None:
            return hit
        try:
            matches = self._index.lookup(address)
        except CidrError:
            matches = ()
        # The index answers with one tuple per segment of the address space, the same object
        # every time: the Destination of each is composed once.
        found = self._composed.get(id(matches))
        if found is None:
            found = self._compose(matches)
            self._composed[id(matches)] = found
            self._keep.append(matches)  # keeps the id valid
        if len(self._cache) >= self._cache_size:
            self._cache.clear()
        self._cache[address] = found
        return found

    @staticmethod
    def _compose(matches: tuple[Any, ...]) -> Destination:
        if not matches:
            return _NOWHERE
        sets: list[str] = []
        feeds: set[str] = set()
        country: str | None = None
        best = -1
        for match in matches:
            tag: Tag = match.tag
            if tag.kind == "set":
                sets.append(tag.name)
            elif tag.kind == "feed":
                feeds.add(tag.name)
            else:
                feeds.add(tag.source or tag.name)
                if match.cidr.prefixlen > best:
                    best, country = match.cidr.prefixlen, tag.name
        return Destination(",".join(sorted(set(sets))) or None, tuple(sorted(feeds)), country)


# --------------------------------------------------------------------------------------------
# pods


class PodSpan(NamedTuple):
    """``namespace/name`` had the address from ``start`` to ``end`` (``None``: unknown / still)."""

    namespace: str
    name: str
    start: float | None
    end: float | None
    key: str


def _get(obj: Any, *path: str) -> Any:
    for part in path:
        if not isinstance(obj, Mapping):
            return None
        obj = obj.get(part)
    return obj


def pod_addresses(pod: Mapping[str, Any]) -> tuple[str, ...]:
    """The pod's own addresses (``status.podIPs``, else ``status.podIP``); none for a
    host-network pod."""
    if _get(pod, "spec", "hostNetwork") is True:
        return ()
    ips = [_get(item, "ip") for item in _get(pod, "status", "podIPs") or () if item]
    if not ips:
        ips = [_get(pod, "status", "podIP")]
    return tuple(ip.split("/")[0] for ip in ips if isinstance(ip, str) and ip)


def _identity(pod: Mapping[str, Any]) -> tuple[str, str, str] | None:
    """``(namespace, name, key)`` of a Pod manifest, the key being its uid (else
    ``namespace/name``); ``None`` without a name."""
    meta = pod.get("metadata")
    if not isinstance(meta, Mapping) or not isinstance(meta.get("name"), str):
        return None
    namespace = str(meta.get("namespace") or "default")
    name = meta["name"]
    return namespace, name, str(meta.get("uid") or f"{namespace}/{name}")


def _finished(pod: Mapping[str, Any]) -> float | None:
    """When a pod that has terminated (phase Succeeded/Failed) stopped, as well as known."""
    if _get(pod, "status", "phase") not in ("Succeeded", "Failed"):
        return None
    ends = [
        parse_time(_get(cs, "state", "terminated", "finishedAt"))
        for cs in _get(pod, "status", "containerStatuses") or ()
    ]
    known = [t for t in ends if t is not None]
    return max(known) if known else None


class PodIndex:
    """Source address and time → pod; fed with Pod manifests (files, or a watch's events)."""

    def __init__(self, *, slack: float = 2.0, retention: float = 3600.0) -> None:
        self.slack = slack
        self.retention = retention
        self._spans: dict[str, list[PodSpan]] = {}
        self._open: dict[str, dict[str, PodSpan]] = {}  # pod key -> ip -> open span

    def __len__(self) -> int:
        return sum(len(spans) for spans in self._spans.values())

    def add(
        self,
        ip: str,
        namespace: str,
        name: str,
        start: float | None = None,
        end: float | None = None,
        *,
        key: str | None = None,
    ) -> None:
        """Record that ``namespace/name`` had ``ip`` from ``start`` to ``end``."""
        span = PodSpan(namespace, name, start, end, key or f"{namespace}/{name}")
        spans = self._spans.setdefault(ip, [])
        spans.append(span)
        spans.sort(key=lambda s: -1e300 if s.start is None else s.start)
        if end is None:
            self._open.setdefault(span.key, {})[ip] = span

    def _close(self, key: str, ip: str, end: float) -> None:
        span = self._open.get(key, {}).pop(ip, None)
        if span is None:
            return
        if not self._open.get(key):
            self._open.pop(key, None)
        spans = self._spans.get(ip, [])
        for i, s in enumerate(spans):
            if s is span:
                spans[i] = span._replace(end=max(end, span.start or end))
                break

    def observe(self, pod: Mapping[str, Any], *, now: float, deleted: bool = False) -> None:
        """A Pod as listed or watched: opens spans for new addresses, closes those the pod no
        longer has, and all of them when it was deleted (at ``now``, when it was seen gone) or
        has terminated (when its containers finished, else ``now``)."""
        identity = _identity(pod)
        if identity is None:
            return
        namespace, name, key = identity
        finished = _finished(pod)
        ips = set() if deleted or finished is not None else set(pod_addresses(pod))
        end = now if deleted or finished is None else finished
        for ip in list(self._open.get(key, {})):
            if ip not in ips:
                self._close(key, ip, end)
        start = parse_time(_get(pod, "metadata", "creationTimestamp")) or parse_time(
            _get(pod, "status", "startTime")
        )
        for ip in sorted(ips - set(self._open.get(key, {}))):
            self.add(ip, namespace, name, start, None, key=key)
        if finished is not None and not deleted and not self._open.get(key):
            # a terminated pod seen for the first time: its span is closed already
            for ip in pod_addresses(pod):
                if not any(s.key == key for s in self._spans.get(ip, ())):
                    self.add(ip, namespace, name, start, finished, key=key)

    def resync(self, pods: Iterable[Mapping[str, Any]], *, now: float) -> None:
        """A complete list of the pods (after a watch was lost): observe each, and close the
        spans of pods the list no longer has, as deleted at ``now``."""
        seen: set[str] = set()
        for pod in pods:
            identity = _identity(pod)
            if identity is not None:
                seen.add(identity[2])
            self.observe(pod, now=now)
        for key in [k for k in self._open if k not in seen]:
            for ip in list(self._open.get(key, {})):
                self._close(key, ip, now)

    def prune(self, now: float) -> None:
        """Forget spans that closed more than ``retention`` seconds before ``now``."""
        limit = now - self.retention
        for ip in list(self._spans):
            kept = [s for s in self._spans[ip] if s.end is None or s.end >= limit]
            if kept:
                self._spans[ip] = kept
            else:
                del self._spans[ip]

    def lookup(self, ip: str, when: float | None = None) -> PodSpan | None:
        """The pod that had ``ip`` at ``when`` (seconds since the epoch); without a time, the
        pod that has it now (else the last one that had it)."""
        spans = self._spans.get(ip)
        if not spans:
            return None
        if when is None:
            open_ = [s for s in spans if s.end is None]
            return open_[-1] if open_ else max(spans, key=lambda s: s.end or 0.0)
        slack = self.slack
        exact: list[PodSpan] = []
        near: list[PodSpan] = []
        for s in spans:
            if (s.start is None or s.start <= when) and (s.end is None or when < s.end):
                exact.append(s)
            elif (s.start is None or s.start - slack <= when) and (
                s.end is None or when < s.end + slack
            ):
                near.append(s)
        chosen = exact or near
        if not chosen:
            return None
        return min(chosen, key=lambda s: float("inf") if s.end is None else s.end)


# --------------------------------------------------------------------------------------------
# de-duplication


@dataclass(slots=True)
class _Window:
    event: Event
    start: float | None
    count: int


class Deduper:
    """Fold repeats of the same packet within ``window`` seconds into one event."""

    def __init__(self, window: float = 2.0, *, capacity: int = 100_000) -> None:
        if window <= 0:
            raise ValueError("the de-duplication window must be positive")
        self.window = window
        self.capacity = capacity
        self._open: OrderedDict[tuple[Any, ...], _Window] = OrderedDict()
        self.folded = 0

    def __len__(self) -> int:
        return len(self._open)

    @staticmethod
    def key(event: Event) -> tuple[Any, ...]:
        return (
            event.prefix,
            event.src,
            event.dst,
            event.proto_num,
            event.src_port,
            event.dst_port,
            event.icmp_id,
        )

    @staticmethod
    def _emit(w: _Window) -> Event:
        return w.event._replace(repeat_count=w.count)

    def add(self, event: Event, when: float | None) -> list[Event]:
        """Take one event seen at ``when`` (seconds; ``None`` when unknown: it joins an open
        window of its key or opens one that only ``flush`` closes). Returns the events whose
        windows this shows closed."""
        out = self.expire(when) if when is not None else []
        key = self.key(event)
        w = self._open.get(key)
        if w is not None:
            if when is None or w.start is None or when - w.start <= self.window:
                w.count += 1
                self.folded += 1
                return out
            out.append(self._emit(self._open.pop(key)))
        self._open[key] = _Window(event, when, 1)
        if len(self._open) > self.capacity:
            _, oldest = self._open.popitem(last=False)
            out.append(self._emit(oldest))
        return out

    def expire(self, now: float) -> list[Event]:
        """Events whose window ended before ``now``, oldest first."""
        out: list[Event] = []
        limit = now - self.window
        while self._open:
            key, w = next(iter(self._open.items()))
            if w.start is None or w.start >= limit:
                break
            del self._open[key]
            out.append(self._emit(w))
        return out

    def flush(self) -> list[Event]:
        """Every open window, in the order they opened."""
        out = [self._emit(w) for w in self._open.values()]
        self._open.clear()
        return out


# --------------------------------------------------------------------------------------------
# the whole


class Enricher:
    """Fills ``set``/``feeds``/``country`` from ``networks`` and ``src_pod``/``src_namespace``
    from ``pods``. ``naive_tz`` reads event times without an offset (RFC 3164, dmesg -T)."""

    def __init__(
        self,
        networks: NetworkIndex | None = None,
        pods: PodIndex | None = None,
        *,
        naive_tz: tzinfo = UTC,
    ) -> None:
        self.networks = networks if networks else None
        self.pods = pods
        self.naive_tz = naive_tz

    def __bool__(self) -> bool:
        return self.networks is not None or self.pods is not None

    def enrich(self, event: Event) -> Event:
        changes: dict[str, Any] = {}
        if self.networks is not None and event.dst is not None:
            found = self.networks.lookup(event.dst)
            if found is not _NOWHERE:
                changes["set"], changes["feeds"], changes["country"] = found
        if self.pods is not None and event.src is not None:
            span = self.pods.lookup(event.src, event_epoch(event, naive_tz=self.naive_tz))
            if span is not None:
                changes["src_pod"], changes["src_namespace"] = span.name, span.namespace
        return event._replace(**changes) if changes else event
