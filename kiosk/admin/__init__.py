"""Administration: what an admin does to the kiosk, from the CLI or the admin app.

Enrolment, erasure, admin sign-in (auth), backup and restore, and the doctor's diagnostics.
May import: kiosk.door, kiosk.recognition, kiosk.vision, kiosk.storage, db, kiosk's flat modules.
"""
