"""The host dataplane on a real kernel: the lab's pods, node and internet in namespaces.

Each test builds its own lab (``egressguard.app.lab``) with a random prefix and a temporary
state directory; the fixture removes it even when the test fails. The node namespace gets
egressguard's table (pods are workloads behind their cali interfaces: forward hook; the node's
own traffic: output hook). Traffic only between those namespaces, documentation addresses
only: internet 203.0.113.10-15 and 2001:db8:203:113::10-15, of which ``.11`` is blocked
and ``.10`` is an ordinary destination.

Kernel log lines are read from /dev/kmsg with ``net.netfilter.nf_log_all_netns=1`` (set only
for the test and restored after); each test uses its own log prefix so lines of other tests
or processes never count.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import os
import secrets
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from egressguard import calico
from egressguard.adapters.nftables import NftCli
from egressguard.adapters.probe import Probe
from egressguard.app import agent, lab, labrun
from egressguard.errors import DataplaneError
from egressguard.nft import compile as nft_compile
from egressguard.nft import endpoints as eps
from egressguard.nft import render, state

sys.path.insert(0, str(Path(__file__).parent))
from labns import built_lab

pytestmark = [pytest.mark.root, pytest.mark.integration]

BLOCKED4, ALLOWED4 = "203.0.113.11", "203.0.113.10"
BLOCKED6, ALLOWED6 = "2001:db8:203:113::11", "2001:db8:203:113::10"
SYSCTL = Path("/proc/sys/net/netfilter/nf_log_all_netns")
GOLDEN = Path(__file__).parent.parent / "conformance" / "data" / "nft_golden"

GNS = """\
apiVersion: crd.projectcalico.org/v1
kind: GlobalNetworkSet
metadata:
  name: egress-traffic-blocking
  labels:
    policy: egress-traffic-blocking
spec:
  nets: [{nets}]
"""
BLOCKING = """\
apiVersion: crd.projectcalico.org/v1
kind: GlobalNetworkPolicy
metadata:
  name: egress-traffic-blocking
spec:
  order: 0
  types: [Egress]
  egress:
    - action: {first}
      destination:
        selector: policy == 'egress-traffic-blocking'
    - action: {second}
      destination:
        selector: policy == 'egress-traffic-blocking'
"""
ALLOW = """\
apiVersion: crd.projectcalico.org/v1
kind: GlobalNetworkPolicy
metadata:
  name: egress-traffic-allow
spec:
  order: 1000
  types: [Egress]
  egress:
    - action: Allow
"""


def manifests(
    *,
    nets: str = f"{BLOCKED4}/32, '{BLOCKED6}/128'",
    first: str = "Log",
    second: str = "Deny",
    allow: bool = True,
) -> calico.Manifests:
    """The reference scenario (examples/blog) with its addresses rewritten into the lab."""
    text = GNS.format(nets=nets) + "---\n" + BLOCKING.format(first=first, second=second)
    if allow:
        text += "---\n" + ALLOW
    loaded = calico.load_text(text, "scenario.yaml")
    assert loaded.ok, loaded.problems
    return loaded


def lab_endpoints(t: lab.Topology) -> eps.Endpoints:
    """The lab's pods as workloads behind their cali interfaces (as ``lab run`` has them);
    the node as the host."""
    return dataclasses.replace(labrun.lab_endpoints(t), host=eps.Host(name="node"))


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture
def running_lab(tmp_path: Path) -> Iterator[lab.Lab]:
    with built_lab("n", tmp_path) as built:
        yield built


@pytest.fixture
def kernel_log() -> Iterator[KernelLog]:
    previous = SYSCTL.read_text().strip()
    if previous != "1":
        SYSCTL.write_text("1\n")
    log = KernelLog()
    try:
        yield log
    finally:
        log.close()
        if previous != "1":
            SYSCTL.write_text(previous + "\n")


@pytest.fixture
def scratch_ns() -> Iterator[str]:
    name = f"eg-s{secrets.token_hex(4)}"
    subprocess.run(["ip", "netns", "add", name], check=True, timeout=30)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False, timeout=30)


class KernelLog:
    """New /dev/kmsg records from now on (non-blocking reads, bounded)."""

    def __init__(self) -> None:
        self.fd = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK)
        os.lseek(self.fd, 0, os.SEEK_END)

    def lines(self, needle: str, *, settle: float = 0.5) -> list[str]:
        time.sleep(settle)  # let the kernel flush what the probes caused
        out: list[str] = []
        for _ in range(100_000):
            try:
                record = os.read(self.fd, 8192)
            except BlockingIOError:
                break
            except OSError:  # EPIPE: records were overwritten; go on with the next
                continue
            message = record.decode("utf-8", "replace").split(";", 1)[-1].strip()
            if needle in message:
                out.append(message)
        return out

    def close(self) -> None:
        os.close(self.fd)


def apply(running: lab.Lab, loaded: calico.Manifests, prefix: str) -> nft_compile.Compiled:
    compiled = nft_compile.compile_table(
        loaded, lab_endpoints(running.topology), nft_compile.Options(log_prefix=prefix)
    )
    NftCli(running.topology.node_ns).apply(compiled.script())
    return compiled


def probes(dst: str, pods: tuple[str, ...] = ("pod1", "pod2")) -> list[Probe]:
    out = []
    for pod in pods:
        out += [
            Probe(pod, "tcp", dst, 80, 1.0),
            Probe(pod, "tcp", dst, 443, 1.0),
            Probe(pod, "udp", dst, 53, 1.0),
            Probe(pod, "icmp", dst, None, 1.0),
        ]
    return out


def node_connects(running: lab.Lab, dst: str, port: int = 80) -> bool:
    """Whether the node itself (output hook) completes a TCP connection to dst:port."""
    code = textwrap.dedent(f"""
        import socket, sys
        family = socket.AF_INET6 if ":" in {dst!r} else socket.AF_INET
        s = socket.socket(family, socket.SOCK_STREAM)
        s.settimeout(1.0)
        try:
            s.connect(({dst!r}, {port}))
        except OSError:
            sys.exit(1)
        sys.exit(0)
    """)
    proc = subprocess.run(
        ["ip", "netns", "exec", running.topology.node_ns, sys.executable, "-c", code],
        capture_output=True,
        timeout=30,
        check=False,
    )
    return proc.returncode == 0


def _logged(address: str) -> str:
    """How the kernel's LOG prints an address: IPv6 with all 8 groups of 4 digits."""
    parsed = ipaddress.ip_address(address)
    return parsed.exploded if parsed.version == 6 else str(parsed)


def tag() -> str:
    return f"egt-{secrets.token_hex(4)}"


# -------------------------------------------------------------------------------- tests


def test_reference_scenario_blocks_logs_and_lets_other_traffic_through(
    running_lab: lab.Lab, kernel_log: KernelLog
) -> None:
    prefix = tag()
    apply(running_lab, manifests(), prefix)
    blocked = running_lab.probe(probes(BLOCKED4) + probes(BLOCKED6))
    allowed = running_lab.probe(probes(ALLOWED4) + probes(ALLOWED6))
    assert [r.probe.label() for r in blocked if r.ok] == []
    assert [(r.probe.pod, r.probe.label(), r.detail) for r in allowed if not r.ok] == []
    # The node's own egress goes through the output hook and the same policies.
    assert not node_connects(running_lab, BLOCKED4)
    assert node_connects(running_lab, ALLOWED4)
    assert not node_connects(running_lab, BLOCKED6)
    assert node_connects(running_lab, ALLOWED6)
    lines = kernel_log.lines(f"{prefix}: ")
    pods = {p.key: p for p in running_lab.topology.pods}
    for pod in ("pod1", "pod2"):
        for src, dst in ((pods[pod].ipv4, BLOCKED4), (pods[pod].ipv6, BLOCKED6)):
            # IPv6 addresses are logged in full (%pI6): compare exploded forms.
            want = f"SRC={_logged(str(src))} DST={_logged(dst)} "
            tcp = [ln for ln in lines if want in ln and "PROTO=TCP" in ln]
            assert tcp, f"no log line for TCP {src} -> {dst}"
            assert f"IN={pods[pod].cali} " in tcp[0]
            assert "DPT=80 " in " ".join(tcp)
            assert "DPT=443 " in " ".join(tcp)
    assert not [ln for ln in lines if f"DST={ALLOWED4} " in ln or _logged(ALLOWED6) in ln]


def test_log_after_deny_logs_nothing(running_lab: lab.Lab, kernel_log: KernelLog) -> None:
    prefix = tag()
    apply(running_lab, manifests(first="Deny", second="Log"), prefix)
    results = running_lab.probe(probes(BLOCKED4, ("pod1",)) + probes(BLOCKED6, ("pod1",)))
    assert not any(r.ok for r in results)
    assert running_lab.probe(probes(ALLOWED4, ("pod1",)))[0].ok
    assert kernel_log.lines(f"{prefix}: ") == []


def test_missing_allow_policy_is_a_default_deny(
    running_lab: lab.Lab, kernel_log: KernelLog
) -> None:
    prefix = tag()
    apply(running_lab, manifests(allow=False), prefix)
    results = running_lab.probe(probes(ALLOWED4) + probes(ALLOWED6) + probes(BLOCKED4))
    assert [r.probe.label() for r in results if r.ok] == []
    assert not node_connects(running_lab, ALLOWED4)
    lines = kernel_log.lines(f"{prefix}: ")
    # Only the blocked destination is logged: the rest died at the end-of-tier drop, silently.
    assert lines
    assert all(f"DST={BLOCKED4} " in ln for ln in lines)


PROBER = r"""
import json, socket, sys, time
targets = json.loads(sys.argv[1])
deadline = time.monotonic() + float(sys.argv[2])
stop_file = sys.argv[3]
progress = sys.argv[4]
counts = {t[0]: {"ok": 0, "fail": 0} for t in targets}
import os
cycles = 0
while time.monotonic() < deadline and not os.path.exists(stop_file):
    for addr, timeout in targets:
        family = socket.AF_INET6 if ":" in addr else socket.AF_INET
        s = socket.socket(family, socket.SOCK_STREAM)
        s.settimeout(timeout)
        try:
            s.connect((addr, 80))
            counts[addr]["ok"] += 1
        except OSError:
            counts[addr]["fail"] += 1
        finally:
            s.close()
    cycles += 1
    with open(progress + ".tmp", "w") as f:
        f.write(str(cycles))
    os.replace(progress + ".tmp", progress)
print(json.dumps(counts))
"""


def test_fifty_set_updates_under_continuous_probing(running_lab: lab.Lab, tmp_path: Path) -> None:
    t = running_lab.topology
    node = NftCli(t.node_ns)
    # Count, at the destination, every packet that reaches a blocked address.
    counter = (
        "table inet egcount {\n\tchain in {\n\t\ttype filter hook input priority -300; "
        f"policy accept;\n\t\tip daddr {BLOCKED4} counter\n\t\tip6 daddr {BLOCKED6} counter\n"
        f"\t\tip daddr {ALLOWED4} counter\n\t}}\n}}\n"
    )
    subprocess.run(
        ["ip", "netns", "exec", t.inet_ns, "nft", "-f", "-"],
        input=counter.encode(),
        check=True,
        timeout=30,
    )
    # Variants all hold the blocked addresses, never the allowed ones; the canonical range
    # around the blocked address changes shape between them (it grows, shrinks and merges),
    # so each update deletes and re-adds the very element that blocks.
    variants = [
        f"{BLOCKED4}/32, '{BLOCKED6}/128'",
        f"{BLOCKED4}/32, 203.0.113.12/30, '{BLOCKED6}/128', '2001:db8:203:113::12/127'",
        f"{BLOCKED4}/32, 203.0.113.12/32, 198.51.100.200/29, '{BLOCKED6}/128'",
        f"{BLOCKED4}/32, 203.0.113.13/32, '{BLOCKED6}/128', '2001:db8:203:113::14/126'",
    ]
    endpoints = lab_endpoints(t)
    previous = nft_compile.compile_table(manifests(nets=variants[0]), endpoints).table
    node.apply(render.script(previous))
    stop_file = tmp_path / "stop"
    progress = tmp_path / "progress"
    targets = [[ALLOWED4, 2.0], [ALLOWED6, 2.0], [BLOCKED4, 0.05], [BLOCKED6, 0.05]]
    prober = subprocess.Popen(
        [
            "ip",
            "netns",
            "exec",
            t.pod_ns("pod1"),
            sys.executable,
            "-c",
            PROBER,
            json.dumps(targets),
            "120",
            str(stop_file),
            str(progress),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )

    def cycles_after(seen: int) -> int:
        """Wait (bounded) until the prober finished another round of every target."""
        for _ in range(200):
            try:
                done = int(progress.read_text() or 0)
            except (OSError, ValueError):
                done = 0
            if done > seen:
                return done
            time.sleep(0.05)
        raise AssertionError("the prober stopped making progress")

    kinds = []
    try:
        seen = cycles_after(0)
        for i in range(50):
            table = nft_compile.compile_table(
                manifests(nets=variants[(i + 1) % len(variants)]), endpoints
            ).table
            result = agent.apply_compiled(node, table, previous=previous)
            kinds.append(result.kind)
            previous = table
            seen = cycles_after(seen)  # at least one probe of each target per update
        cycles_after(seen)
    finally:
        stop_file.write_text("stop")
        out, _ = prober.communicate(timeout=60)
    counts = json.loads(out)
    assert kinds == ["elements"] * 50
    assert counts[ALLOWED4]["fail"] == 0, counts
    assert counts[ALLOWED6]["fail"] == 0, counts
    assert counts[ALLOWED4]["ok"] > 50, counts  # one probe round per update at least
    assert counts[BLOCKED4]["ok"] == 0, counts
    assert counts[BLOCKED6]["ok"] == 0, counts
    listing = subprocess.run(
        ["ip", "netns", "exec", t.inet_ns, "nft", "-j", "list", "table", "inet", "egcount"],
        check=True,
        capture_output=True,
        timeout=30,
    ).stdout
    packets = [
        expr["counter"]["packets"]
        for item in json.loads(listing)["nftables"]
        if "rule" in item
        for expr in item["rule"]["expr"]
        if "counter" in expr
    ]
    assert packets[:2] == [0, 0], "packets reached a blocked destination"
    assert packets[2] > 0  # the counters do count: allowed traffic arrived
    # And the kernel holds exactly the last table.
    assert node.read_marker() == render.marker(
        render.structure_digest(previous), render.content_digest(previous.sets)
    )


def test_an_invalid_ruleset_leaves_the_previous_one_in_place(
    running_lab: lab.Lab, tmp_path: Path
) -> None:
    t = running_lab.topology
    node = NftCli(t.node_ns)
    compiled = apply(running_lab, manifests(), tag())
    before = node.list_table()
    broken = compiled.script().replace("jump host", "jump no-such-chain")
    with pytest.raises(DataplaneError, match="script line"):
        node.apply(broken)
    assert node.list_table() == before
    assert not running_lab.probe([Probe("pod1", "tcp", BLOCKED4, 80, 1.0)])[0].ok
    # The agent: a manifest that does not validate is reported and never applied.
    folder = tmp_path / "manifests"
    folder.mkdir()
    (folder / "scenario.yaml").write_text(
        GNS.format(nets=f"{BLOCKED4}/32")
        + "---\n"
        + BLOCKING.format(first="Log", second="Deny")
        + "---\n"
        + ALLOW
    )
    events: list[dict[str, Any]] = []
    endpoints_file = tmp_path / "endpoints.yaml"
    endpoints_file.write_text(
        json.dumps(
            {
                "apiVersion": eps.API_VERSION,
                "kind": eps.KIND,
                "host": {"name": "node"},
                "workloads": [
                    {
                        "name": p.name,
                        "namespace": p.namespace,
                        "labels": p.label_map,
                        "interface": p.cali,
                        "addresses": [str(p.ipv4), str(p.ipv6)],
                    }
                    for p in t.pods
                ],
            }
        )
    )
    runner = agent.Agent(node, folder, endpoints_file, log=events.append)
    assert runner.step()["event"] == "applied"
    marker = node.read_marker()
    (folder / "scenario.yaml").write_text(
        (folder / "scenario.yaml").read_text().replace("action: Deny", "action: deny")
    )
    event = runner.step()
    assert event is not None
    assert event["event"] == "load-failed"
    assert "deny" in event["error"]
    assert node.read_marker() == marker
    assert not running_lab.probe([Probe("pod1", "tcp", BLOCKED4, 80, 1.0)])[0].ok


def test_agent_applies_changes_as_elements_and_repairs_a_removed_table(
    running_lab: lab.Lab, tmp_path: Path
) -> None:
    t = running_lab.topology
    node = NftCli(t.node_ns)
    folder = tmp_path / "manifests"
    folder.mkdir()
    (folder / "policies.yaml").write_text(
        BLOCKING.format(first="Log", second="Deny") + "---\n" + ALLOW
    )
    (folder / "set.yaml").write_text(GNS.format(nets=f"{BLOCKED4}/32"))
    clock = [0.0]
    events: list[dict[str, Any]] = []
    runner = agent.Agent(
        node,
        folder,
        None,
        log=events.append,
        interval=0.2,
        verify_interval=10.0,
        clock=lambda: clock[0],
    )
    first = runner.step()
    assert first is not None
    assert first["kind"] == "replace"
    assert not node_connects(running_lab, BLOCKED4)
    assert node_connects(running_lab, "203.0.113.12")
    (folder / "set.yaml").write_text(GNS.format(nets=f"{BLOCKED4}/32, 203.0.113.12/32"))
    second = runner.step()
    assert second is not None
    assert second["kind"] == "elements", second
    assert not node_connects(running_lab, "203.0.113.12")
    assert runner.step() is None  # nothing changed
    node.flush()
    clock[0] += 11.0
    repaired = runner.step()
    assert repaired is not None
    assert repaired["event"] == "repaired"
    assert not node_connects(running_lab, "203.0.113.12")
    assert node_connects(running_lab, ALLOWED4)


# --------------------------------------------------------------- adapter, no lab needed


@pytest.mark.parametrize("case", sorted(p.stem for p in GOLDEN.glob("*.nft")))
def test_golden_scripts_pass_nft_check(scratch_ns: str, case: str) -> None:
    NftCli(scratch_ns).check((GOLDEN / f"{case}.nft").read_text())


def test_adapter_round_trip_element_updates_and_flush_touch_only_our_table(
    scratch_ns: str,
) -> None:
    from egressguard.cidr.sets import CidrSet
    from egressguard.nft import diff, ir

    nft = NftCli(scratch_ns)
    other = (
        "table inet someone_else {\n\tchain c {\n\t\ttype filter hook output priority 10; "
        "policy accept;\n\t}\n}\n"
    )
    subprocess.run(
        ["ip", "netns", "exec", scratch_ns, "nft", "-f", "-"],
        input=other.encode(),
        check=True,
        timeout=30,
    )

    def table(v4: list[str], v6: list[str]) -> ir.Table:
        return ir.Table(
            (ir.IntervalSet("s4", 4, CidrSet(4, v4)), ir.IntervalSet("s6", 6, CidrSet(6, v6))),
            (
                ir.Chain(
                    "out",
                    (
                        ir.Rule((ir.AddrInSet("daddr", 4, "s4"),), verdict=ir.DROP),
                        ir.Rule((ir.AddrInSet("daddr", 6, "s6"),), verdict=ir.DROP),
                    ),
                    ir.Hook("output"),
                ),
            ),
        )

    # Ranges at both ends of each family: no end element for the last address, and a start
    # at 0 next to the interval-end element nft adds at 0 on a full load.
    old = table(
        ["10.0.0.0/8", "203.0.113.0/25", "255.255.255.0/24"], ["2001:db8::/48", "ffff:ffff::/32"]
    )
    new = table(
        ["0.0.0.0/8", "10.0.0.0/9", "203.0.113.0/24", "255.255.255.255/32"],
        ["::/16", "2001:db8::/47", "2001:db8:5::1/128"],
    )
    nft.apply(render.script(old))
    plan = diff.plan(old, new)
    assert plan.kind == "elements"
    nft.update(plan)
    kernel = state.from_json(nft.list_table() or {})
    assert kernel.set_elements() == {
        "s4": (4, new.sets[0].elements),
        "s6": (6, new.sets[1].elements),
    }
    assert nft.read_marker() == plan.marker
    assert diff.plan(kernel, new).kind == "unchanged"
    # A stale plan is refused as a whole: nothing changes.
    with pytest.raises(DataplaneError, match="nothing was changed"):
        nft.update(diff.plan(old, table(["10.0.0.0/8"], ["2001:db8::/48"])))
    assert state.from_json(nft.list_table() or {}).set_elements() == kernel.set_elements()
    assert nft.flush() is True
    assert nft.list_table() is None
    assert nft.flush() is False
    tables = subprocess.run(
        ["ip", "netns", "exec", scratch_ns, "nft", "list", "tables"],
        check=True,
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout
    assert "someone_else" in tables


def test_one_netlink_socket_serves_every_update_until_the_namespace_is_replaced(
    scratch_ns: str,
) -> None:
    from egressguard.cidr.sets import CidrSet
    from egressguard.nft import diff, ir

    def table(v4: list[str]) -> ir.Table:
        return ir.Table(
            (ir.IntervalSet("s4", 4, CidrSet(4, v4)),),
            (
                ir.Chain(
                    "out",
                    (ir.Rule((ir.AddrInSet("daddr", 4, "s4"),), verdict=ir.DROP),),
                    ir.Hook("output"),
                ),
            ),
        )

    one, two = table(["203.0.113.0/25", "198.51.100.7/32"]), table(["203.0.113.0/24"])
    nft = NftCli(scratch_ns)
    try:
        nft.apply(render.script(one))
        for i in range(10):
            old, new = (one, two) if i % 2 == 0 else (two, one)
            nft.update(diff.plan(old, new))
            assert nft.read_marker() == render.table_marker(new)
        assert nft.link.opened == 1
        # A refused update (the plan is stale) changes nothing and closes the socket, so that
        # answers still queued for it are never read as answers to the next request.
        with pytest.raises(DataplaneError, match="nothing was changed"):
            nft.update(diff.plan(two, one))
        assert nft.read_marker() == render.table_marker(one)
        assert nft.link.opened == 2
        # The same name, a new namespace: the old socket would still talk to the old one.
        subprocess.run(["ip", "netns", "del", scratch_ns], check=True, timeout=30)
        subprocess.run(["ip", "netns", "add", scratch_ns], check=True, timeout=30)
        assert nft.read_marker() is None
        nft.apply(render.script(one))
        nft.update(diff.plan(one, two))
        kernel = state.from_json(nft.list_table() or {})
        assert kernel.set_elements() == {"s4": (4, two.sets[0].elements)}
        assert nft.link.opened == 3
    finally:
        nft.close()
