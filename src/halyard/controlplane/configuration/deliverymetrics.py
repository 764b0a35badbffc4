"""The long polls of desired configuration as Prometheus metrics, read when scraped: how many wait, how many
desired-state reads they cost, and how many began or ended on what the process knew without one (delivery.py)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from halyard.controlplane.configuration.delivery import ConfigurationDelivery


class DeliveryCollector(Collector):
    def __init__(self, delivery: ConfigurationDelivery) -> None:
        self._delivery = delivery

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        delivery = self._delivery
        yield GaugeMetricFamily(
            "halyard_configuration_polls_waiting",
            "Agents' long polls of desired configuration held",
            value=delivery.waiting,
        )
        yield CounterMetricFamily(
            "halyard_configuration_reads", "Desired-state reads made for agents' long polls", value=delivery.reads
        )
        yield CounterMetricFamily(
            "halyard_configuration_unread",
            "Long polls that waited or ended on the version this process knew, without a read",
            value=delivery.unread,
        )
