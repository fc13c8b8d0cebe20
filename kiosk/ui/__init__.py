"""The kiosk's Textual faces: the door display (door_display) and the admin app (admin_app).

One module per screen. Screens never block the UI thread: database queries, enrolment,
camera capture and retraining run in thread workers that report back with messages.
"""
