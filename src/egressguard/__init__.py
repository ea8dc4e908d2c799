"""egressguard: egress blocking with Calico's policy model, kept current, enforced, explained.

The public Python API lives in the subpackages (``egressguard.selector``, ``egressguard.calico``,
``egressguard.cidr``, ...); each declares its own ``__all__``.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
