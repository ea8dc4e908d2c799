"""The cidr package's public API is small and explicit: each module's ``__all__`` is asserted,
and the package re-exports exactly the names its modules make public."""

from __future__ import annotations

import importlib

import pytest

PUBLIC = {
    "egressguard.cidr.addresses": {
        "MAX_PREFIX",
        "Cidr",
        "CidrError",
        "Family",
        "format_address",
        "format_cidr",
        "parse_address",
        "parse_cidr",
    },
    "egressguard.cidr.sets": {"AddressSet", "CidrSet", "union_all"},
    "egressguard.cidr.parse": {"ParseIssue", "ParseResult", "parse", "parse_line", "parse_many"},
    "egressguard.cidr.lookup": {"Match", "ProvenanceIndex"},
    "egressguard.cidr": {
        "AddressSet",
        "Cidr",
        "CidrError",
        "CidrSet",
        "Family",
        "Match",
        "ParseIssue",
        "ParseResult",
        "ProvenanceIndex",
        "format_address",
        "format_cidr",
        "parse_address",
        "parse_cidr",
        "parse_line",
        "parse_many",
        "union_all",
    },
}


@pytest.mark.parametrize("name", sorted(PUBLIC))
def test_exported_members(name: str) -> None:
    module = importlib.import_module(name)
    assert set(module.__all__) == PUBLIC[name]
    for member in module.__all__:
        assert getattr(module, member) is not None


def test_parse_is_the_module_at_package_level() -> None:
    from egressguard import cidr
    from egressguard.cidr import parse

    assert parse.__name__ == "egressguard.cidr.parse"
    assert cidr.parse_many is parse.parse_many
    with pytest.raises(AttributeError):
        _ = cidr.no_such_name  # type: ignore[attr-defined]


def test_addresses_alone_does_not_need_numpy() -> None:
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from egressguard.cidr.addresses import parse_cidr\n"
        "parse_cidr('192.0.2.0/24')\n"
        "print('numpy' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "False"
