"""The door: what runs unattended at the door, frame by frame.

The service and its factory (assembly), the per-frame loop, the decision policy, the relay and
its GPIO boards, the door sensors, the access log, the status file, the admin's threshold
override, the frame handover to the admin app and systemd's notify protocol.
May import: kiosk.recognition, kiosk.vision, kiosk.storage, db, kiosk's flat modules; never
calibration/ or kiosk.training (the door must start without them).
"""
