"""egressguard.render."""
