"""Feed and geo-IP formats: bytes in, address sets with counted, located issues out (no I/O).

``registry`` maps a config's ``format:`` and ``provider:`` names to parsers; ``plain``
(plain lists, FireHOL netset/ipset, abuse.ch), ``csvlist``, ``spamhaus`` (text and JSON),
``tor`` (exit lists), ``checksums`` (MD5/SHA-256 sidecars) and ``geo`` (RIR, MaxMind, DB-IP,
IP2Location, per-country CIDR files) hold them; ``result`` defines what they return.
"""

__all__: list[str] = []
