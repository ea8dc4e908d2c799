"""``egressguard lab run`` for real: namespaces, nftables in the node, probes from the pods,
the kernel's calico-packet lines from /dev/kmsg.

Each test uses its own random prefix and state directory (so tests never collide with each
other or with a user's lab) and checks at the end that no namespace with its prefix remains.
``net.netfilter.nf_log_all_netns`` is set to 0 before each test and put back to what it was
after, so that "the run restored it" is a real observation (0 -> 1 -> 0). Traffic stays
between the lab's namespaces, on documentation addresses only.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from egressguard import calico
from egressguard.adapters import netns
from egressguard.app import lab, labrun
from egressguard.calico import evaluate as ev
from egressguard.calico.model import Action
from egressguard.errors import DataplaneError

sys.path.insert(0, str(Path(__file__).parent))
from labns import RUNNER, fresh_prefix, namespaces_with

pytestmark = [pytest.mark.root, pytest.mark.integration]

REPO = Path(__file__).resolve().parents[2]
BLOG = REPO / "examples" / "blog"
LAB_TIER = REPO / "examples" / "lab-tier" / "manifests"
SYSCTL = Path("/proc/sys/net/netfilter/nf_log_all_netns")


@pytest.fixture
def prefix(tmp_path: Path) -> Iterator[str]:
    """A fresh prefix; leftovers fail the test (and are removed)."""
    with fresh_prefix("r", tmp_path) as p:
        yield p


@pytest.fixture
def log_sysctl() -> Iterator[None]:
    """nf_log_all_netns is 0 for the test; its original value comes back afterwards."""
    original = SYSCTL.read_text().strip()
    SYSCTL.write_text("0\n")
    try:
        yield
    finally:
        SYSCTL.write_text(original + "\n")


def cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "egressguard", "lab", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=REPO,
    )


def run_json(prefix: str, state_dir: Path, *extra: str) -> tuple[int, dict[str, Any], str]:
    done = cli("run", "--prefix", prefix, "--state-dir", str(state_dir), "-o", "json", *extra)
    try:
        doc = json.loads(done.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"lab run printed no JSON (exit {done.returncode}): {done.stderr}")
    return done.returncode, doc, done.stderr


def assert_gone(prefix: str, state_dir: Path) -> None:
    assert namespaces_with(prefix) == []
    assert not lab.state_path(state_dir, prefix).exists()
    assert SYSCTL.read_text().strip() == "0", "nf_log_all_netns was not restored"


# ------------------------------------------------------------------------------------ runs


def test_the_bundled_example_blocks_logs_and_lets_the_rest_through(
    prefix: str, tmp_path: Path, log_sysctl: None
) -> None:
    code, doc, err = run_json(prefix, tmp_path)
    assert code == 0, err
    assert doc["ok"] is True
    assert doc["manifests"] == ["examples/blog"]
    # Progress on stderr, in order.
    steps = ["creating namespaces", "enforcing 2 policies, 1 network set", "probing 6 dest"]
    positions = [err.find(s) for s in steps]
    assert -1 not in positions, err
    assert positions == sorted(positions), err
    # The public addresses were moved, and only lab addresses were probed.
    moved = {a["original"]: a["lab"] for a in doc["addresses"] if a["action"] == "mapped"}
    assert set(moved) == {"217.160.0.92/32", "217.160.0.111/32", "217.160.223.1/32"}
    internet = set(doc["topology"]["inet"]["internet"])
    assert {p["dst"] for p in doc["probes"]} <= internet
    assert not any(p["dst"].startswith("217.") for p in doc["probes"])
    # Blocked probes: denied and logged; controls: allowed and not logged; both families.
    kinds = set()
    for p in doc["probes"]:
        blocked = p["destination"]["role"] in ("listed", "added")
        want = ("Deny", True) if blocked else ("Allow", False)
        assert (p["expected"]["verdict"], p["expected"]["logged"]) == want, p
        assert (p["observed"]["verdict"], p["observed"]["logged"]) == want, p
        assert p["matched"] is True
        kinds.add((blocked, p["proto"], ":" in p["dst"]))
    assert len(kinds) == 2 * 3 * 2  # blocked/control x tcp/udp/icmp x IPv4/IPv6
    # Every event is one of ours, from a lab pod through its cali interface, into the set.
    pods = {p["ipv4"]: p for p in doc["topology"]["pods"]} | {
        p["ipv6"]: p for p in doc["topology"]["pods"]
    }
    assert len(doc["events"]) >= doc["summary"]["expected_logged"]
    for event in doc["events"]:
        assert event["prefix"] == "calico-packet"
        assert event["set"] == "egress-traffic-blocking"
        pod = pods[event["src"]]
        assert event["in_iface"] == pod["interface"]
        assert event["in_iface"].startswith("cali")
        assert event["pod"] == f"{pod['namespace']}/{pod['name']}"
    assert doc["kernel_log"]["sysctl_previous"] == "0"
    assert doc["kernel_log"]["sysctl_at_read"] == "1"
    assert doc["teardown"]["restored_sysctls"] == [
        {"ns": None, "key": "net.netfilter.nf_log_all_netns", "previous": "0"}
    ]
    assert_gone(prefix, tmp_path)


def test_log_after_deny_logs_nothing_and_the_run_says_why(
    prefix: str, tmp_path: Path, log_sysctl: None
) -> None:
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    (manifests / "set.yaml").write_text((BLOG / "globalnetworkset.yaml").read_text())
    policies = (BLOG / "globalnetworkpolicies.yaml").read_text()
    swapped = policies.replace("- action: Log", "- action: TMP").replace(
        "- action: Deny", "- action: Log"
    )
    (manifests / "policies.yaml").write_text(swapped.replace("- action: TMP", "- action: Deny"))
    state = tmp_path / "state"
    done = cli("run", "--prefix", prefix, "--state-dir", str(state), "--manifests", str(manifests))
    # The evaluator predicts "not logged", the kernel logs nothing: the dataplane does what the
    # manifests say, so the run is OK -- and lint says that this is not what was meant.
    assert done.returncode == 0, done.stdout + done.stderr
    assert "kernel log events: none" in done.stdout
    assert "log-never-fires" in done.stdout
    last = done.stdout.rstrip().splitlines()[-1]
    assert last.startswith("OK: 48 probes: 48 as expected (32 denied, 0 logged")
    assert "lint: 1 errors" in last
    assert_gone(prefix, state)


def test_the_tier_example_keeps_kubernetes_isolation_after_pass(
    prefix: str, tmp_path: Path, log_sysctl: None
) -> None:
    code, doc, err = run_json(prefix, tmp_path, "--manifests", str(LAB_TIER))
    assert code == 0, err
    by = {
        (p["pod_name"], p["destination"]["role"], p["proto"], p["port"], ":" in p["dst"]): p
        for p in doc["probes"]
    }
    # The blocklist's tier denies and logs for both pods ...
    for pod in ("default/web", "payments/api"):
        hit = by[(pod, "listed", "tcp", 443, False)]["observed"]
        assert (hit["verdict"], hit["logged"]) == ("Deny", True)
    # ... then passes: the Kubernetes NetworkPolicy of payments/api allows only 443 and 53 ...
    for key, verdict in [
        (("payments/api", "control", "tcp", 443, False), "Allow"),
        (("payments/api", "control", "tcp", 80, False), "Deny"),
        (("payments/api", "control", "udp", 53, True), "Allow"),
        (("payments/api", "control", "icmp", None, True), "Deny"),
        (("default/web", "control", "tcp", 80, False), "Allow"),  # ... and web is not isolated
    ]:
        observed = by[key]["observed"]
        assert (observed["verdict"], observed["logged"]) == (verdict, False), key
    assert_gone(prefix, tmp_path)


def test_keep_leaves_the_lab_up_until_lab_down(
    prefix: str, tmp_path: Path, log_sysctl: None
) -> None:
    code, doc, err = run_json(prefix, tmp_path, "--keep")
    assert code == 0, err
    assert (doc["kept"], doc["teardown"]) == (True, None)
    status = cli("status", "--prefix", prefix, "--state-dir", str(tmp_path), "-o", "json")
    assert status.returncode == 0, status.stdout
    assert json.loads(status.stdout)["healthy"] is True
    table = subprocess.run(
        ["ip", "netns", "exec", f"{prefix}node", "nft", "list", "table", "inet", "egressguard"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    assert "203.0.113.92" in table
    assert SYSCTL.read_text().strip() == "1", "kept lab keeps logging on"
    down = cli("down", "--prefix", prefix, "--state-dir", str(tmp_path))
    assert down.returncode == 0, down.stderr
    assert "restored 1 sysctl(s)" in down.stdout
    assert_gone(prefix, tmp_path)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_during_the_run_removes_everything(
    prefix: str, tmp_path: Path, log_sysctl: None, sig: signal.Signals
) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "egressguard", "lab", "run", "--prefix", prefix,
         "--state-dir", str(tmp_path), "--timeout", "5"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )  # fmt: skip
    assert proc.stderr is not None
    seen = ""
    deadline = time.monotonic() + 60
    while "probing" not in seen and time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stderr], [], [], 1.0)
        if ready:
            line = proc.stderr.readline()
            if not line:
                break
            seen += line
    if "probing" not in seen:
        proc.kill()
        proc.communicate(timeout=30)
        pytest.fail(f"the run never reached its probes: {seen}")
    assert len(namespaces_with(prefix)) == 4
    os.kill(proc.pid, sig)
    _, rest = proc.communicate(timeout=60)
    assert proc.returncode == 130, seen + rest
    # What the teardown did, as it reports it (the sysctl itself is host-wide: another test
    # process may change it concurrently, so this test reads the run's own account).
    account = rf"lab '{prefix}' removed: 4 namespaces, \d+ process(es)?; "
    account += r"net\.netfilter\.nf_log_all_netns restored to 0\."
    assert re.search(account, rest), seen + rest
    assert namespaces_with(prefix) == []
    assert not lab.state_path(tmp_path, prefix).exists()


# ------------------------------------------------------------------------- through the API


class FailingNft:
    """The real runner, except that loading the ruleset fails: a failure in mid-run."""

    def run(
        self,
        ns: str | None,
        argv: Any,
        *,
        input: bytes | None = None,
        timeout: float = 30.0,
        check: bool = True,
    ) -> netns.CommandResult:
        if list(argv[:2]) == ["nft", "-f"]:
            raise DataplaneError("injected: nft -f failed")
        return RUNNER.run(ns, argv, input=input, timeout=timeout, check=check)


def test_a_failure_in_mid_run_removes_everything(
    prefix: str, tmp_path: Path, log_sysctl: None
) -> None:
    options = labrun.RunOptions(prefix=prefix, state_dir=tmp_path)
    prepared = labrun.prepare(calico.load_paths([BLOG]), options)
    with pytest.raises(DataplaneError, match="injected"):
        labrun.execute(prepared, options, runner=FailingNft())
    assert_gone(prefix, tmp_path)


def test_a_dataplane_that_disagrees_with_the_expectation_fails_the_run(
    prefix: str, tmp_path: Path, log_sysctl: None
) -> None:
    """The comparison is not vacuous: with expectations of an allow-all world, the real
    dataplane's drops and log lines are reported as differences."""
    options = labrun.RunOptions(prefix=prefix, state_dir=tmp_path, timeout=1.0)
    prepared = labrun.prepare(calico.load_paths([BLOG]), options)
    allow_all = tuple(ev.Verdict(Action.ALLOW, False, "profile") for _ in prepared.probes)
    report = labrun.execute(
        dataclasses.replace(prepared, verdicts=allow_all), options, runner=RUNNER
    )
    assert not report.ok
    blocked = [o for o in report.outcomes if o.lab_probe.destination.role != "control"]
    assert {o.matched for o in blocked} == {False}
    for o in blocked:
        assert o.differences()[0] == "expected Allow, observed Deny (timeout)"
        assert o.differences()[1].startswith("expected no log line")
    assert all(o.matched for o in report.outcomes if o.lab_probe.destination.role == "control")
    text = labrun.render_text(report)
    assert text.rstrip().splitlines()[-1].startswith("FAILED: 48 probes: 32 differ")
    assert_gone(prefix, tmp_path)
