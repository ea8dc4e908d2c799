"""The lab's command line (help, usage errors) and its Python API surface."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from egressguard.adapters import netns, probe
from egressguard.adapters.probe import Probe
from egressguard.app import lab, labrun
from egressguard.cli import build_parser, main

EXPORTS = {
    "egressguard.adapters.netns": {
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
    },
    "egressguard.adapters.probe": {
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
    },
}


@pytest.mark.parametrize("module_name", sorted(EXPORTS))
def test_exported_members(module_name: str) -> None:
    module = importlib.import_module(module_name)
    assert set(module.__all__) == EXPORTS[module_name]
    for name in module.__all__:
        assert hasattr(module, name)


def test_app_lab_exports_exist() -> None:
    for name in lab.__all__:
        assert hasattr(lab, name), name


def test_the_commands_defaults_are_the_labs_own() -> None:
    """cli.lab writes its defaults out (importing the lab would slow every command's start-up);
    they must stay the ones app.lab and labrun.RunOptions use."""
    args = build_parser().parse_args(["lab", "run"])
    run = labrun.RunOptions()
    assert args.prefix == run.prefix == lab.DEFAULT_PREFIX
    assert Path(args.state_dir) == run.state_dir == lab.DEFAULT_STATE_DIR
    assert args.timeout == run.timeout
    assert args.log_wait == run.log_wait
    assert args.log_prefix == run.log_prefix
    assert args.ipv6_coverage == run.ipv6_coverage
    assert args.max_destinations == run.max_destinations


@pytest.mark.parametrize(
    "argv",
    [
        ["lab", "--help"],
        ["lab", "up", "--help"],
        ["lab", "status", "--help"],
        ["lab", "down", "--help"],
    ],
)
def test_every_lab_command_teaches_with_examples(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "examples:" in out
    assert "--prefix" in out or argv == ["lab", "--help"]


def test_lab_without_a_subcommand_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lab"]) == 2
    assert "up" in capsys.readouterr().err


def test_a_bad_prefix_is_refused_before_anything_runs(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert main(["lab", "up", "--prefix", "x; reboot", "--state-dir", str(tmp_path)]) == 2
    assert "prefix" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_status_of_a_lab_that_does_not_exist(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert main(["lab", "status", "--prefix", "eg-tnone-", "--state-dir", str(tmp_path)]) == 1
    assert "no lab with prefix 'eg-tnone-'" in capsys.readouterr().out


def test_lab_probe_batches_per_pod_namespace_and_keeps_input_order(tmp_path: Path) -> None:
    topo = lab.default_topology("eg-t9-")
    blocked = str(topo.internet4[0])
    fake = probe.ScriptedProbeRunner(
        lambda ns, p: (False, "timeout") if p.dst == blocked else (True, "ok")
    )
    the_lab = lab.Lab(
        topo,
        lab.LabState(prefix=topo.prefix),
        runner=netns.RecordingNetnsRunner(),
        state_dir=tmp_path,
        probe_runner=fake,
    )
    probes = [
        Probe("pod2", "icmp", blocked),
        Probe("pod1", "tcp", str(topo.internet6[0]), 443),
        Probe("pod2", "udp", str(topo.internet4[1]), 53),
    ]
    results = the_lab.probe(probes)
    assert [r.probe for r in results] == probes
    assert [r.ok for r in results] == [False, True, True]
    assert sorted((ns, len(ps)) for ns, ps in fake.calls) == [("eg-t9-pod1", 1), ("eg-t9-pod2", 2)]
