"""Commands: validate, explain and lint of Calico manifests.

Each command has its own ``_register_<name>`` and ``_run_<name>`` functions; ``register`` only
wires them up. Heavy imports (YAML, the Calico model) happen inside the ``_run_`` functions.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from egressguard.cli._common import emit_json, new_parser

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add this group's subcommands to sub."""
    _register_validate(sub)


# --------------------------------------------------------------------------------------------
# validate

_VALIDATE_DESCRIPTION = """\
Check Calico and Kubernetes manifests the way Calico's own validator does, before you apply
them: names, actions and protocols (case-sensitive), ports and the protocols they need, rule
CIDRs (addr/len, no host bits, one IP family per rule), selectors (they must parse; global()
only as a rule's whole namespaceSelector), ICMP and HTTP matches, GlobalNetworkPolicy flags,
tiers, labels, list limits, unknown fields and wrong types.

Every problem is reported at once, as FILE:LINE PATH: MESSAGE. Understood kinds:
GlobalNetworkSet, NetworkSet, GlobalNetworkPolicy, NetworkPolicy, StagedGlobalNetworkPolicy,
StagedNetworkPolicy and Tier (crd.projectcalico.org/v1 or projectcalico.org/v3), Kubernetes
NetworkPolicy (networking.k8s.io/v1), Pod and Namespace. Other kinds are reported as problems.

Exit status: 0 when every document is valid, 1 when there are problems, 2 on usage errors
(for example a file that does not exist)."""

_VALIDATE_EPILOG = """\
examples:
  egressguard validate examples/blog/*.yaml
  egressguard validate examples/blog            # a directory: all *.yaml and *.yml in it
  kubectl get gnp -o yaml | egressguard validate -
  egressguard validate -o json policies/ | jq '.problems[] | .message'

output (text):
  policy.yaml:14 spec.egress[1].destination.nets[0]: '10.0.0.300/24' is not a CIDR
  policy.yaml:9 spec.egress[0].action: 'deny' is not an action: Allow, Deny, Log or Pass ...
  2 problems in 3 documents (1 file)"""


def _register_validate(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = new_parser(
        sub,
        "validate",
        help="check Calico manifests like Calico's validator (every problem, with file:line)",
        description=_VALIDATE_DESCRIPTION,
        epilog=_VALIDATE_EPILOG,
    )
    parser.add_argument(
        "paths",
        nargs="+",
        metavar="FILE_OR_DIR",
        help="YAML files, directories (searched for *.yaml/*.yml) or - for standard input",
    )
    parser.add_argument(
        "-o",
        "--output",
        choices=("text", "json"),
        default="text",
        help="text (default): one line per problem; json: one object with valid and problems",
    )
    parser.set_defaults(handler=_run_validate)


def _read_validate_inputs(paths: list[str]) -> tuple[list[Any], list[Any], list[str]]:
    """Load every input: (documents, problems of unreadable or unparsable files, file names).

    Missing paths raise ``UsageError`` (exit 2) before anything is read.
    """
    from egressguard import yamlio
    from egressguard.calico.load import yaml_problem
    from egressguard.cli._common import expand_paths
    from egressguard.errors import ManifestError, UsageError

    sources: list[str] = []
    for raw in paths:
        if raw == "-":
            sources.append("-")
        else:
            sources.extend(str(p) for p in expand_paths([raw]))
    if sources.count("-") > 1:
        raise UsageError("standard input (-) can be read only once")
    documents: list[Any] = []
    problems: list[Any] = []
    for source in sources:
        name = "<stdin>" if source == "-" else source
        try:
            if source == "-":
                data = sys.stdin.buffer.read()
                try:
                    text = data.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise ManifestError(f"{name}: not UTF-8 text ({exc.reason})") from exc
                documents.extend(yamlio.load_text(text, name))
            else:
                documents.extend(yamlio.load_file(source))
        except ManifestError as exc:
            problems.append(yaml_problem(name, exc))
    return documents, problems, ["<stdin>" if s == "-" else s for s in sources]


def _run_validate(args: argparse.Namespace) -> int:
    from egressguard.calico.load import load_documents

    documents, problems, files = _read_validate_inputs(args.paths)
    loaded = load_documents(documents)
    problems.extend(loaded.problems)
    if args.output == "json":
        emit_json(
            {
                "valid": not problems,
                "files": files,
                "documents": len(documents),
                "problems": [p.to_json() for p in problems],
            }
        )
        return 1 if problems else 0
    for problem in problems:
        print(problem)
    n_files = f"{len(files)} file{'s' if len(files) != 1 else ''}"
    n_docs = f"{len(documents)} document{'s' if len(documents) != 1 else ''}"
    if problems:
        n_problems = f"{len(problems)} problem{'s' if len(problems) != 1 else ''}"
        print(f"{n_problems} in {n_docs} ({n_files})", file=sys.stderr)
        return 1
    print(f"valid: {n_docs} ({n_files})", file=sys.stderr)
    return 0
