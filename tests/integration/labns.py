"""What the integration tests that build labs share: namespaces by name prefix, a fresh prefix
whose leftovers are removed and fail the test, and a running lab under such a prefix.

A prefix is ``eg-<tag><6 hex digits>-``: each test file has its own tag, every test a random
prefix, so tests never touch each other's namespaces nor a user's ``eg-lab-`` lab.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator
from pathlib import Path

from egressguard.adapters import netns
from egressguard.app import lab

RUNNER = netns.SubprocessNetnsRunner()


def namespaces_with(prefix: str) -> list[str]:
    """The network namespaces whose name starts with ``prefix``."""
    return [n for n in netns.IpRoute2(RUNNER).list_namespaces() if n.startswith(prefix)]


@contextlib.contextmanager
def fresh_prefix(tag: str, state_dir: Path) -> Iterator[str]:
    """A new prefix; afterwards the lab of that prefix is taken down, a namespace the test
    left behind fails it, and none may remain."""
    prefix = f"eg-{tag}{secrets.token_hex(3)}-"
    try:
        yield prefix
    finally:
        leftovers = namespaces_with(prefix)
        lab.lab_down(prefix, runner=RUNNER, state_dir=state_dir)
        assert leftovers == [], f"the test left namespaces behind: {leftovers}"
        assert namespaces_with(prefix) == []


@contextlib.contextmanager
def built_lab(tag: str, state_dir: Path) -> Iterator[lab.Lab]:
    """The default lab, up, under a fresh prefix; taken down afterwards with its processes."""
    with fresh_prefix(tag, state_dir) as prefix:
        built = lab.lab_up(lab.default_topology(prefix), runner=RUNNER, state_dir=state_dir)
        try:
            yield built
        finally:
            lab.lab_down(prefix, runner=RUNNER, state_dir=state_dir)
            for ref in built.state.processes:
                assert not netns.process_alive(ref)
