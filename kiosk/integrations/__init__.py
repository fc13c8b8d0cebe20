"""Integrations: the kiosk talking to the systems a site already runs, beside the door service.

MQTT (mqtt_client): events from the outbox (outbox) and door state out, signed commands in
(signed_commands), Home Assistant discovery (home_assistant). The door's factory starts it;
the door never waits on it.
May import: kiosk.door (its access log and, for types, its service), kiosk.recognition,
kiosk.storage, kiosk.vision, db, kiosk's flat modules; never calibration/ or kiosk.training.
"""
