"""egressguard.cidr."""
