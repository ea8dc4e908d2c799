"""Checksum files that providers publish next to their data, and verifying bytes against them.

Accepted shapes (shared reference §1 and §5):

* BSD style, as the RIRs write it (no trailing newline):
  ``MD5 (delegated-afrinic-extended-latest) = 4623…``, and likewise ``SHA256 (name) = …``;
* coreutils style, as MaxMind's ``.sha256`` is: ``<hex>  GeoLite2-Country-CSV_20240105.zip``
  (the dated name tells which release it is);
* a bare hex digest.

The algorithm follows the tag, or the digest length (32 hex = MD5, 64 = SHA-256). MD5 is
broken for adversarial collisions; it is checked because it is what the RIRs publish, and it
does catch truncated or damaged downloads.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from egressguard.feeds.result import FeedFormatError

__all__ = ["Checksum", "ChecksumError", "parse_checksum", "verify"]

_BSD = re.compile(r"^(MD5|SHA256|SHA1|SHA512)\s*\((.+)\)\s*=\s*([0-9A-Fa-f]+)\s*$")
_GNU = re.compile(r"^([0-9A-Fa-f]{32,128})\s+\*?(\S.*?)\s*$")
_BARE = re.compile(r"^([0-9A-Fa-f]{32,128})\s*$")
_BY_LENGTH = {32: "md5", 40: "sha1", 64: "sha256", 128: "sha512"}


class ChecksumError(FeedFormatError):
    """The data does not match the provider's checksum (or the checksum file is unreadable)."""


@dataclass(frozen=True, slots=True)
class Checksum:
    algorithm: str
    digest: str
    name: str | None = None


def parse_checksum(data: bytes, *, what: str = "checksum") -> Checksum:
    """The first checksum line of a ``.md5``/``.sha256`` file."""
    try:
        text = data.decode("ascii").strip()
    except UnicodeDecodeError as exc:
        raise ChecksumError(f"{what}: not a checksum file (not ASCII)") from exc
    line = text.splitlines()[0].strip() if text else ""
    if m := _BSD.match(line):
        algorithm, name, digest = m.group(1).lower(), m.group(2), m.group(3).lower()
        if len(digest) not in _BY_LENGTH or _BY_LENGTH[len(digest)] != algorithm:
            raise ChecksumError(f"{what}: {m.group(1)} digest of the wrong length")
        return Checksum(algorithm, digest, name)
    for pattern in (_GNU, _BARE):
        if m := pattern.match(line):
            digest = m.group(1).lower()
            if len(digest) not in _BY_LENGTH:
                break
            name = m.group(2) if pattern is _GNU else None
            return Checksum(_BY_LENGTH[len(digest)], digest, name)
    raise ChecksumError(
        f"{what}: not a checksum file: {line[:80]!r}",
        hint="expected 'MD5 (file) = hex', '<hex>  file' or a bare hex digest",
    )


def verify(data: bytes, checksum: Checksum, *, what: str) -> None:
    """Raise ``ChecksumError`` unless ``data`` hashes to the published digest."""
    actual = hashlib.new(checksum.algorithm, data).hexdigest()
    if actual != checksum.digest:
        raise ChecksumError(
            f"{what}: {checksum.algorithm.upper()} mismatch: published {checksum.digest}, "
            f"got {actual}: damaged or tampered download",
            hint="the last good copy is kept; if it persists, compare with the provider's site",
        )
