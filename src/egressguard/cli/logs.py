"""Commands: ``logs parse`` and ``logs follow``, blocked-packet kernel log lines → events.

``register`` only builds parsers; the parser, sources and metrics server are imported inside
the handlers.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, TextIO

from egressguard.cli._common import new_parser

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add this group's subcommands to sub."""
    logs = new_parser(
        sub,
        "logs",
        help="parse and follow blocked-packet kernel log lines (calico-packet: ...)",
        description=_LOGS_DESCRIPTION,
        epilog=_LOGS_EPILOG,
    )
    logs_sub = logs.add_subparsers(dest="logs_command", metavar="COMMAND")
    _register_parse(logs_sub)
    _register_follow(logs_sub)
    logs.set_defaults(handler=lambda args: _help(logs))


def _help(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


_LOGS_DESCRIPTION = """\
A Calico (or egressguard) Log rule makes the kernel write one line per logged packet to the
node's kernel log: syslog, journald or /dev/kmsg, e.g.

  2025-01-19T16:13:46.406155+00:00 node kernel: [ 6236.551431] calico-packet: IN=azv7c40892f581
  OUT=eth0 MAC=... SRC=10.244.0.179 DST=217.160.0.92 LEN=60 ... PROTO=TCP SPT=53940 DPT=443 ...

These commands turn such lines into events (JSON objects with every field of the line; see
docs/log-events.md). The wrapper may be rsyslog's ISO format, RFC 3164 (with or without <PRI>),
RFC 5424, journalctl -o json, dmesg, dmesg -T, /dev/kmsg records or the bare message. Lines not
written by the kernel (another syslog tag, a journald transport other than kernel, a userspace
/dev/kmsg write), truncated addresses and records glued together are rejected as issues."""

_LOGS_EPILOG = """\
examples:
  egressguard logs parse /var/log/syslog --prefix calico-packet
  journalctl -k -o json | egressguard logs parse - -o table
  egressguard logs follow --source file:/var/log/messages --metrics-port 9108"""


# --------------------------------------------------------------------------------------------
# shared options and output


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-o",
        "--output",
        choices=("json", "table"),
        default="json",
        help="json (default): one JSON object per event; table: one aligned line per event",
    )
    parser.add_argument(
        "--prefix",
        metavar="P",
        help="only events whose log prefix is P (or starts with 'P ' or 'P:'); a Calico "
        "template such as 'calico-packet %%k:%%p' matches prefixes it decodes",
    )
    parser.add_argument(
        "--template",
        metavar="T",
        help="Calico LogPrefix template to read tier/kind/policy from the prefix "
        "(default: --prefix when it has %%t/%%k/%%n/%%p)",
    )
    parser.add_argument(
        "--issues",
        action="store_true",
        help='print every rejected line to stderr as {"line_no": N, "issue": "..."}',
    )
    enrich = parser.add_argument_group(
        "enrichment",
        "fill set/feeds/country (destination), src_pod/src_namespace (source) and "
        "repeat_count; see docs/log-events.md",
    )
    enrich.add_argument(
        "--manifests",
        action="append",
        default=[],
        metavar="DIR|FILE",
        help="GlobalNetworkSets/NetworkSets (YAML files or directories): the set holding dst "
        "(shards of an egressguard build count as one set named after their blocklist)",
    )
    enrich.add_argument(
        "--blocklist",
        action="append",
        default=[],
        metavar="DIR",
        help="the output directory of 'egressguard build': its set, and from its "
        "egressguard.lock the feeds and countries holding dst",
    )
    enrich.add_argument(
        "--pods",
        action="append",
        default=[],
        metavar="FILE",
        help="Pod manifests (kubectl get pods -A -o yaml): the pod that had src at the "
        "event's time",
    )
    enrich.add_argument(
        "--kube",
        action="store_true",
        help="read the pods from the Kubernetes API (follow: list, then watch) for src_pod",
    )
    enrich.add_argument(
        "--node",
        metavar="NAME",
        help="with --kube: only the pods of this node (default: $NODE_NAME; unset = all pods)",
    )
    enrich.add_argument("--kubeconfig", metavar="FILE", help="with --kube: the kubeconfig")
    enrich.add_argument(
        "--dedup-window",
        type=float,
        default=0.0,
        metavar="S",
        help="fold repeats of a packet (same prefix, addresses, protocol, ports; SYN retries "
        "keep their source port) within S seconds into one event with repeat_count; 2 "
        "catches the first SYN retry (default: 0, off: every packet is an event)",
    )


_COLUMNS = (
    ("line", 6),
    ("time", 32),
    ("host", 20),
    ("prefix", 16),
    ("in", 15),
    ("out", 15),
    ("proto", 7),
    ("src", 39),
    ("spt", 5),
    ("dst", 39),
    ("dpt", 5),
    ("flags", 0),
)


def _table_header() -> str:
    return " ".join(
        f"{name.upper():<{width}}" if width else name.upper() for name, width in _COLUMNS
    )


def _table_row(event: Any) -> str:
    if event.proto in ("ICMP", "ICMPV6"):
        spt = "" if event.icmp_type is None else f"t{event.icmp_type}"
        dpt = "" if event.icmp_code is None else f"c{event.icmp_code}"
    else:
        spt = "" if event.src_port is None else str(event.src_port)
        dpt = "" if event.dst_port is None else str(event.dst_port)
    values = (
        str(event.line_no),
        event.time or "",
        event.host or "",
        event.prefix,
        event.in_iface or "",
        event.out_iface or "",
        event.proto or "",
        event.src or "",
        spt,
        event.dst or "",
        dpt,
        " ".join((*event.ip_flags, *event.tcp_flags)),
    )
    return " ".join(
        f"{value:<{width}}" if width else value
        for value, (_, width) in zip(values, _COLUMNS, strict=True)
    ).rstrip()


class _Output:
    """Writes events and issues; counts what it wrote."""

    def __init__(self, args: argparse.Namespace, *, flush: bool) -> None:
        import json

        from egressguard.logs.events import event_to_json, issue_to_json

        self._dumps = json.dumps
        self._event_to_json = event_to_json
        self._issue_to_json = issue_to_json
        self.table = args.output == "table"
        self.issues = args.issues
        self.flush = flush
        self.events_written = 0
        self.issues_seen = 0
        self.out: TextIO = sys.stdout
        if self.table:
            self.out.write(_table_header() + "\n")

    def event(self, event: Any, source: str) -> None:
        if self.table:
            self.out.write(_table_row(event) + "\n")
        else:
            record = self._event_to_json(event)
            record["source"] = source
            self.out.write(self._dumps(record, separators=(",", ":")) + "\n")
        self.events_written += 1
        if self.flush:
            self.out.flush()

    def issue(self, issue: Any, source: str) -> None:
        self.issues_seen += 1
        if self.issues:
            record = self._issue_to_json(issue, source=source)
            sys.stderr.write(self._dumps(record, separators=(",", ":")) + "\n")


def _parser_for(args: argparse.Namespace, **options: Any) -> Any:
    from egressguard import logprefix
    from egressguard.errors import InputError, UsageError
    from egressguard.logs.parse import LogParser

    for flag, value in (("--prefix", args.prefix), ("--template", args.template)):
        if value is not None and logprefix.has_specifiers(value):
            try:
                logprefix.validate_template(value)
            except InputError as exc:
                raise UsageError(f"{flag}: {exc}", hint=exc.hint) from exc
    return LogParser(prefix=args.prefix, template=args.template, **options)


class _Enrichment:
    """What the enrichment options built: an ``Enricher`` (or None), a ``Deduper`` (or None),
    and the pod index a ``--kube`` watch keeps current.

    De-duplication windows run on the events' own clock: an event's time in seconds (else its
    uptime). ``expire`` advances the last such time by the wall time since, so that windows
    close while the log is quiet (``logs follow``)."""

    def __init__(self, enricher: Any, deduper: Any, pods: Any, naive_tz: Any) -> None:
        self.enricher = enricher
        self.deduper = deduper
        self.pods = pods
        self.naive_tz = naive_tz
        self._last: tuple[float, float] | None = None  # (event clock, time.monotonic())

    def events(self, event: Any) -> list[Any]:
        """The events to write for one parsed event (none while its window is open)."""
        import time

        from egressguard.logs.events import event_epoch

        if self.enricher is not None:
            event = self.enricher.enrich(event)
        if self.deduper is None:
            return [event]
        when: float | None = event_epoch(event, naive_tz=self.naive_tz)
        if when is None:
            when = event.uptime
        if when is not None:
            self._last = (when, time.monotonic())
        out: list[Any] = self.deduper.add(event, when)
        return out

    def expire(self) -> list[Any]:
        """The events whose windows the clock has passed while no event came."""
        import time

        if self.deduper is None or self._last is None:
            return []
        when, then = self._last
        out: list[Any] = self.deduper.expire(when + time.monotonic() - then)
        return out

    def flush(self) -> list[Any]:
        return self.deduper.flush() if self.deduper is not None else []


def _load_sets(args: argparse.Namespace) -> Any:
    """The NetworkIndex of --manifests and --blocklist, or None."""
    import json
    import os

    from egressguard.calico.load import load_paths
    from egressguard.errors import UsageError
    from egressguard.logs import enrich

    tagged: list[Any] = []
    for path in args.manifests:
        if not os.path.exists(path):
            raise UsageError(f"--manifests {path}: no such file or directory")
        loaded = load_paths([path])
        sets = loaded.network_sets
        if not sets:
            raise UsageError(
                f"--manifests {path}: no valid GlobalNetworkSet or NetworkSet in it"
                + (
                    f" ({len(loaded.problems)} problem(s); see egressguard validate)"
                    if loaded.problems
                    else ""
                ),
            )
        tagged.extend(enrich.network_set_tags(sets))
    for path in args.blocklist:
        lock_path = os.path.join(path, "egressguard.lock")
        if not os.path.isfile(lock_path):
            raise UsageError(
                f"--blocklist {path}: no egressguard.lock: not the output of egressguard build",
                hint="use --manifests for other network sets",
            )
        try:
            with open(lock_path, encoding="utf-8") as fh:
                lock = json.load(fh)
        except (OSError, ValueError) as exc:
            raise UsageError(f"{lock_path}: cannot read the build lock: {exc}") from exc
        tagged.extend(enrich.network_set_tags(load_paths([path]).network_sets))
        provenance = enrich.provenance_tags(lock)
        if not provenance:
            sys.stderr.write(
                f"{lock_path}: no provenance recorded (a build from an older egressguard): "
                "feeds and countries stay empty; build again to record them\n"
            )
        tagged.extend(provenance)
    return enrich.NetworkIndex(tagged) if tagged else None


def _load_pods(args: argparse.Namespace, now: float, *, watch: bool) -> tuple[Any, Any]:
    """(PodIndex or None, the pod watch to run or None)."""
    import os

    from egressguard import yamlio
    from egressguard.errors import ManifestError, UsageError
    from egressguard.logs.enrich import PodIndex

    if not args.pods and not args.kube:
        return None, None
    index = PodIndex()
    for path in args.pods:
        try:
            docs = yamlio.load_file(path)
        except ManifestError as exc:
            raise UsageError(f"--pods {path}: {exc}", hint=exc.hint) from exc
        for doc in docs:
            data = doc.data
            items = data.get("items") if isinstance(data, dict) else None
            for item in items if isinstance(items, list) else [data]:
                if isinstance(item, dict) and item.get("kind", "Pod") == "Pod":
                    index.observe(item, now=now)
    watcher = None
    if args.kube:
        from egressguard.adapters.kube_pods import connect_pods

        node = args.node or os.environ.get("NODE_NAME") or None
        watcher = connect_pods(args.kubeconfig, node=node)
        if not watch:
            try:
                index.resync(watcher.list_pods(), now=now)
            finally:
                watcher.close()
            watcher = None
    return index, watcher


def _enrichment(args: argparse.Namespace, *, watch: bool) -> tuple[_Enrichment, Any]:
    """The enrichment the options ask for, and a pod watch to start (follow --kube)."""
    import time
    from datetime import UTC, datetime

    from egressguard.errors import UsageError
    from egressguard.logs.enrich import Deduper, Enricher

    if args.dedup_window < 0:
        raise UsageError("--dedup-window must be 0 (off) or a number of seconds")
    naive_tz = datetime.now().astimezone().tzinfo or UTC
    networks = _load_sets(args)
    pods, watcher = _load_pods(args, time.time(), watch=watch)
    enricher = (
        Enricher(networks, pods, naive_tz=naive_tz)
        if networks is not None or pods is not None
        else None
    )
    deduper = Deduper(args.dedup_window) if args.dedup_window > 0 else None
    return _Enrichment(enricher, deduper, pods, naive_tz), watcher


# --------------------------------------------------------------------------------------------
# parse

_PARSE_DESCRIPTION = """\
Parse kernel log lines from files (or standard input) into events: one JSON object per logged
packet on stdout, with line_no, time (ISO 8601), host, prefix, in_iface, out_iface, src, dst,
proto, src_port, dst_port, icmp_type, icmp_code, fragment and every other field of the line
(schema: docs/log-events.md). Lines that are not packet logs (an sshd line in /var/log/syslog)
are skipped silently; lines that look like packet logs but are not acceptable are rejected and
counted as issues, never turned into events.

RFC 3164 stamps have no year: it is taken from the file's modification time (now for stdin).
dmesg and /dev/kmsg stamps count from boot; --boot-time turns them into times.

Exit status: 0 when no line was rejected, 1 when some were (see --issues), 2 on usage errors."""

_PARSE_EPILOG = """\
examples:
  egressguard logs parse /var/log/kern.log
  egressguard logs parse /var/log/messages --prefix calico-packet -o table
  egressguard logs parse syslog --issues 2> issues.jsonl | jq -r .dst | sort | uniq -c
  journalctl -k -o json --since today | egressguard logs parse -
  dmesg | egressguard logs parse - --boot-time local
  egressguard logs parse /var/log/syslog --prefix 'calico-packet %k:%p'   # policy from prefix

output (json, one line per event; abridged):
  {"line_no":1,"time":"2025-01-19T16:13:46.406155+00:00","host":"aks-...","prefix":
   "calico-packet","in_iface":"azv7c40892f581","out_iface":"eth0","src":"10.244.0.179",
   "dst":"217.160.0.92","proto":"TCP","src_port":53940,"dst_port":443,"tcp_flags":["SYN"],...}
issue (stderr, with --issues):
  {"line_no":24,"code":"not-kernel","issue":"syslog tag 'EXAMPLE_LOG_PREFIX' is not 'kernel'..."}"""


def _register_parse(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = new_parser(
        sub,
        "parse",
        help="parse kernel log lines from files or stdin into JSON events",
        description=_PARSE_DESCRIPTION,
        epilog=_PARSE_EPILOG,
    )
    parser.add_argument(
        "paths", nargs="*", metavar="FILE", help="log files; - or nothing reads standard input"
    )
    _add_common(parser)
    parser.add_argument(
        "--boot-time",
        metavar="EPOCH|local",
        help="when the kernel booted (seconds since the epoch, or 'local' for this machine), "
        "to give dmesg/kmsg lines a time",
    )
    parser.add_argument(
        "--stats",
        action="store_true",
        help="print the line counts (events, issues, skipped, filtered) to stderr at the end",
    )
    parser.set_defaults(handler=_run_parse)


def _boot_time(value: str | None) -> float | None:
    from egressguard.errors import UsageError

    if value is None:
        return None
    if value == "local":
        from egressguard.adapters.logsource import boot_time

        return boot_time()
    try:
        return float(value)
    except ValueError:
        raise UsageError(
            f"--boot-time {value!r}: expected seconds since the epoch or 'local'"
        ) from None


def _run_parse(args: argparse.Namespace) -> int:
    import json
    import os
    from datetime import datetime

    from egressguard.errors import UsageError
    from egressguard.logs.events import Event

    paths = args.paths or ["-"]
    if paths.count("-") > 1:
        raise UsageError("standard input (-) can be read only once")
    for path in paths:
        if path != "-" and not os.path.isfile(path):
            raise UsageError(f"{path}: no such file")
    boot = _boot_time(args.boot_time)
    enrichment, _ = _enrichment(args, watch=False)
    output = _Output(args, flush=False)
    totals: dict[str, int] = {}
    for path in paths:
        if path == "-":
            name, stream, reference = "<stdin>", sys.stdin.buffer, datetime.now()
        else:
            name = path
            reference = datetime.fromtimestamp(os.path.getmtime(path))
            try:
                stream = open(path, "rb")  # noqa: SIM115  (closed below)
            except OSError as exc:
                raise UsageError(f"{path}: cannot read: {exc.strerror or exc}") from exc
        parser = _parser_for(args, reference=reference, boot_time=boot)
        try:
            texts = (raw.decode("utf-8", errors="replace") for raw in stream)
            for result in parser.parse_lines(texts):
                if isinstance(result, Event):
                    for event in enrichment.events(result):
                        output.event(event, name)
                else:
                    output.issue(result, name)
            for event in enrichment.flush():  # windows do not span inputs
                output.event(event, name)
        finally:
            if stream is not sys.stdin.buffer:
                stream.close()
        for key, value in parser.stats.as_dict().items():
            totals[key] = totals.get(key, 0) + value
    sys.stdout.flush()
    if args.stats:
        sys.stderr.write(json.dumps({"stats": totals}, sort_keys=True) + "\n")
    elif output.issues_seen and not args.issues:
        sys.stderr.write(
            f"{output.issues_seen} line(s) rejected; --issues lists them with the reason\n"
        )
    return 1 if output.issues_seen else 0


# --------------------------------------------------------------------------------------------
# follow

_FOLLOW_DESCRIPTION = """\
Follow the kernel log as it grows and print each blocked packet as it is logged (same event
format as 'logs parse'). Sources: a file (rotation by rename and by copytruncate is followed),
journald (journalctl -k -o json -f) or /dev/kmsg; 'auto' takes the first of /var/log/kern.log,
/var/log/messages, /var/log/syslog under --root, else journald, else /dev/kmsg.

With --metrics-port, Prometheus can scrape /metrics: blocked packets and flows by network set,
feed, country, namespace and protocol (bounded: the first 20 values of each label, then
"other"), rejected lines by reason, lines read, and the lag behind the log (docs/log-events.md).

Runs until interrupted (SIGINT/SIGTERM), or until --max-events or --duration is reached."""

_FOLLOW_EPILOG = """\
examples:
  egressguard logs follow --source file:/var/log/syslog --prefix calico-packet
  egressguard logs follow --source kmsg -o table
  egressguard logs follow --source auto --root /host --metrics-port 9108 --metrics-address 0.0.0.0
  egressguard logs follow --source journald --issues
  curl -s localhost:9108/metrics | grep egressguard_blocked_packets_total"""


def _register_follow(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = new_parser(
        sub,
        "follow",
        help="follow the kernel log (file, journald or /dev/kmsg) and emit events and metrics",
        description=_FOLLOW_DESCRIPTION,
        epilog=_FOLLOW_EPILOG,
    )
    parser.add_argument(
        "--source",
        default="auto",
        metavar="file:PATH|journald|kmsg|auto",
        help="where to read (default: auto)",
    )
    _add_common(parser)
    parser.add_argument(
        "--from-start", action="store_true", help="read what the source already holds first"
    )
    parser.add_argument(
        "--root",
        default="/",
        metavar="DIR",
        help="where the host's filesystem is mounted, for --source auto/kmsg (default: /)",
    )
    parser.add_argument(
        "--metrics-port", type=int, metavar="N", help="serve Prometheus metrics on port N"
    )
    parser.add_argument(
        "--metrics-address",
        default="127.0.0.1",
        metavar="ADDR",
        help="address for --metrics-port (default: 127.0.0.1; 0.0.0.0 in a pod)",
    )
    parser.add_argument("--max-events", type=int, metavar="N", help="stop after N events")
    parser.add_argument(
        "--duration", type=float, metavar="SECONDS", help="stop after this many seconds"
    )
    parser.add_argument(
        "--poll",
        type=float,
        default=0.2,
        metavar="SECONDS",
        help="how often an idle source is checked (default: 0.2)",
    )
    parser.set_defaults(handler=_run_follow)


def _run_follow(args: argparse.Namespace) -> int:
    import queue
    import signal
    import threading
    import time
    from datetime import datetime

    from egressguard.adapters.logsource import boot_time, open_source
    from egressguard.errors import UsageError
    from egressguard.logs.events import Event

    if args.max_events is not None and args.max_events < 1:
        raise UsageError("--max-events must be at least 1")
    if args.metrics_port is not None and not 0 <= args.metrics_port <= 65535:
        raise UsageError("--metrics-port must be 0-65535")
    source = open_source(args.source, from_start=args.from_start, poll=args.poll, root=args.root)
    parser = _parser_for(args, reference=datetime.now(), boot_time=boot_time())
    enrichment, watcher = _enrichment(args, watch=True)
    output = _Output(args, flush=True)
    stop = threading.Event()
    lock = threading.Lock()
    metrics = None
    server = None
    if args.metrics_port is not None:
        from egressguard.adapters.metrics import MetricsServer
        from egressguard.logs.metrics import Metrics

        metrics = Metrics(naive_tz=enrichment.naive_tz)

        def render() -> str:
            with lock:
                metrics.observe_lines(parser.stats.as_dict())
                metrics.observe_source(source.stats.as_dict())
                return metrics.render()

        server = MetricsServer(render, host=args.metrics_address, port=args.metrics_port)
        server.start()
        host, port = server.address
        sys.stderr.write(f"metrics: http://{host}:{port}/metrics\n")

    # Pod changes from the watch thread are applied here, between lines, so the index is only
    # ever touched by this thread.
    changes: queue.SimpleQueue[Any] = queue.SimpleQueue()
    synced = threading.Event()
    threads: list[threading.Thread] = []
    if watcher is not None:

        def sink(change: Any) -> None:
            changes.put(change)
            if change.type == "SYNC":
                synced.set()

        def watch() -> None:
            try:
                watcher.run(sink, stop)
            except Exception as exc:
                sys.stderr.write(f"pod watch stopped: {exc}\n")
                synced.set()

        threads.append(threading.Thread(target=watch, name="pod-watch", daemon=True))
        threads[-1].start()
        if not synced.wait(timeout=30):
            sys.stderr.write("pod watch: no pod list after 30 s; going on without it\n")

    pruned = [time.monotonic()]

    def apply_changes() -> None:
        pods = enrichment.pods
        if pods is None:
            return
        if time.monotonic() - pruned[0] > 60:  # forget long-gone pods now and then
            pruned[0] = time.monotonic()
            pods.prune(time.time())
        while True:
            try:
                change = changes.get_nowait()
            except queue.Empty:
                return
            now = time.time()
            if change.type == "SYNC":
                pods.resync(change.pods, now=now)
            else:
                pods.observe(change.pod, now=now, deleted=change.type == "DELETED")

    # Lines come through a bounded queue from a reader thread, so that de-duplication windows
    # close when the log is quiet too (the sources block while there is nothing to read).
    lines_q: queue.Queue[str | None] = queue.Queue(maxsize=10_000)
    lines = source.lines(stop)

    def read() -> None:
        try:
            for line in lines:
                while not stop.is_set():
                    try:
                        lines_q.put(line, timeout=0.2)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    break
        finally:
            lines_q.put(None)

    timer = threading.Timer(args.duration, stop.set) if args.duration is not None else None
    previous = {}
    for signum in (signal.SIGTERM, signal.SIGINT):
        previous[signum] = signal.signal(signum, lambda *_: stop.set())
    reader = threading.Thread(target=read, name="log-reader", daemon=True)

    def emit(event: Any) -> bool:
        """Write one event; False once --max-events is reached."""
        if metrics is not None:
            with lock:
                metrics.observe_event(event, now=time.time())
        output.event(event, source.name)
        return args.max_events is None or output.events_written < args.max_events

    line_no = 0
    going = True
    try:
        if timer is not None:
            timer.daemon = True
            timer.start()
        reader.start()
        while going and not stop.is_set():
            try:
                line = lines_q.get(timeout=min(0.5, max(args.poll, 0.05)))
            except queue.Empty:
                for event in enrichment.expire():
                    going = going and emit(event)
                apply_changes()
                continue
            if line is None:
                break
            line_no += 1
            apply_changes()
            parser.reference = datetime.now()
            result = parser.parse(line, line_no)
            if result is None:
                continue
            if isinstance(result, Event):
                for event in enrichment.events(result):
                    going = going and emit(event)
            else:
                if metrics is not None:
                    with lock:
                        metrics.observe_issue(result)
                output.issue(result, source.name)
                sys.stderr.flush()
        for event in enrichment.flush():
            if going:
                going = emit(event)
    finally:
        stop.set()
        if watcher is not None:
            watcher.stop()
        reader.join(timeout=5)
        lines.close()
        for thread in threads:
            thread.join(timeout=5)
        if timer is not None:
            timer.cancel()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if server is not None:
            server.stop()
    return 0
