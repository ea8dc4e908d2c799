"""egressguard.adapters."""
