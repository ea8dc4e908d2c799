"""Use cases: each module wires adapters to the pure core for one job.

``build`` (sources → network-set shards and policies, safely), ``config`` (the Blocklist file),
``sources`` (fetch or read, validate, parse, last good copy), ``apply``, ``sync``, ``status``,
``controller`` and ``leader`` (the cluster side), ``agent`` (the host dataplane), ``lab`` and
``labrun`` (the network-namespace lab), ``verify`` (probe Jobs in a cluster). Import the
modules themselves.
"""

__all__: list[str] = []
