"""``lab run`` without a kernel: the lab copy of the manifests, the probe plan, the expectations,
the comparison with what was observed, the text report, the command's usage errors, and the
lab-tier example being the build of its config.

The rewrite is held to laws rather than to its own output: a moved CIDR keeps its prefix
length, containment and disjointness between entries survive, and (the point of it all) the
evaluator gives every lab address the verdict its original address gets from the original
manifests. The real run (namespaces, nftables, /dev/kmsg) is in
tests/integration/test_lab_run.py.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import random
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from egressguard import calico
from egressguard.adapters import kmsgcursor
from egressguard.adapters.probe import ProbeResult
from egressguard.app import labrun
from egressguard.calico import evaluate as ev
from egressguard.cli import main
from egressguard.errors import InputError
from egressguard.logs import Event, LogParser

REPO = Path(__file__).resolve().parents[3]
BLOG = REPO / "examples" / "blog"
LAB_TIER = REPO / "examples" / "lab-tier"
INTERNET4 = ipaddress.IPv4Network("203.0.113.0/24")
INTERNET6 = ipaddress.IPv6Network("2001:db8:203:113::/64")

SET = """\
apiVersion: crd.projectcalico.org/v1
kind: GlobalNetworkSet
metadata:
  name: blocked
  labels: {{policy: blocked}}
spec:
  nets: [{nets}]
"""
POLICIES = """\
apiVersion: crd.projectcalico.org/v1
kind: GlobalNetworkPolicy
metadata: {{name: blocking}}
spec:
  order: 0
  types: [Egress]
  egress:
    - action: Allow
      destination: {{nets: [{exception}]}}
    - action: {first}
      destination: {{selector: policy == 'blocked'}}
    - action: {second}
      destination: {{selector: policy == 'blocked'}}
---
apiVersion: crd.projectcalico.org/v1
kind: GlobalNetworkPolicy
metadata: {{name: allow}}
spec:
  order: 1000
  types: [Egress]
  egress:
    - action: Allow
"""


def scenario(
    nets: list[str], *, exception: str = "192.0.2.99/32", first: str = "Log", second: str = "Deny"
) -> calico.Manifests:
    text = SET.format(nets=", ".join(f"'{n}'" for n in nets)) + "---\n"
    text += POLICIES.format(exception=exception, first=first, second=second)
    loaded = calico.load_text(text, "scenario.yaml")
    assert loaded.ok, loaded.problems
    return loaded


def rewrite(manifests: calico.Manifests, **kw: bool) -> labrun.LabRewrite:
    return labrun.rewrite_for_lab(manifests, internet4=INTERNET4, internet6=INTERNET6, **kw)


def lab_nets(rw: labrun.LabRewrite) -> dict[str, str]:
    return {m.original: m.lab for m in rw.mappings if m.original is not None}


# ----------------------------------------------------------------------------- the rewrite


def test_the_blog_addresses_move_into_the_lab_internet_and_nothing_public_remains() -> None:
    original = calico.load_paths([BLOG])
    rw = rewrite(original)
    before = {n for s in original.network_sets for n in s.nets}
    after = [ipaddress.ip_network(n) for s in rw.manifests.network_sets for n in s.nets]
    assert {m.original for m in rw.mappings if m.action == "mapped"} == before
    for net in after:
        inside = INTERNET4 if net.version == 4 else INTERNET6
        assert net.subnet_of(inside), net  # type: ignore[arg-type]
    for original_text, lab_text in lab_nets(rw).items():
        assert (
            ipaddress.ip_network(original_text).prefixlen
            == ipaddress.ip_network(lab_text).prefixlen
        )
    # The readable placement: a /32 keeps its last octet when that place is free.
    assert lab_nets(rw)["217.160.0.92/32"] == "203.0.113.92/32"
    # The lab copy names the same policies; the original manifests are untouched.
    assert [p.name for p in rw.manifests.policies] == [p.name for p in original.policies]
    assert {n for s in original.network_sets for n in s.nets} == before


def test_ipv6_coverage_is_added_only_to_ipv4_only_sets_and_can_be_turned_off() -> None:
    rw = rewrite(scenario(["217.160.0.92/32"]))
    added = [m for m in rw.mappings if m.action == "added"]
    assert len(added) == 1
    assert "IPv6 coverage" in added[0].reason
    assert ipaddress.ip_network(added[0].lab).subnet_of(INTERNET6)
    (gns,) = rw.manifests.network_sets
    assert added[0].lab in gns.nets
    off = rewrite(scenario(["217.160.0.92/32"]), ipv6_coverage=False)
    assert [m for m in off.mappings if m.action == "added"] == []
    # A set that has IPv6 already gets nothing.
    with_v6 = rewrite(scenario(["217.160.0.92/32", "2a01:238:20a:202::92/128"]))
    assert [m for m in with_v6.mappings if m.action == "added"] == []
    moved6 = lab_nets(with_v6)["2a01:238:20a:202::92/128"]
    assert ipaddress.ip_network(moved6).subnet_of(INTERNET6)


@pytest.mark.parametrize(
    ("entry", "reason"),
    [
        ("203.0.113.50/32", "documentation range"),
        ("10.0.0.0/8", "private"),
        ("169.254.169.254/32", "link-local"),
        ("0.0.0.0/0", "whole address space"),
        ("fd00:ec2::254/128", "unique local"),
    ],
)
def test_lab_and_non_public_addresses_are_kept_as_written(entry: str, reason: str) -> None:
    rw = rewrite(scenario(["217.160.0.92/32", entry]))
    (kept,) = [m for m in rw.mappings if m.original == entry]
    assert (kept.action, kept.lab) == ("kept", entry)
    assert reason in kept.reason


def test_a_cidr_larger_than_the_lab_internet_is_refused_naming_it() -> None:
    with pytest.raises(InputError) as caught:
        rewrite(scenario(["217.160.0.92/32", "217.0.0.0/8", "2a01::/16"]))
    message = caught.value.message
    assert "217.0.0.0/8" in message
    assert "2a01::/16" in message
    assert "GlobalNetworkSet blocked" in message
    assert "lab-tier" in (caught.value.hint or "")


def test_entries_that_do_not_fit_together_are_refused() -> None:
    # Two /24s: each alone fits the lab's /24, both together cannot.
    with pytest.raises(InputError, match="no room"):
        rewrite(scenario(["217.160.0.0/24", "217.161.0.0/24"]))


def test_rule_nets_and_kubernetes_ip_blocks_move_with_the_same_mapping() -> None:
    text = """\
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: to-partner, namespace: payments}
spec:
  podSelector: {}
  policyTypes: [Egress]
  egress:
    - to: [{ipBlock: {cidr: 217.160.0.0/28, except: [217.160.0.8/29]}}]
"""
    loaded = scenario(["217.160.0.1/32"], exception="217.160.0.2/32") + calico.load_text(text)
    rw = rewrite(loaded)
    moved = lab_nets(rw)
    (knp,) = rw.manifests.kubernetes_network_policies
    block = knp.egress[0].peers[0].ip_block
    assert block is not None
    assert (block.cidr, block.except_) == (moved["217.160.0.0/28"], (moved["217.160.0.8/29"],))
    (policy,) = [p for p in rw.manifests.policies if p.name == "blocking"]
    assert policy.egress[0].destination.nets == (moved["217.160.0.2/32"],)
    where = next(m.where for m in rw.mappings if m.original == "217.160.0.2/32")
    assert where == ("GlobalNetworkPolicy blocking spec.egress[0].destination.nets",)
    # The converted Calico view of the Kubernetes policy uses the lab addresses too.
    (converted,) = rw.manifests.converted
    assert moved["217.160.0.0/28"] in converted.egress[0].destination.nets


PUBLIC_FIRST_OCTETS = [o for o in range(1, 224) if o not in (10, 100, 127, 169, 172, 192, 198)]


@st.composite
def public_cidrs(draw: st.DrawFn) -> list[str]:
    """Up to four outer public blocks of /26-/32 (they always fit a /24 together), each with
    optional nested entries."""
    out: list[ipaddress.IPv4Network] = []
    for _ in range(draw(st.integers(1, 4))):
        rest = draw(st.lists(st.integers(0, 255), min_size=3, max_size=3))
        octets = [draw(st.sampled_from(PUBLIC_FIRST_OCTETS)), *rest]
        length = draw(st.integers(26, 32))
        outer = ipaddress.ip_network(f"{'.'.join(map(str, octets))}/{length}", strict=False)
        if any(outer.overlaps(o) for o in out):
            continue
        out.append(outer)
        for _ in range(draw(st.integers(0, 2))):
            if outer.prefixlen == 32:
                break
            sub = draw(st.integers(outer.prefixlen + 1, 32))
            subnets = list(outer.subnets(new_prefix=sub))
            out.append(draw(st.sampled_from(subnets)))
    return sorted({str(n) for n in out})


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(nets=public_cidrs(), seed=st.integers(0, 2**32 - 1))
def test_the_rewrite_keeps_structure_and_every_verdict(nets: list[str], seed: int) -> None:
    # One entry doubles as a rule's exception (Allow before the Log/Deny): its containment in
    # the set's entries decides verdicts, so the law covers rule nets too.
    exception = nets[seed % len(nets)]
    original = scenario(nets, exception=exception)
    rw = rewrite(original, ipv6_coverage=False)
    moved = lab_nets(rw)
    parsed = {o: (ipaddress.ip_network(o), ipaddress.ip_network(moved[o])) for o in nets}
    for a_old, a_new in parsed.values():
        assert a_new.prefixlen == a_old.prefixlen
        assert a_new.subnet_of(INTERNET4)  # type: ignore[arg-type]
        for b_old, b_new in parsed.values():
            assert a_old.subnet_of(b_old) == a_new.subnet_of(b_new)  # type: ignore[arg-type]
            assert a_old.overlaps(b_old) == a_new.overlaps(b_new)
    # Semantics: any lab address inside a moved entry gets the verdict (and logging) its
    # original address gets from the original manifests.
    before, after = ev.compile_plan(original), ev.compile_plan(rw.manifests)
    pod = ev.Endpoint.pod({"app": "web"}, "default", ips=["198.51.100.11"])
    rng = random.Random(seed)
    for _, lab_net in parsed.values():
        lab_address = str(lab_net.network_address + rng.randrange(lab_net.num_addresses))
        original_address = rw.original_of(lab_address)
        assert original_address is not None
        want = before.evaluate(pod, ev.Flow(dst=original_address, dst_port=443), trace=False)
        got = after.evaluate(pod, ev.Flow(dst=lab_address, dst_port=443), trace=False)
        assert (got.action, got.logged) == (want.action, want.logged), (lab_address, nets)


def test_listed_entries_outside_the_lab_internet_are_enforced_and_said_not_probed() -> None:
    nets = ["217.160.0.92/32", "10.1.2.0/24", "192.0.2.77/32", "169.254.169.254/32"]
    prepared = labrun.prepare(scenario(nets))
    note = next(n for n in prepared.notes if "not probed" in n)
    # The scenario's exception rule (destination nets 192.0.2.99/32) is listed too.
    assert note.startswith("4 listed CIDR(s) outside the lab's internet")
    for entry in ("10.1.2.0/24", "192.0.2.77/32", "169.254.169.254/32", "192.0.2.99/32"):
        assert entry in note
    assert note.isascii()
    probed = {d.address for d in prepared.destinations}
    assert probed.isdisjoint({"10.1.2.1", "192.0.2.77", "169.254.169.254"})
    assert "10.1.2.0/24" in prepared.compiled.script()


def test_colliding_places_fall_back_to_free_blocks_never_onto_lab_entries() -> None:
    # Three entries want .92 (their own last octet); a kept lab entry holds .92 already.
    nets = ["217.160.0.92/32", "5.6.7.92/32", "88.1.2.92/32", "203.0.113.92/32", "203.0.113.0/30"]
    rw = rewrite(scenario(nets), ipv6_coverage=False)
    moved = lab_nets(rw)
    lab = [ipaddress.ip_network(moved[n]) for n in nets]
    assert moved["203.0.113.92/32"] == "203.0.113.92/32"
    assert moved["203.0.113.0/30"] == "203.0.113.0/30"
    for i, a in enumerate(lab):
        for b in lab[i + 1 :]:
            assert not a.overlaps(b), (a, b)


def test_thousands_of_entries_are_rewritten() -> None:
    """Sets with many small entries (an IPv6 feed) fit the lab's /64 and are handled in one
    pass; their placement is distinct and inside the lab's internet."""
    v6 = [f"2a01:238:{i:x}::{i:x}/128" for i in range(3000)]
    v4 = [f"45.{i // 256}.{i % 256}.1/32" for i in range(200)]
    rw = rewrite(scenario(v4 + v6), ipv6_coverage=False)
    moved = [ipaddress.ip_network(m.lab) for m in rw.mappings if m.action == "mapped"]
    assert len(moved) == len(set(moved)) == 3200
    assert all(n.subnet_of(INTERNET4 if n.version == 4 else INTERNET6) for n in moved)  # type: ignore[arg-type]


def test_the_rewrite_does_not_depend_on_the_order_of_entries() -> None:
    nets = ["217.160.0.92/32", "5.6.7.0/28", "5.6.7.4/30", "88.1.2.3/32", "217.160.223.1/32"]
    first = lab_nets(rewrite(scenario(nets)))
    for seed in range(5):
        shuffled = nets[:]
        random.Random(seed).shuffle(shuffled)
        assert lab_nets(rewrite(scenario(shuffled))) == first


# ------------------------------------------------------------------- destinations and plan


def test_the_blog_plan_probes_every_blocked_address_and_a_control_per_family() -> None:
    prepared = labrun.prepare(calico.load_paths([BLOG]))
    roles = [(d.role, d.family) for d in prepared.destinations]
    assert roles.count(("listed", 4)) == 3
    assert ("added", 6) in roles
    assert ("control", 4) in roles
    assert ("control", 6) in roles
    # 2 pods x 6 destinations x (tcp 443, tcp 80, udp 53, icmp)
    assert len(prepared.probes) == 2 * 6 * 4
    for lp, verdict in zip(prepared.probes, prepared.verdicts, strict=True):
        blocked = lp.destination.role != "control"
        assert (str(verdict.action), verdict.logged) == (
            ("Deny", True) if blocked else ("Allow", False)
        ), lp
        assert lp.destination.address in {str(a) for a in prepared.topology.internet}
    originals = {d.original for d in prepared.destinations if d.role == "listed"}
    assert originals == {"217.160.0.92", "217.160.0.111", "217.160.223.1"}
    # What the nft compiler got: exactly the lab copy, for the two pods as workloads.
    script = prepared.compiled.script()
    assert "217.160." not in script
    assert script.count('log prefix "calico-packet: "') == 4  # 2 pods x 2 families


def test_controls_avoid_listed_addresses() -> None:
    prepared = labrun.prepare(scenario(["203.0.113.10/32", "2001:db8:203:113::10/128"]))
    controls = {d.address for d in prepared.destinations if d.role == "control"}
    assert controls == {"203.0.113.20", "2001:db8:203:113::20"}


def test_many_listed_destinations_are_spread_and_said_so() -> None:
    nets = [f"203.0.113.{i}/32" for i in range(100, 140)]
    prepared = labrun.prepare(
        scenario(nets), labrun.RunOptions(max_destinations=5, ipv6_coverage=False)
    )
    listed = [d.address for d in prepared.destinations if d.role == "listed"]
    assert len(listed) == 5
    assert (listed[0], listed[-1]) == ("203.0.113.100", "203.0.113.139")
    assert any("probing 5 of 40" in n for n in prepared.notes)


def test_log_after_deny_is_predicted_not_logged_and_linted() -> None:
    prepared = labrun.prepare(scenario(["217.160.0.92/32"], first="Deny", second="Log"))
    assert not any(v.logged for v in prepared.verdicts)
    assert any(str(v.action) == "Deny" for v in prepared.verdicts)
    assert "log-never-fires" in {f.id for f in prepared.lint}


def test_manifests_with_problems_or_without_policies_are_refused() -> None:
    broken = calico.load_text(SET.format(nets="'10.0.0.300/24'"), "bad.yaml")
    with pytest.raises(InputError, match="problem"):
        labrun.prepare(broken)
    with pytest.raises(InputError, match="no policy"):
        labrun.prepare(calico.load_text(SET.format(nets="'203.0.113.5/32'"), "set.yaml"))


# ---------------------------------------------------------------------------- comparison


def kmsg_line(src: str, dst: str, proto: str, port: int | None, *, iface: str, seq: int) -> str:
    """A /dev/kmsg record as the kernel writes it for a Log rule (captured shape)."""
    family6 = ":" in dst
    if family6:
        src = ipaddress.ip_address(src).exploded
        dst = ipaddress.ip_address(dst).exploded
        ip = f"SRC={src} DST={dst} LEN=80 TC=0 HOPLIMIT=63 FLOWLBL=1 "
        mac = "ee:ee:ee:ee:ee:ee:02:e3:d7:4b:7d:b9:86:dd"
    else:
        ip = f"SRC={src} DST={dst} LEN=60 TOS=0x00 PREC=0x00 TTL=63 ID=1 DF "
        mac = "ee:ee:ee:ee:ee:ee:02:fc:bd:3e:64:9d:08:00"
    if proto == "tcp":
        l4 = f"PROTO=TCP SPT={40000 + seq} DPT={port} WINDOW=64240 RES=0x00 SYN URGP=0 "
    elif proto == "udp":
        l4 = f"PROTO=UDP SPT={40000 + seq} DPT={port} LEN=34 "
    elif family6:
        l4 = f"PROTO=ICMPv6 TYPE=128 CODE=0 ID={seq} SEQ=1 "
    else:
        l4 = f"PROTO=ICMP TYPE=8 CODE=0 ID={seq} SEQ=1 "
    return f"6,{seq},{1000000 + seq},-;calico-packet: IN={iface} OUT=eth0 MAC={mac} {ip}{l4}"


def test_compare_finds_every_kind_of_difference() -> None:
    prepared = labrun.prepare(scenario(["217.160.0.92/32"]))
    probes = list(prepared.probes)
    pods = {p.key: p for p in prepared.topology.pods}
    results = []
    lines = []
    for i, lp in enumerate(probes):
        blocked = lp.destination.role != "control"
        results.append(ProbeResult(lp.probe, not blocked, "ok" if not blocked else "timeout", 0.1))
        if blocked:
            pod = pods[lp.probe.pod]
            probe = lp.probe
            lines.append(
                kmsg_line(lp.src, probe.dst, probe.proto, probe.port, iface=pod.cali, seq=i)
            )
    parser = LogParser(prefix="calico-packet", boot_time=0.0)
    events = [e for n, line in enumerate(lines) if isinstance(e := parser.parse(line, n), Event)]
    assert len(events) == len(lines)
    outcomes, stray = labrun.compare(probes, prepared.verdicts, results, events)
    assert all(o.matched for o in outcomes)
    assert stray == []

    # 1. a blocked probe got through; 2. a blocked one was not logged; 3. a control was logged;
    # 4. a probe failed otherwise (refused) -- each is reported, with what differed.
    blocked = [i for i, lp in enumerate(probes) if lp.destination.role != "control"]
    control = [i for i, lp in enumerate(probes) if lp.destination.role == "control"]
    results[blocked[0]] = dataclasses.replace(results[blocked[0]], ok=True, detail="ok")
    dropped = events[blocked.index(blocked[1])]
    c0 = probes[control[0]]
    extra_line = kmsg_line(
        c0.src, c0.probe.dst, c0.probe.proto, c0.probe.port, iface=pods[c0.probe.pod].cali, seq=999
    )
    extra = parser.parse(extra_line, 999)
    assert isinstance(extra, Event)
    results[control[1]] = dataclasses.replace(results[control[1]], ok=False, detail="refused")
    foreign = parser.parse(
        kmsg_line("198.51.100.99", "203.0.113.200", "tcp", 22, iface="cali0", seq=1000)
    )
    assert isinstance(foreign, Event)
    changed = [e for e in events if e is not dropped] + [extra, foreign]
    outcomes, stray = labrun.compare(probes, prepared.verdicts, results, changed)
    differing = {i: o.differences() for i, o in enumerate(outcomes) if not o.matched}
    assert set(differing) == {blocked[0], blocked[1], control[0], control[1]}
    assert differing[blocked[0]] == ["expected Deny, observed Allow (ok)"]
    assert differing[blocked[1]] == ["expected a log line, none was read"]
    assert differing[control[0]] == ["expected no log line, 1 read"]
    assert differing[control[1]] == ["expected Allow, observed Error (refused)"]
    assert stray == [foreign]


def test_text_report_has_the_tables_and_can_be_plain_ascii() -> None:
    prepared = labrun.prepare(calico.load_paths([BLOG]))
    results = [
        ProbeResult(lp.probe, lp.destination.role == "control", "timeout", 2.0)
        for lp in prepared.probes
    ]
    report = labrun.RunReport(prepared, labrun.RunOptions())
    report.outcomes, _ = labrun.compare(prepared.probes, prepared.verdicts, results, [])
    text = labrun.render_text(report)
    assert "217.160.0.92/32   →  203.0.113.92/32" in text
    assert "added for IPv6 coverage" in text
    assert "✗" in text  # nothing was logged, every blocked probe differs
    assert text.rstrip().splitlines()[-1].startswith("FAILED: 48 probes: 32 differ")
    assert "differs: default/web tcp 217.160.0.92 → 203.0.113.92:443: expected a log line" in text
    plain = labrun.render_text(report, ascii_only=True)
    assert plain.isascii()
    doc = report.to_json()
    assert doc["ok"] is False
    assert doc["summary"]["mismatched"] == 32
    assert {a["original"] for a in doc["addresses"]} >= {"217.160.0.92/32"}


@pytest.mark.parametrize("module", [labrun, kmsgcursor])
def test_exports_exist(module: object) -> None:
    for name in module.__all__:  # type: ignore[attr-defined]
        assert hasattr(module, name), name


def test_lines_cursor_hands_out_its_records_once() -> None:
    cursor = kmsgcursor.LinesCursor(["a", "b"])
    assert cursor.read() == ["a", "b"]
    assert cursor.read(wait=0.01) == []
    cursor.close()
    assert cursor.closed


# ------------------------------------------------------------------------------- command


def test_run_help_teaches(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["lab", "run", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "examples:" in out
    assert "--manifests" in out
    assert "--keep" in out
    assert "IPv6 coverage" in out


@pytest.mark.parametrize(
    "args",
    [
        ["--timeout", "0"],
        ["--log-wait", "-1"],
        ["--max-destinations", "0"],
        ["--prefix", "bad prefix"],
        ["--manifests", "/nonexistent/dir"],
    ],
)
def test_run_usage_errors(args: list[str], tmp_path: Path) -> None:
    assert main(["lab", "run", "--state-dir", str(tmp_path), *args]) == 2


def test_run_refuses_manifests_too_large_for_the_lab_before_building(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "big.yaml"
    policies = POLICIES.format(exception="192.0.2.1/32", first="Log", second="Deny")
    path.write_text(SET.format(nets="'217.0.0.0/8'") + "---\n" + policies)
    code = main(["lab", "run", "--manifests", str(path), "--state-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 1
    assert "217.0.0.0/8" in err
    assert "examples/lab-tier" in err
    assert list(tmp_path.iterdir()) == [path]  # no lab, no state file


def test_lab_tier_example_is_the_build_of_its_config(tmp_path: Path) -> None:
    out = tmp_path / "egressguard"
    code = main(["build", "-c", str(LAB_TIER / "blocklist.yaml"), "-o", str(out)])
    assert code == 0
    shipped = LAB_TIER / "manifests" / "egressguard"
    names = sorted(p.name for p in shipped.iterdir())
    assert names == sorted(p.name for p in out.iterdir())
    for name in names:
        assert (out / name).read_bytes() == (shipped / name).read_bytes(), name


def test_lab_tier_example_shows_the_tier_design() -> None:
    prepared = labrun.prepare(calico.load_paths([LAB_TIER / "manifests"]))
    assert [m.action for m in prepared.rewrite.mappings] == ["kept"] * 3
    verdicts = {
        (lp.pod_name, lp.destination.role, lp.probe.proto, lp.probe.port, lp.destination.family): (
            str(v.action),
            v.logged,
        )
        for lp, v in zip(prepared.probes, prepared.verdicts, strict=True)
    }
    for pod in ("default/web", "payments/api"):
        assert verdicts[(pod, "listed", "tcp", 443, 4)] == ("Deny", True)
        assert verdicts[(pod, "listed", "tcp", 443, 6)] == ("Deny", True)
    # After the tier's Pass, the Kubernetes NetworkPolicy still isolates payments/api ...
    assert verdicts[("payments/api", "control", "tcp", 443, 4)] == ("Allow", False)
    assert verdicts[("payments/api", "control", "udp", 53, 4)] == ("Allow", False)
    assert verdicts[("payments/api", "control", "tcp", 80, 4)] == ("Deny", False)
    assert verdicts[("payments/api", "control", "icmp", None, 6)] == ("Deny", False)
    # ... and pods no policy isolates keep their default allow.
    assert verdicts[("default/web", "control", "tcp", 80, 4)] == ("Allow", False)


def test_docs_lab_md_lists_every_json_field() -> None:
    """docs/lab.md's JSON table names exactly the report's keys, and its summary counts."""
    prepared = labrun.prepare(calico.load_paths([BLOG]))
    report = labrun.RunReport(prepared, labrun.RunOptions())
    results = [ProbeResult(lp.probe, True, "ok", 0.1) for lp in prepared.probes]
    report.outcomes, _ = labrun.compare(prepared.probes, prepared.verdicts, results, [])
    doc = report.to_json()
    text = (REPO / "docs" / "lab.md").read_text(encoding="utf-8")
    table = text.split("## JSON output", 1)[1].split("\n## ", 1)[0]
    documented: set[str] = set()
    for line in table.splitlines():
        if line.startswith("| `"):
            cell = line.split("|")[1]
            documented |= {part.strip(" `") for part in cell.split(",")}
    assert documented == set(doc)
    summary_row = next(line for line in table.splitlines() if line.startswith("| `summary`"))
    for key in doc["summary"]:
        assert f"`{key}`" in summary_row, key
    probes_row = next(line for line in table.splitlines() if line.startswith("| `probes`"))
    for key in doc["probes"][0]:
        assert f"`{key}" in probes_row, key


def test_events_are_enriched_with_the_set_and_the_pod() -> None:
    prepared = labrun.prepare(calico.load_paths([LAB_TIER / "manifests"]))
    enricher = labrun.lab_enricher(prepared.rewrite.manifests, prepared.topology)
    parser = LogParser(prefix="calico-packet", boot_time=0.0)
    pod = prepared.topology.pod("pod2")
    for src, dst, want in [
        (str(pod.ipv4), "203.0.113.65", "lab-blocklist"),  # inside 203.0.113.64/30, v4 shard
        (str(pod.ipv6), "2001:db8:203:113::50", "lab-blocklist"),  # the v6 shard
        (str(pod.ipv4), "203.0.113.10", None),  # the control is in no set
    ]:
        event = parser.parse(kmsg_line(src, dst, "tcp", 443, iface=pod.cali, seq=1), 1)
        assert isinstance(event, Event)
        enriched = enricher.enrich(event)
        assert enriched.set == want
        assert labrun.RunReport.event_pod(enriched) == "payments/api"
