"""egressguard.selector."""
