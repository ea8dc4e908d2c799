"""The ``egressguard`` command line.

Each command group lives in its own module with a ``register(subparsers)`` function that adds
its parsers and sets ``handler`` (a ``Callable[[argparse.Namespace], int]``). Registering only
builds argparse parsers: every heavy import happens inside the handler, so ``egressguard
aggregate`` does not pay for YAML, HTTP or Kubernetes libraries it does not use.

Errors from egressguard become one line on stderr (``error: ...`` and ``hint: ...``) and the exit
code of their family (see ``egressguard.errors``); ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

__all__ = ["build_parser", "main"]

#: Command-group modules, in the order their commands appear in ``--help``.
COMMAND_MODULES = (
    "egressguard.cli.policy",
    "egressguard.cli.blocklist",
    "egressguard.cli.dataplane",
    "egressguard.cli.lab",
    "egressguard.cli.logs",
    "egressguard.cli.cluster",
)

DESCRIPTION = """\
Block egress to malicious networks and whole countries with Calico policies, keep the
blocklists current, enforce them with nftables on any Linux host, and turn every blocked
packet into an event.

Start with the reference scenario in examples/blog:
  egressguard validate examples/blog/*.yaml
  egressguard explain -f examples/blog --src-labels app=web --dst 217.160.0.92 --port 443
  egressguard lint -f examples/blog
"""


def build_parser() -> argparse.ArgumentParser:
    from egressguard import __version__

    parser = argparse.ArgumentParser(
        prog="egressguard",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"egressguard {__version__}")
    parser.add_argument(
        "--debug", action="store_true", help="show tracebacks instead of one-line errors"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit code."""
    from egressguard.errors import EgressguardError

    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        code: int = handler(args)
    except EgressguardError as exc:
        if args.debug:
            raise
        print(f"error: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"hint: {exc.hint}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (e.g. `| head`); that is not our failure.
        sys.stderr.close()
        return 0
    return code


def entry() -> None:
    sys.exit(main())
