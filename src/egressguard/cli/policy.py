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
    _register_explain(sub)
    _register_lint(sub)


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
                    raise ManifestError(f"not UTF-8 text ({exc.reason})", source=name) from exc
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


def _add_files_option(parser: argparse.ArgumentParser, *, required: bool = True) -> None:
    parser.add_argument(
        "-f",
        "--filename",
        dest="files",
        action="extend",
        nargs="+",
        required=required,
        metavar="FILE",
        help="YAML files, directories (searched for *.yaml/*.yml) or - for standard input; "
        "repeat or list several",
    )


def _load_manifests(files: list[str]) -> Any:
    """Manifests of the valid documents, with every problem of the inputs."""
    from egressguard.calico.load import Manifests, load_documents

    documents, problems, _ = _read_validate_inputs(files)
    return Manifests(problems=tuple(problems)) + load_documents(documents)


# --------------------------------------------------------------------------------------------
# explain

_EXPLAIN_DESCRIPTION = """\
Say what Calico does with one flow and why, rule by rule: which tiers and policies apply to
the endpoint, which rules match (and through which network set and CIDR), whether a Log rule
fires before the verdict, and what decides (a rule, the end-of-tier drop, the profile).

Semantics are Calico's (Felix): tiers by order, policies by order then name, Log continues,
Allow and Deny end, Pass skips to the next tier, a tier in which a policy applied ends with its
default action (Deny), pods are allowed by their namespace profile when no policy applies,
staged policies are not enforced, rules are filtered per IP family. The endpoint is a pod made
of --src-labels in --src-namespace, or a pod found in the inputs with --src-pod; for ingress
(--direction ingress) use the --dst-* options for the endpoint and --src-ip for the peer.

Exit status: 0 when a verdict was computed (Allow or Deny; read it from the output), 1 when the
inputs cannot be evaluated, 2 on usage errors."""

_EXPLAIN_EPILOG = """\
examples:
  egressguard explain -f examples/blog --src-labels app=web --dst 217.160.0.92 --port 443
  egressguard explain -f examples/blog --src-labels app=web --dst 198.51.100.7 --port 443
  egressguard explain -f policies/ -f pods.yaml --src-pod shop/web-0 --dst 192.0.2.10 \\
      --protocol UDP --port 53 -o json | jq .verdict
  egressguard explain -f policies/ --direction ingress --dst-labels app=db --dst-namespace shop \\
      --src-ip 10.244.1.7 --port 5432

output (text):
  tier default (order 1000000; ends with Deny when a policy of it applied)
    GlobalNetworkPolicy egress-traffic-blocking (order 0)  examples/blog/...yaml:18
      egress[0]   Log   match    -> logged, evaluation continues
                  destination 217.160.0.92 is in GlobalNetworkSet egress-traffic-blocking ...
      egress[1]   Deny  match    -> DENY
  verdict: Deny, logged (Log rule: gnp/egress-traffic-blocking spec.egress[0]); decided by ...

JSON (-o json): {"verdict": "Allow"|"Deny", "logged": bool, "reason": ..., "trace": [...]}
(every field is described in docs/explain.md)."""


def _register_explain(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = new_parser(
        sub,
        "explain",
        help="the verdict Calico gives one flow, with the trace of tiers, policies and rules",
        description=_EXPLAIN_DESCRIPTION,
        epilog=_EXPLAIN_EPILOG,
    )
    _add_files_option(parser)
    ep = parser.add_argument_group("endpoint (egress: the sender; ingress: the receiver)")
    for side in ("src", "dst"):
        word = "sending" if side == "src" else "receiving"
        ep.add_argument(
            f"--{side}-labels",
            metavar="K=V[,K=V]",
            help=f"labels of the {word} pod (egress: --src-*, ingress: --dst-*)",
        )
        ep.add_argument(
            f"--{side}-namespace",
            metavar="NS",
            help=f"namespace of the {word} pod (default: default); its labels come from a "
            "Namespace among the inputs",
        )
        ep.add_argument(
            f"--{side}-pod",
            metavar="NS/NAME",
            help=f"the {word} pod, found among the inputs (labels, IPs, named ports)",
        )
        ep.add_argument(
            f"--{side}-host",
            action="store_true",
            help=f"the {word} endpoint is a host endpoint with these labels (no namespace, "
            "no default-allow profile)",
        )
    flow = parser.add_argument_group("flow")
    flow.add_argument("--src-ip", metavar="IP", help="source address (egress: the pod's IP)")
    flow.add_argument("--dst", "--dst-ip", dest="dst_ip", metavar="IP", help="destination address")
    flow.add_argument(
        "--port", "--dst-port", dest="port", type=int, metavar="N", help="destination port"
    )
    flow.add_argument("--src-port", type=int, metavar="N", help="source port")
    flow.add_argument(
        "--protocol",
        default="TCP",
        metavar="PROTO",
        help="TCP (default), UDP, ICMP, ICMPv6, SCTP, UDPLite or a number 1-255",
    )
    flow.add_argument("--icmp-type", type=int, metavar="N", help="ICMP type of the packet")
    flow.add_argument("--icmp-code", type=int, metavar="N", help="ICMP code of the packet")
    flow.add_argument(
        "--state",
        choices=("new", "established", "related", "invalid"),
        default="new",
        help="conntrack state: only new flows reach policy (default: new)",
    )
    parser.add_argument(
        "--direction",
        choices=("egress", "ingress"),
        default="egress",
        help="which policy of the endpoint to evaluate (default: egress)",
    )
    parser.add_argument(
        "-o",
        "--output",
        choices=("text", "json"),
        default="text",
        help="text (default): the readable trace; json: one object (docs/explain.md)",
    )
    parser.add_argument(
        "--brief",
        action="store_true",
        help="text: show the reason only for rules that matched",
    )
    parser.set_defaults(handler=_run_explain)


def _run_explain(args: argparse.Namespace) -> int:
    from egressguard.calico import evaluate as ev
    from egressguard.calico import explain as ex
    from egressguard.calico.model import PolicyType
    from egressguard.errors import InputError, UsageError

    egress = args.direction == "egress"
    mine, other = ("src", "dst") if egress else ("dst", "src")
    for name in ("labels", "namespace", "pod", "host"):
        if getattr(args, f"{other}_{name}"):
            raise UsageError(
                f"--{other}-{name} describes the endpoint of {'ingress' if egress else 'egress'}"
                f" flows; with --direction {args.direction} use --{mine}-{name}"
            )
    if egress and not args.dst_ip:
        raise UsageError("an egress flow needs --dst IP")
    if not egress and not args.src_ip:
        raise UsageError("an ingress flow needs --src-ip IP (the peer)")
    manifests = _load_manifests(args.files)
    try:
        labels = ex.parse_labels(getattr(args, f"{mine}_labels") or "")
    except InputError as exc:
        raise UsageError(f"--{mine}-labels: {exc.message}", hint=exc.hint) from exc
    endpoint = ex.endpoint_from(
        manifests,
        labels=labels,
        namespace=getattr(args, f"{mine}_namespace"),
        ip=args.src_ip if egress else args.dst_ip,
        pod=getattr(args, f"{mine}_pod"),
        host=getattr(args, f"{mine}_host"),
    )
    flow = ev.Flow(
        dst=args.dst_ip,
        src=args.src_ip,
        protocol=args.protocol,
        dst_port=args.port,
        src_port=args.src_port,
        icmp_type=args.icmp_type,
        icmp_code=args.icmp_code,
        state=ev.FlowState(args.state),
    )
    plan = ev.compile_plan(manifests)
    direction = PolicyType.EGRESS if egress else PolicyType.INGRESS
    verdict = plan.evaluate(endpoint, flow, direction)
    if args.output == "json":
        doc = ex.explain_json(verdict, endpoint, flow)
        doc["input_problems"] = [p.to_json() for p in manifests.problems]
        emit_json(doc)
        return 0
    print(ex.render(verdict, plan, endpoint, flow, verbose=not args.brief))
    if manifests.problems:
        n = len(manifests.problems)
        print(
            f"warning: {n} problem{'s' if n != 1 else ''} in the inputs; the documents concerned "
            "are ignored, as Calico would refuse them (egressguard validate lists them)",
            file=sys.stderr,
        )
    return 0


# --------------------------------------------------------------------------------------------
# lint

_LINT_DESCRIPTION = """\
Find the pitfalls of a Calico policy set before it bites: a Log rule placed after the Deny it
should precede (nothing is logged), a block-list policy that default-denies all other egress
(end-of-tier drop), an allow-all policy that silently overrides Kubernetes NetworkPolicy egress
isolation, a rule selector that also matches pods (no namespaceSelector: global()), selectors
that reach no network set, unused network sets, blocked cluster-critical addresses (Azure
wireserver, instance metadata, DNS, API server, pod and service networks), shadowed rules,
missing tiers, Log-only policies, Pass in the last tier, documents that fail validation, and
more. Every finding has a stable id (docs/lint.md), a severity, file:line, the YAML path and a
hint.

Exit status: 0 when no finding is an error (warnings and infos may remain), 1 when at least one
error is found, 2 on usage errors."""

_LINT_EPILOG = """\
examples:
  egressguard lint -f examples/blog
  egressguard lint -f policies/ --service-cidr 10.0.0.0/16 --cluster-cidr 10.244.0.0/16
  egressguard lint -f policies/ --dns-ip 10.0.0.10 --apiserver-ip 10.0.0.1 -o json
  egressguard lint -f policies/ --disable deny-not-logged --disable staged-policy
  egressguard lint --list-rules

output (text):
  policies.yaml:12 spec.egress[0]: warning allow-all-bypasses-k8s-isolation: egress[0] of ...
      hint: put the blocklist in its own tier that ends with Pass and drop the allow-all ...
  0 errors, 3 warnings, 0 infos in 3 documents"""


def _register_lint(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = new_parser(
        sub,
        "lint",
        help="find pitfalls in Calico policy sets (ids, severities, file:line, fix hints)",
        description=_LINT_DESCRIPTION,
        epilog=_LINT_EPILOG,
    )
    _add_files_option(parser, required=False)  # not with --list-rules
    cluster = parser.add_argument_group("cluster facts (for blocks-critical-address)")
    cluster.add_argument(
        "--dns-ip",
        action="append",
        default=[],
        metavar="IP",
        help="cluster DNS service address (repeatable)",
    )
    cluster.add_argument(
        "--apiserver-ip",
        action="append",
        default=[],
        metavar="IP",
        help="API server address (repeatable)",
    )
    cluster.add_argument(
        "--service-cidr",
        action="append",
        default=[],
        metavar="CIDR",
        help="service network: blocks of it are flagged; its first and tenth addresses are "
        "taken as API server and DNS unless --apiserver-ip/--dns-ip say otherwise",
    )
    cluster.add_argument(
        "--cluster-cidr",
        action="append",
        default=[],
        metavar="CIDR",
        help="pod network: blocks of it are flagged (repeatable)",
    )
    cluster.add_argument(
        "--critical",
        action="append",
        default=[],
        metavar="IP_OR_CIDR",
        help="another address that must never be blocked",
    )
    parser.add_argument(
        "--disable",
        action="append",
        default=[],
        metavar="ID",
        help="do not report this lint id (repeatable)",
    )
    parser.add_argument(
        "--list-rules", action="store_true", help="list every lint id with its severity and exit"
    )
    parser.add_argument(
        "-o",
        "--output",
        choices=("text", "json"),
        default="text",
        help="text (default): one finding per line plus its hint; json: one object",
    )
    parser.set_defaults(handler=_run_lint)


def _run_lint(args: argparse.Namespace) -> int:
    from egressguard.calico import lint as lt
    from egressguard.errors import InputError, UsageError

    if args.list_rules:
        if args.output == "json":
            emit_json(
                {
                    "rules": [
                        {"id": r.id, "severity": str(r.severity), "title": r.title}
                        for r in lt.RULES.values()
                    ]
                }
            )
            return 0
        width = max(len(r) for r in lt.RULES)
        for rule in lt.RULES.values():
            print(f"{rule.id:<{width}}  {rule.severity!s:<7}  {rule.title}")
        return 0
    if not args.files:
        raise UsageError("lint needs -f FILE (or --list-rules)")
    try:
        options = lt.LintOptions(
            dns_ips=tuple(args.dns_ip),
            apiserver_ips=tuple(args.apiserver_ip),
            service_cidrs=tuple(args.service_cidr),
            cluster_cidrs=tuple(args.cluster_cidr),
            critical=tuple(args.critical),
            disabled=frozenset(args.disable),
        )
    except InputError as exc:
        raise UsageError(exc.message, hint=exc.hint) from exc
    manifests = _load_manifests(args.files)
    findings = lt.lint(manifests, options)
    counts = {s: sum(1 for f in findings if f.severity is s) for s in lt.Severity}
    failed = lt.has_errors(findings)
    if args.output == "json":
        emit_json(
            {
                "ok": not failed,
                "counts": {str(s): n for s, n in counts.items()},
                "findings": [f.to_json() for f in findings],
            }
        )
        return 1 if failed else 0
    for finding in findings:
        print(finding)
        print(f"    hint: {finding.hint}")
    parts = [f"{n} {s}{'s' if n != 1 else ''}" for s, n in counts.items()]
    n_res = len(manifests.resources)
    print(
        f"{', '.join(parts)} ({n_res} resource{'s' if n_res != 1 else ''} loaded)", file=sys.stderr
    )
    return 1 if failed else 0
