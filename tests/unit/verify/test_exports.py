"""The public API of the verify modules is explicit: ``__all__`` names what callers use, and
everything it names exists."""

from __future__ import annotations

import importlib

import pytest

PUBLIC = {
    "egressguard.adapters.kube_jobs": {
        "FakeJobClient",
        "FakeRun",
        "JobClient",
        "LightkubeJobClient",
        "connect_jobs",
    },
    "egressguard.adapters.verify_probe": {
        "LINE_TAG",
        "MAX_PROBES",
        "MAX_TIMEOUT",
        "PLAN_ENV",
        "PLAN_VERSION",
        "Outcome",
        "ParsedLog",
        "ProbeOutcome",
        "ProbeSpec",
        "Proto",
        "decode_plan",
        "dns_root_query",
        "encode_plan",
        "main",
        "parse_log",
        "run_probe",
        "run_probes",
        "tcp_connect",
        "udp_exchange",
    },
}


@pytest.mark.parametrize("name", sorted(PUBLIC))
def test_exported_members(name: str) -> None:
    module = importlib.import_module(name)
    assert set(module.__all__) == PUBLIC[name]
    for attr in module.__all__:
        assert hasattr(module, attr), f"{name}.{attr} is in __all__ but missing"


def test_app_verify_names_exist() -> None:
    module = importlib.import_module("egressguard.app.verify")
    for attr in module.__all__:
        assert hasattr(module, attr), f"egressguard.app.verify.{attr} is in __all__ but missing"
    for entry_point in ("make_plan", "render_jobs", "execute", "judge", "report_namespace"):
        assert entry_point in module.__all__


def test_the_in_job_command_imports_only_the_standard_library() -> None:
    """``egressguard verify probe`` must start fast in the Job: no YAML, NumPy, lightkube or
    Calico model gets imported on that path."""
    import os
    import subprocess
    import sys

    code = (
        "import sys; from egressguard import cli; rc = cli.main(['verify', 'probe']); "
        "heavy = ('yaml', 'numpy', 'lightkube', 'httpx2', 'egressguard.calico'); "
        "print(rc, sorted(m for m in heavy if m in sys.modules), file=sys.stderr)"
    )
    env = {**os.environ, "EGRESSGUARD_VERIFY_PLAN": '{"version":1,"run":"r","probes":[]}'}
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=True,
    )
    assert done.stderr.strip() == "0 []"
    assert '"egressguard-verify":"end"' in done.stdout
