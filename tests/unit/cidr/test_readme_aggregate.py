"""The README's aggregate example runs as written and prints what the README says."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[3] / "README.md"


def test_readme_aggregate_example() -> None:
    text = README.read_text()
    section = text[text.index("## Aggregate address lists") :]
    block = re.search(r"```sh\n(.*?)\n```", section, re.S)
    assert block is not None
    producer, consumer = (part.strip() for part in block.group(1).split("|"))
    argv = shlex.split(producer)
    assert argv[0] == "printf"
    data = argv[1].encode().decode("unicode_escape")
    assert shlex.split(consumer) == ["egressguard", "aggregate"]
    done = subprocess.run(
        [sys.executable, "-m", "egressguard", "aggregate"],
        input=data,
        capture_output=True,
        text=True,
        check=True,
    )
    promised = re.findall(r"`([0-9a-f:.]+(?:/\d+)?)`", section.split("```")[2].split("Files")[0])
    assert done.stdout.split() == promised == ["10.0.0.0/24", "192.0.2.7", "2001:db8::/32"]
