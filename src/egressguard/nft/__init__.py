"""The host dataplane's pure core: Calico resources → nftables IR → ``nft -f`` text.

Modules (import them: ``from egressguard.nft import ir, render, diff``):

* :mod:`~egressguard.nft.ir` - the table ``inet egressguard`` as frozen values (sets, chains,
  typed matches, statements, verdicts);
* :mod:`~egressguard.nft.render` - one atomic ``nft -f`` transaction per script, the state
  marker (structure and content digests), element-only update scripts;
* :mod:`~egressguard.nft.diff` - ``plan(current, new)``: unchanged, elements-only, or replace;
* :mod:`~egressguard.nft.state` - our table read back from ``nft -j list table`` output;
* :mod:`~egressguard.nft.parse` - reads the dialect ``render`` writes (for the fake kernel);
* :mod:`~egressguard.nft.compile` - Calico resources and endpoints → ``ir.Table``;
* :mod:`~egressguard.nft.endpoints` - the endpoints file: the host and local workloads.

Nothing here runs ``nft``: :mod:`egressguard.adapters.nftables` does.
"""

__all__: list[str] = []
