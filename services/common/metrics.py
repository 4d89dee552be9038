"""What every service's metrics share (each service defines its own in
``services/<service>/metrics.py``): names ``ahunt_<service>_<thing>_<unit>``, one latency bucket
scale, and one way to own and serve a registry.

Defined in code only, so dashboards and alert rules have one place to check against
(tests/deploy compares them).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar, Self

from prometheus_client import REGISTRY, CollectorRegistry, Gauge, start_http_server

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class BoundedValues:
    """The values one label of a metric may take, bounded by configuration, never by users'
    input (a class name or a user name as a label value made one series per distinct name: 300
    relabels, 300 series): ``known`` values (a configured taxonomy) always keep their own; the
    first ``limit`` other distinct values too; every later one folds to ``other``.

    >>> classes = BoundedValues(limit=1, known={"sn"})
    >>> [classes(c) for c in ("sn", "lens", "kn", "lens", "sn")]
    ['sn', 'lens', 'other', 'lens', 'sn']
    """

    def __init__(self, limit: int, known: Iterable[str] = (), other: str = "other") -> None:
        self.limit, self.other = limit, other
        self.known = frozenset(known)
        self.seen: set[str] = set()

    def __call__(self, value: str) -> str:
        if value in self.known or value in self.seen:
            return value
        if len(self.seen) < self.limit:
            self.seen.add(value)
            return value
        return self.other


class ServiceMetrics:
    """Base of a service's metrics: every metric goes on ``registry``, by default the process's
    (served with the process collectors, CPU and memory); tests and a process hosting several
    apps give each instance its own registry, since a name registers once per registry."""

    _defaults: ClassVar[dict[type, ServiceMetrics]] = {}

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = REGISTRY if registry is None else registry

    @classmethod
    def default(cls) -> Self:
        """The process's instance on the process registry (created once)."""
        found = ServiceMetrics._defaults.get(cls)
        if found is None:
            found = ServiceMetrics._defaults[cls] = cls()
        assert isinstance(found, cls)
        return found

    def serve(self, port: int) -> None:
        """Expose /metrics on ``port`` (0 disables it)."""
        if port:
            start_http_server(port, registry=self.registry)


class RegistryMetrics(ServiceMetrics):
    """Set by whichever process serves them (``registry.set_live_version_info``)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        super().__init__(registry)
        self.live_version = Gauge(
            "ahunt_registry_live_version_info",
            "1 for each survey's live model version in the registry",
            ["survey", "version"],
            registry=self.registry,
        )
