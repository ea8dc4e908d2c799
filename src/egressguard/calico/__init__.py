"""egressguard.calico."""
