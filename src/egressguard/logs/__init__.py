"""egressguard.logs."""
