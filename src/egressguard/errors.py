"""One exception hierarchy for egressguard.

Every error a user can see carries a one-line ``message`` (what went wrong, and where), an
optional ``hint`` (what to do about it) and a ``transient`` flag (whether retrying the same
operation later may succeed). The CLI prints ``error: <message>`` and ``hint: <hint>`` and exits
with the family's ``exit_code``; it shows a traceback only with ``--debug``. Adapters translate
foreign exceptions (``httpx``, ``lightkube``, ``OSError``, a failing ``nft``) into these classes
with ``raise ... from exc`` so nothing foreign crosses a layer.

::

    EgressguardError                    exit 1  base class; never raised directly
    ├── UsageError                      exit 2  bad command line (unknown option, missing file)
    ├── InputError                      exit 1  bad user input: manifests, configs, selectors
    │   ├── SelectorError (ValueError)          a selector that does not parse (has .column)
    │   ├── ManifestError                       YAML that does not load, unknown kinds
    │   └── ConfigError                         a Blocklist config that fails its schema
    ├── SafetyError                     exit 3  refused because it would break a cluster or shrink
    │                                           a set too much; ``--force`` overrides
    ├── SourceError                     exit 4  a feed or geo source could not be fetched or parsed
    ├── DataplaneError                  exit 4  nft / ip / the kernel refused an operation
    ├── KubeError                       exit 4  the Kubernetes API failed (transient or permanent)
    └── EnvironmentProblem              exit 4  missing privilege, binary or kernel feature

Retry decisions live in the type: ``err.transient`` is True for timeouts, 429 and 5xx answers,
resourceVersion conflicts and similar; False otherwise.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "DataplaneError",
    "EgressguardError",
    "EnvironmentProblem",
    "InputError",
    "KubeError",
    "ManifestError",
    "SafetyError",
    "SelectorError",
    "SourceError",
    "UsageError",
]


class EgressguardError(Exception):
    """Base of every error egressguard raises on purpose."""

    exit_code = 1
    transient = False

    def __init__(self, message: str, *, hint: str | None = None, transient: bool | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        if transient is not None:
            self.transient = transient

    def __str__(self) -> str:
        return self.message


class UsageError(EgressguardError):
    """The command line is wrong: an unknown option, a missing file, conflicting flags."""

    exit_code = 2


class InputError(EgressguardError):
    """User input (a manifest, config file or expression) is not acceptable."""


class SelectorError(InputError, ValueError):
    """A Calico selector does not parse. ``column`` is 1-based, ``None`` when unknown."""

    def __init__(
        self,
        message: str,
        *,
        selector: str,
        column: int | None,
        hint: str | None = None,
    ) -> None:
        where = f" at column {column}" if column is not None else ""
        super().__init__(f"{message}{where} in selector {selector!r}", hint=hint)
        self.reason = message
        self.selector = selector
        self.column = column


class ManifestError(InputError):
    """A manifest file cannot be loaded (YAML syntax, duplicate keys, unknown kind).

    When the error is about a place in a file, ``source`` names the file and ``line`` the
    1-based line (``None`` when unknown); the message then starts with ``source:line:`` and
    ``reason`` is the rest, for callers that report it as a located problem.
    """

    def __init__(
        self,
        message: str,
        *,
        source: str | None = None,
        line: int | None = None,
        hint: str | None = None,
    ) -> None:
        where = ""
        if source is not None:
            where = f"{source}:{line}: " if line is not None else f"{source}: "
        super().__init__(where + message, hint=hint)
        self.reason = message
        self.source = source
        self.line = line


class ConfigError(InputError):
    """A configuration file fails validation."""


class SafetyError(EgressguardError):
    """The operation was refused because it is unsafe; ``--force`` overrides where offered."""

    exit_code = 3


class SourceError(EgressguardError):
    """A feed or geo-IP source failed: fetch, checksum, size cap or parse."""

    exit_code = 4


class DataplaneError(EgressguardError):
    """The kernel dataplane (nft, ip, sysctl) refused or failed an operation."""

    exit_code = 4


class KubeError(EgressguardError):
    """The Kubernetes API failed. ``status`` is the HTTP status when there was one."""

    exit_code = 4

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        hint: str | None = None,
        transient: bool | None = None,
    ) -> None:
        super().__init__(message, hint=hint, transient=transient)
        self.status = status


class EnvironmentProblem(EgressguardError):
    """The machine lacks something needed: root, a binary, a kernel feature."""

    exit_code = 4
