"""`egressguard logs parse` in-process: outputs, issues, filters and exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from egressguard.cli import main

REF = (
    "2025-01-19T16:13:46.406155+00:00 aks-1 kernel: [ 6236.551431] calico-packet: IN=azv1 "
    "OUT=eth0 SRC=10.244.0.179 DST=203.0.113.9 LEN=60 TOS=0x00 PREC=0x00 TTL=63 ID=27413 DF "
    "PROTO=TCP SPT=53940 DPT=443 WINDOW=64240 RES=0x00 SYN URGP=0 "
)
UFW = REF.replace("calico-packet:", "[UFW BLOCK]")
FORGED = REF.replace(" kernel: ", " root: ")
NOISE = "2025-01-19T16:13:47Z aks-1 sshd[7]: session opened"


@pytest.fixture
def log_file(tmp_path: Path) -> Path:
    path = tmp_path / "syslog"
    path.write_text("\n".join([REF, NOISE, UFW, FORGED, REF.replace("DPT=443", "DPT=80")]) + "\n")
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["logs", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_json_events_and_exit_status(capsys: pytest.CaptureFixture[str], log_file: Path) -> None:
    code, out, err = run(capsys, "parse", str(log_file))
    events = [json.loads(x) for x in out.splitlines()]
    assert [e["line_no"] for e in events] == [1, 3, 5]
    first = events[0]
    assert {k: first[k] for k in ("time", "host", "prefix", "src", "dst", "proto", "dst_port")} == {
        "time": "2025-01-19T16:13:46.406155+00:00",
        "host": "aks-1",
        "prefix": "calico-packet",
        "src": "10.244.0.179",
        "dst": "203.0.113.9",
        "proto": "TCP",
        "dst_port": 443,
    }
    assert first["source"] == str(log_file)
    assert code == 1  # line 4 was rejected
    assert "1 line(s) rejected" in err


def test_prefix_filter_and_issues_on_stderr(
    capsys: pytest.CaptureFixture[str], log_file: Path
) -> None:
    code, out, err = run(capsys, "parse", str(log_file), "--prefix", "calico-packet", "--issues")
    assert [json.loads(x)["dst_port"] for x in out.splitlines()] == [443, 80]
    issues = [json.loads(x) for x in err.splitlines()]
    assert len(issues) == 1
    assert issues[0]["line_no"] == 4
    assert issues[0]["code"] == "not-kernel"
    assert "'root'" in issues[0]["issue"]
    assert code == 1


def test_table_output(capsys: pytest.CaptureFixture[str], log_file: Path) -> None:
    _, out, _ = run(capsys, "parse", str(log_file), "-o", "table", "--prefix", "calico-packet")
    header, *rows = out.splitlines()
    assert header.split()[:4] == ["LINE", "TIME", "HOST", "PREFIX"]
    assert len(rows) == 2
    assert rows[0].split() == [
        "1", "2025-01-19T16:13:46.406155+00:00", "aks-1", "calico-packet", "azv1", "eth0", "TCP",
        "10.244.0.179", "53940", "203.0.113.9", "443", "DF", "SYN",
    ]  # fmt: skip


def test_clean_input_exits_zero_with_stats(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "kern.log"
    path.write_text(REF + "\n" + NOISE + "\n")
    code, out, err = run(capsys, "parse", str(path), "--stats")
    assert code == 0
    assert len(out.splitlines()) == 1
    assert json.loads(err)["stats"] == {
        "events": 1,
        "filtered": 0,
        "issues": 0,
        "lines": 2,
        "skipped": 1,
    }


def test_stdin(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    import io
    import sys

    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO((REF + "\n").encode())))
    code, out, _ = run(capsys, "parse", "-")
    assert code == 0
    assert json.loads(out)["source"] == "<stdin>"


def test_usage_errors(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run(capsys, "parse", str(tmp_path / "missing"))
    assert code == 2
    assert "no such file" in err
    code, _, err = run(capsys, "parse", "--prefix", 'bad"%n', str(tmp_path))
    assert code == 2
    code, _, err = run(capsys, "follow", "--source", "nowhere")
    assert code == 2
    assert "file:PATH" in err


def test_help_teaches_with_examples(capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("parse", "follow"):
        with pytest.raises(SystemExit) as done:
            main(["logs", command, "--help"])
        assert done.value.code == 0
        out = capsys.readouterr().out
        assert "examples:" in out
        assert "egressguard logs " + command in out


def test_readme_examples_run(capsys: pytest.CaptureFixture[str], log_file: Path) -> None:
    """Every ``egressguard logs parse`` line of the README runs, on a syslog of our own."""
    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text()
    commands = [
        line.split("#")[0].split()
        for line in readme.splitlines()
        if line.startswith("egressguard logs parse ")
    ]
    assert len(commands) >= 2
    for words in commands:
        argv = [str(log_file) if a == "/var/log/syslog" else a for a in words[2:]]
        code, out, err = run(capsys, *argv)
        assert code == 1, err  # the file has one forged line
        assert "203.0.113.9" in out
