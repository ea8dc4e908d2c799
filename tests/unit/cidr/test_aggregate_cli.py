"""`egressguard aggregate`: inputs (files, stdin), output order and forms, rejected lines and exit
codes, --stats, -o json, and that the command imports nothing heavy."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from egressguard.cli import main


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def lists(tmp_path: Path) -> dict[str, Path]:
    good = tmp_path / "good.txt"
    good.write_text(
        "# a feed\n198.51.100.0/25\n2001:db8::/33\n198.51.100.128/25 ; SBL1\n192.0.2.7\n"
        "2001:db8:8000::/33\n::1\n"
    )
    bad = tmp_path / "bad.txt"
    bad.write_text("203.0.113.0/24\nexample.com\n203.0.113.9/33\n10.0.0.1/8\n")
    return {"good": good, "bad": bad}


def test_prints_the_minimal_list_ipv4_first(
    lists: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(["aggregate", str(lists["good"])], capsys)
    assert (code, err) == (0, "")
    assert out == "192.0.2.7\n198.51.100.0/24\n::1\n2001:db8::/32\n"


def test_family_filters_and_host_prefixes(
    lists: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["aggregate", "-4", str(lists["good"])], capsys)[1] == "192.0.2.7\n198.51.100.0/24\n"
    assert run(["aggregate", "-6", str(lists["good"])], capsys)[1] == "::1\n2001:db8::/32\n"
    _code, out, _ = run(["aggregate", "--prefix-hosts", str(lists["good"])], capsys)
    assert out.splitlines() == ["192.0.2.7/32", "198.51.100.0/24", "::1/128", "2001:db8::/32"]


def test_rejected_lines_are_reported_with_file_and_line_and_exit_1(
    lists: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    bad = str(lists["bad"])
    code, out, err = run(["aggregate", str(lists["good"]), bad], capsys)
    assert code == 1
    # the good lines still aggregate; host bits (10.0.0.1/8) are a note, not an error
    assert out.splitlines() == [
        "10.0.0.0/8",
        "192.0.2.7",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "::1",
        "2001:db8::/32",
    ]
    lines = err.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(f"{bad}:2: ")
    assert lines[0].endswith("'example.com'")
    assert lines[1].startswith(f"{bad}:3: ")
    assert "out of range" in lines[1]


def test_lenient_exits_0_but_still_reports(
    lists: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(["aggregate", "--lenient", str(lists["bad"])], capsys)
    assert code == 0
    assert err.count("bad.txt:") == 2


def test_verbose_shows_notes(lists: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    _, _, err = run(["aggregate", "-v", "--lenient", str(lists["bad"])], capsys)
    assert any(
        ln.startswith("note: ") and "bad.txt:4:" in ln and "host bits" in ln
        for ln in err.splitlines()
    )


def test_max_issues_caps_the_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "junk.txt"
    f.write_text("".join(f"junk{i}\n" for i in range(30)))
    code, out, err = run(["aggregate", "--max-issues", "5", str(f)], capsys)
    assert (code, out) == (1, "")
    assert err.splitlines()[-1] == "... and 25 more"
    assert len(err.splitlines()) == 6
    _, _, err = run(["aggregate", "--max-issues", "0", str(f)], capsys)
    assert len(err.splitlines()) == 30


def test_stats(lists: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    code, _out, err = run(["aggregate", "--stats", str(lists["good"]), str(lists["bad"])], capsys)
    assert code == 1
    stats = [ln for ln in err.splitlines() if ln.startswith("aggregate: ")]
    assert stats[0] == "aggregate: 11 lines in 2 inputs, 8 entries, 2 rejected, 1 notes"
    assert stats[1].startswith("aggregate: IPv4 4 CIDRs (16777729 addresses), IPv6 2 CIDRs; ")


def test_json_output(lists: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["aggregate", "-o", "json", str(lists["good"]), str(lists["bad"])], capsys)
    assert code == 1
    assert err == ""
    doc = json.loads(out)
    assert doc["v4"] == ["10.0.0.0/8", "192.0.2.7", "198.51.100.0/24", "203.0.113.0/24"]
    assert doc["v6"] == ["::1", "2001:db8::/32"]
    assert [(i["source"], i["line"], i["text"]) for i in doc["issues"]] == [
        (str(lists["bad"]), 2, "example.com"),
        (str(lists["bad"]), 3, "203.0.113.9/33"),
    ]
    assert doc["notes"][0]["line"] == 4
    assert doc["stats"]["entries"] == 8


def test_missing_file_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["aggregate", str(tmp_path / "nope.txt")], capsys)
    assert (code, out) == (2, "")
    assert "nope.txt" in err
    assert err.startswith("error: ")


def test_help_teaches_with_examples(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["aggregate", "--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    assert "iprange --optimize" in text
    assert "examples:" in text
    assert "--lenient" in text
    assert "Exit status" in text


def _subprocess(args: list[str], stdin: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "egressguard", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("args", [["aggregate"], ["aggregate", "-"]])
def test_reads_standard_input(args: list[str]) -> None:
    done = _subprocess(args, "192.0.2.0/25\r\n192.0.2.128/25\r\nnot-an-ip\r\n")
    assert done.returncode == 1
    assert done.stdout == "192.0.2.0/24\n"
    assert done.stderr.startswith("<stdin>:3: ")


def test_mixes_stdin_and_files(lists: dict[str, Path]) -> None:
    done = _subprocess(["aggregate", "-4", str(lists["good"]), "-"], "192.0.2.6\n")
    assert done.returncode == 0
    assert done.stdout == "192.0.2.6/31\n198.51.100.0/24\n"


def test_the_command_imports_nothing_heavy(lists: dict[str, Path]) -> None:
    # start-up time matters for a filter command: no YAML, HTTP, Kubernetes, schema libraries
    probe = (
        "import sys\n"
        "from egressguard.cli import main\n"
        f"code = main(['aggregate', {str(lists['good'])!r}])\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'yaml', 'httpx', 'lightkube', 'jsonschema', 'maxminddb', 'prometheus_client'})\n"
        "print(heavy, file=sys.stderr)\n"
        "sys.exit(code)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0
    assert done.stderr.strip() == "[]"
