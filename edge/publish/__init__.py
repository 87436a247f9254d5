"""MQTT publishing and Home Assistant discovery: the contract, the publisher, the service."""

from __future__ import annotations

from edge.publish.contract import TOPIC, TOPICS, Topic
from edge.publish.mqtt import BrokerSettings, MqttPublisher, Publisher, PublisherHealth

__all__ = [
    "TOPIC",
    "TOPICS",
    "BrokerSettings",
    "MqttPublisher",
    "Publisher",
    "PublisherHealth",
    "Topic",
]
