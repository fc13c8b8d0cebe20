"""Home Assistant MQTT discovery: retained config messages under ``homeassistant/...``.

Add the broker to Home Assistant and the kiosk appears as one device: an ``event`` entity
for access decisions (event types granted, refused, unknown, lockdown, remote-open and the
door's alarms), ``binary_sensor``s for the lock relay, the door contact and its alarms
(when a contact is wired), lockdown, a ``sensor`` for the last person let in and the door
loop's fps and outbox depth, and an ``image`` of the last face at the door when thumbnails
are published (``mqtt.thumbnails`` with ``privacy.thumbnails``); every entity follows the
kiosk's availability topic.

Home Assistant cannot compute an HMAC, so it cannot send the kiosk's signed commands. With
``mqtt.home_assistant_commands`` on, discovery adds a ``button`` (open once) and a ``switch``
(lockdown) whose plain commands go to ``<prefix>/ha/...``; the kiosk then trusts the broker's
ACL alone for those two topics (give only Home Assistant's broker user write access to them).
"""

from __future__ import annotations

import json
import re

from kiosk.config import Settings

EVENT_TYPES = ["granted", "refused", "unknown", "lockdown", "remote-open", "forced", "held-open", "exit-request"]


def node_id(client_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", client_id)


def discovery_messages(settings: Settings, prefix: str, client_id: str) -> list[tuple[str, str]]:
    """(topic, JSON payload) for every entity, all retained by the caller."""
    node = node_id(client_id)
    door = settings.door
    device = {"identifiers": [node], "name": f"Door kiosk {door}", "manufacturer": "door-kiosk", "model": "face-recognition door kiosk"}
    common = {"availability_topic": f"{prefix}/availability", "device": device}
    state = f"{prefix}/state"
    entities: list[tuple[str, str, dict[str, object]]] = [
        ("event", "access", {"name": "Access", "state_topic": f"{prefix}/events", "event_types": EVENT_TYPES}),
        ("binary_sensor", "relay", {"name": "Lock released", "state_topic": state, "device_class": "unlock",
                                    "value_template": "{{ 'ON' if value_json.relay == 'open' else 'OFF' }}"}),
        ("sensor", "last_person", {"name": "Last person", "state_topic": f"{prefix}/last_person", "icon": "mdi:account"}),
        ("sensor", "fps", {"name": "Door loop fps", "state_topic": f"{prefix}/status", "unit_of_measurement": "fps",
                           "value_template": "{{ value_json.fps }}", "entity_category": "diagnostic"}),
        ("sensor", "outbox", {"name": "Events not yet sent", "state_topic": f"{prefix}/status",
                              "value_template": "{{ value_json.outbox }}", "entity_category": "diagnostic"}),
    ]
    if settings.mqtt_thumbnails:  # an image, not a camera: a still updated per event, JPEG as the kiosk sends it
        entities.append(("image", "thumbnail", {"name": "Last face", "image_topic": f"{prefix}/thumbnail",
                                                "content_type": "image/jpeg", "icon": "mdi:face-recognition"}))
    if settings.door_hardware.contact_pin is not None:
        entities += [
            ("binary_sensor", "contact", {"name": "Door", "state_topic": state, "device_class": "door",
                                          "value_template": "{{ 'ON' if value_json.contact == 'open' else 'OFF' }}"}),
            ("binary_sensor", "forced", {"name": "Door forced", "state_topic": state, "device_class": "problem",
                                         "value_template": "{{ 'ON' if value_json.forced else 'OFF' }}"}),
            ("binary_sensor", "held_open", {"name": "Door held open", "state_topic": state, "device_class": "problem",
                                            "value_template": "{{ 'ON' if value_json.held_open else 'OFF' }}"}),
        ]
    lockdown_state = {"state_topic": state, "value_template": "{{ 'ON' if value_json.lockdown else 'OFF' }}"}
    if settings.mqtt.home_assistant_commands:
        entities += [
            ("button", "open", {"name": "Open once", "command_topic": f"{prefix}/ha/open", "payload_press": "PRESS", "icon": "mdi:door-open"}),
            ("switch", "lockdown", {"name": "Lockdown", "command_topic": f"{prefix}/ha/lockdown", "payload_on": "ON",
                                    "payload_off": "OFF", "state_on": "ON", "state_off": "OFF", "icon": "mdi:lock-alert", **lockdown_state}),
        ]
    else:
        entities.append(("binary_sensor", "lockdown", {"name": "Lockdown", "icon": "mdi:lock-alert", **lockdown_state}))
    out = []
    for component, object_id, config in entities:
        payload = {"unique_id": f"{node}_{object_id}", "object_id": f"{node}_{object_id}", **config, **common}
        out.append((f"{settings.mqtt.discovery_prefix}/{component}/{node}/{object_id}/config", json.dumps(payload)))
    return out
