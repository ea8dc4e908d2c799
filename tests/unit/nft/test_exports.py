"""The dataplane's public API is small and explicit: each module's ``__all__`` is checked."""

from __future__ import annotations

import importlib

import pytest

PUBLIC = {
    "egressguard.nft.ir": {
        "ACCEPT",
        "DROP",
        "RETURN",
        "TABLE_FAMILY",
        "TABLE_NAME",
        "AddrInNets",
        "AddrInSet",
        "AddrPorts",
        "Chain",
        "CtState",
        "Hook",
        "Icmp",
        "IcmpTypes",
        "IfName",
        "IntervalSet",
        "L4Proto",
        "Log",
        "LogLimit",
        "Match",
        "NfProto",
        "Ports",
        "Rule",
        "Statement",
        "Table",
        "Verdict",
        "set_family",
        "set_type",
    },
    "egressguard.nft.render": {
        "MARKER_CHAIN",
        "MARKER_PREFIX",
        "content_digest",
        "element_texts",
        "marker",
        "match_text",
        "parse_marker",
        "range_text",
        "rule_text",
        "script",
        "structure_digest",
        "table_marker",
        "update_script",
    },
    "egressguard.nft.diff": {"Plan", "SetChange", "TableView", "plan", "range_changes"},
    "egressguard.nft.state": {"KernelSet", "KernelTable", "from_json", "table_exists"},
    "egressguard.nft.parse": {
        "ChainDef",
        "Command",
        "ParseError",
        "SetDef",
        "element_range",
        "parse_script",
    },
    "egressguard.nft.compile": {
        "CompileCache",
        "Compiled",
        "EndpointSummary",
        "Options",
        "compile_table",
    },
    "egressguard.nft.endpoints": {
        "API_VERSION",
        "DEFAULT",
        "KIND",
        "Endpoints",
        "Host",
        "Workload",
        "load_text",
    },
    "egressguard.adapters.nftables": {"FakeNftables", "NftCli", "Nftables", "nft_error"},
    "egressguard.adapters.nfnetlink": {"ElementBatch", "NfNetlink", "element_chunks"},
    "egressguard.app.agent": {
        "SAFETY_FLOWS",
        "Agent",
        "ApplyResult",
        "Inputs",
        "apply_compiled",
        "compile_inputs",
        "kernel_plan",
        "load_inputs",
        "safety_findings",
    },
}


@pytest.mark.parametrize("module_name", sorted(PUBLIC))
def test_exported_members(module_name: str) -> None:
    module = importlib.import_module(module_name)
    assert set(module.__all__) == PUBLIC[module_name]
    for name in module.__all__:
        assert hasattr(module, name), f"{module_name}.{name} is in __all__ but missing"


def test_the_cli_module_does_not_import_the_compiler_at_start_up() -> None:
    import subprocess
    import sys

    code = (
        "import sys, egressguard.cli.dataplane; "
        "print(any(m.startswith('egressguard.nft') for m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout.strip()
    assert out == "False"
