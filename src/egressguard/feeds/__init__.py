"""egressguard.feeds."""
