"""Golden scripts: manifests (+ endpoints, + options) compile to exactly the reviewed nft text.

Each case in ``data/nft_golden`` is ``<case>.yaml`` (manifests), optionally
``<case>.endpoints.yaml`` and ``<case>.options.yaml`` (compiler options), and ``<case>.nft``:
the expected script, preceded by ``# note:`` lines for what the compiler reports as not
enforced. The expected files were reviewed rule by rule against calico-semantics.md §5/§7;
regenerate them after a deliberate change with ``EGRESSGUARD_UPDATE_GOLDEN=1`` and review the
diff. ``tests/integration/test_nft_dataplane.py`` feeds every golden script to ``nft -c``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from egressguard.app import agent
from egressguard.nft import compile as nft_compile
from egressguard.nft import ir

DATA = Path(__file__).parent / "data" / "nft_golden"
CASES = sorted(p.stem for p in DATA.glob("*.yaml") if p.stem.count(".") == 0)


def options_for(case: str) -> nft_compile.Options:
    path = DATA / f"{case}.options.yaml"
    if not path.exists():
        return nft_compile.Options()
    raw = yaml.safe_load(path.read_text())
    limit = raw.get("log_limit")
    return nft_compile.Options(
        log_prefix=raw.get("log_prefix", "calico-packet"),
        log_limit=ir.LogLimit(**limit) if limit else None,
    )


def golden_text(case: str) -> str:
    endpoints = DATA / f"{case}.endpoints.yaml"
    inputs = agent.load_inputs([DATA / f"{case}.yaml"], endpoints if endpoints.exists() else None)
    compiled = agent.compile_inputs(inputs, options_for(case))
    notes = "".join(f"# note: {note}\n" for note in compiled.notes)
    return notes + compiled.script()


def test_there_are_cases() -> None:
    assert {"blog", "tiers", "rules", "notes"} <= set(CASES)


@pytest.mark.parametrize("case", CASES)
def test_golden_script(case: str) -> None:
    expected_path = DATA / f"{case}.nft"
    got = golden_text(case)
    if os.environ.get("EGRESSGUARD_UPDATE_GOLDEN") == "1":
        expected_path.write_text(got)
    assert expected_path.exists(), f"no golden file {expected_path.name}; see the module doc"
    assert got == expected_path.read_text()


def test_golden_scripts_are_deterministic() -> None:
    # Compiling twice (fresh objects, same inputs) gives byte-identical text: diffs and the
    # state marker rely on it.
    for case in CASES:
        assert golden_text(case) == golden_text(case)
