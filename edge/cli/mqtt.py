"""`moodbox ha-remove` and `moodbox mqtt-check`: one-shot MQTT commands beside the daemon."""

from __future__ import annotations

import argparse
import dataclasses
import sys
import threading
import time
from typing import Any

from edge.cli.common import EXIT_FAILED, HELP_FORMAT, config_from_args, config_parent
from edge.publish.contract import TOPICS
from edge.publish.discovery import discovery_topic
from edge.publish.mqtt import BrokerSettings, make_client, topic_prefix

EXIT_NO_BROKER = EXIT_FAILED


def _connect(args: argparse.Namespace, timeout_s: float) -> tuple[Any, BrokerSettings] | None:
    """A connected paho client under a client id of its own (the daemon's would be kicked off)."""
    config = config_from_args(args)
    settings = BrokerSettings.from_config(config)
    settings = dataclasses.replace(settings, client_id=f"{settings.client_id}-cli", will_topic=None)
    client = make_client(settings)
    connected = threading.Event()
    client.on_connect = lambda *_: connected.set()
    try:
        client.connect(settings.host, settings.port, keepalive=settings.keepalive)
    except OSError as err:
        print(f"error: cannot reach {settings.host}:{settings.port}: {err}", file=sys.stderr)
        return None
    client.loop_start()
    if not connected.wait(timeout_s):
        client.loop_stop()
        print(f"error: no answer from {settings.host}:{settings.port}", file=sys.stderr)
        return None
    return client, settings


def cmd_ha_remove(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    result = _connect(args, args.timeout)
    if result is None:
        return EXIT_NO_BROKER
    client, _settings = result
    topics = [discovery_topic(config.mqtt.discovery_prefix, config.general.device_id)]
    if args.purge_state:
        prefix = topic_prefix(config)
        topics += [topic.full(prefix) for topic in TOPICS if topic.retained]
    for topic in topics:
        # An empty retained payload deletes the retained message (HA removes the device).
        client.publish(topic, b"", qos=1, retain=True).wait_for_publish(args.timeout)
        print(f"cleared {topic}")
    client.disconnect()
    client.loop_stop()
    return 0


def cmd_mqtt_check(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    result = _connect(args, args.timeout)
    if result is None:
        return EXIT_NO_BROKER
    client, settings = result
    prefix = topic_prefix(config)
    print(f"connected to {settings.host}:{settings.port}; retained state under {prefix}/:")
    client.on_message = lambda _c, _u, msg: print(
        f"{msg.topic} {msg.payload.decode('utf-8', 'replace')}"
    )
    client.subscribe(f"{prefix}/#", qos=1)
    time.sleep(args.seconds)
    client.disconnect()
    client.loop_stop()
    return 0


def cmd_sign_command(args: argparse.Namespace) -> int:
    from edge.publish.authority import sign_command_line

    print(sign_command_line(config_from_args(args), args.command_name, args.name))
    return 0


def register(subparsers: Any) -> None:
    config = config_parent()
    remove = subparsers.add_parser(
        "ha-remove",
        parents=[config],
        help="remove this moodbox from Home Assistant (empty retained discovery)",
        description="Remove this moodbox's device from Home Assistant: an empty retained "
        "discovery payload on its discovery topic. Run it with the daemon stopped, or the "
        "device comes back when Home Assistant restarts.",
        formatter_class=HELP_FORMAT,
    )
    remove.add_argument(
        "--purge-state", action="store_true", help="also clear the retained state topics"
    )
    remove.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for the broker")
    remove.set_defaults(func=cmd_ha_remove)

    check = subparsers.add_parser(
        "mqtt-check",
        parents=[config],
        help="connect to the broker and print this moodbox's retained topics",
        description="Connect with the configured broker settings (host, port, user, "
        "password, TLS) and print every retained topic under this moodbox's prefix: a "
        "check of a broker, credentials or TLS from the box.",
        formatter_class=HELP_FORMAT,
    )
    check.add_argument(
        "--seconds",
        type=float,
        default=1.0,
        help="how long to listen for retained messages, seconds",
    )
    check.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for the broker")
    check.set_defaults(func=cmd_mqtt_check)

    sign = subparsers.add_parser(
        "sign-command",
        parents=[config],
        help="print a signed enroll/forget payload (key: $MOODBOX_COMMAND_KEY or the credential)",
        description="Print the JSON payload of a signed enroll or forget command for "
        "<prefix>/<command>/set, signed with the command key ($MOODBOX_COMMAND_KEY or "
        "$CREDENTIALS_DIRECTORY/command_key); valid for mqtt.command_window_s.",
        formatter_class=HELP_FORMAT,
    )
    sign.add_argument(
        "command_name", choices=("enroll", "forget"), metavar="COMMAND", help="enroll or forget"
    )
    sign.add_argument("name", metavar="NAME", help="the person's name")
    sign.set_defaults(func=cmd_sign_command)
