"""egressguard.nft."""
