"""``python -m egressguard`` runs the CLI."""

from egressguard.cli import entry

entry()
