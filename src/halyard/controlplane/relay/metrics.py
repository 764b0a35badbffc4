"""The relay's state as Prometheus gauges, read when scraped (nothing to keep in step)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from halyard.controlplane.relay.service import Relay


class RelayCollector(Collector):
    def __init__(self, relay: Relay) -> None:
        self._relay = relay

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        relay = self._relay
        yield GaugeMetricFamily(
            "halyard_relay_tunnels", "Cluster tunnels held by this replica", value=len(relay.tunnels)
        )
        yield GaugeMetricFamily("halyard_relay_streams_open", "User streams being carried", value=len(relay.pipes))
        yield GaugeMetricFamily(
            "halyard_relay_streams_pending", "Streams waiting for their agent's data connection", value=relay.pending
        )
        yield CounterMetricFamily("halyard_relay_streams_opened", "User streams opened", value=relay.streams_opened)
