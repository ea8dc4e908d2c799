"""The lab's state journal and the crash-safe state file."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from egressguard.adapters import netns
from egressguard.app import lab
from egressguard.errors import DataplaneError


def _state() -> lab.LabState:
    return lab.LabState(
        prefix="eg-t1-",
        status="up",
        namespaces=["eg-t1-pod1", "eg-t1-node"],
        processes=[netns.ProcessRef(4242, 987654, "eg-t1-inet", "servers")],
        sysctls=[
            lab.SysctlChange(None, "net.netfilter.nf_log_all_netns", "0"),
            lab.SysctlChange("eg-t1-node", "net.ipv4.ip_forward", "0"),
        ],
        topology=lab.default_topology("eg-t1-").to_json(),
        created_at=1700000000.5,
    )


def test_state_round_trips_through_json_text() -> None:
    state = _state()
    again = lab.LabState.from_json(json.loads(json.dumps(state.to_json())))
    assert again == state


def test_a_state_file_of_another_version_is_refused() -> None:
    doc = _state().to_json()
    doc["version"] = 99
    with pytest.raises(DataplaneError, match="version"):
        lab.LabState.from_json(doc)


def test_a_damaged_state_document_is_refused_with_a_hint() -> None:
    doc = _state().to_json()
    doc["processes"] = [{"pid": "not a number", "starttime": 1, "ns": "x", "role": "y"}]
    with pytest.raises(DataplaneError, match="damaged") as info:
        lab.LabState.from_json(doc)
    assert "lab down" in (info.value.hint or "")


def test_state_file_save_load_remove(tmp_path: Path) -> None:
    sf = netns.StateFile(tmp_path / "sub" / "lab-x.json")
    assert sf.load() is None
    sf.save({"a": 1})
    assert sf.load() == {"a": 1}
    sf.save({"a": 2, "b": [1, 2]})
    assert sf.load() == {"a": 2, "b": [1, 2]}
    assert os.listdir(sf.path.parent) == ["lab-x.json"], "no temporary file left behind"
    umask = os.umask(0)
    os.umask(umask)
    # others may read it, so `lab status` works without root
    assert sf.path.stat().st_mode & 0o777 == 0o644 & ~umask
    assert sf.remove() is True
    assert sf.remove() is False
    assert sf.load() is None


def test_a_corrupt_state_file_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "lab-x.json"
    path.write_text('{\n  "prefix": "x",\n  oops\n}\n')
    with pytest.raises(DataplaneError, match=r"lab-x\.json:3:"):
        netns.StateFile(path).load()


def test_process_refs_identify_this_process_and_notice_a_reused_pid() -> None:
    me = netns.process_ref(os.getpid(), ns="host", role="test")
    assert netns.process_alive(me)
    impostor = netns.ProcessRef(me.pid, me.starttime + 1, me.ns, me.role)
    assert not netns.process_alive(impostor), "same pid, other start time: not ours"
    assert netns.ProcessRef.from_json(json.loads(json.dumps(me.to_json()))) == me
