"""egressguard.app."""
