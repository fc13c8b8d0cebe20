"""Storage: what the kiosk keeps on disk besides the database rows.

The crop store (optionally encrypted), enrolment samples, event thumbnails, checksums,
retention of old events, and the one audit query used by `kiosk audit` and the Audit screen.
May import: kiosk.vision (image decoding), db, kiosk's flat modules.
"""
