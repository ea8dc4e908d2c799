"""The only I/O of egressguard: each module wraps one outside system behind a small Protocol,
with a real implementation and, where tests need one, an in-package fake.

``http`` (feeds over HTTPS, the only httpx import), ``state`` and ``records`` (the state
directory), ``geodb`` (geo files and MMDB), ``outdir`` (atomic build output), ``kube``,
``kube_fake``, ``kube_jobs`` and ``kube_pods`` (the Kubernetes API, the only lightkube imports),
``nftables`` and ``nfnetlink`` (the kernel's nftables), ``netns`` and ``probe`` (network
namespaces, servers and probes of the lab), ``logsource`` and ``kmsgcursor`` (syslog files,
journald, ``/dev/kmsg``), ``metrics`` (the HTTP endpoint for Prometheus), ``verify_probe`` (the
probe program of ``egressguard verify`` Jobs). Import the modules themselves.
"""

__all__: list[str] = []
