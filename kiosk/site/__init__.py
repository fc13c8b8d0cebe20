"""A site of many doors on one PostgreSQL database (issue 18).

Admins work on the site database (any `kiosk` command with ``database.url`` pointing at it);
each door keeps deciding from its own SQLite, which holds a replica of what it needs
(`replica`), and sends its events up in order (`uploader`); `link` runs both beside the
door service. `roles` sets the site up and registers doors; `audit` checks every door's chain.
May import: kiosk.recognition, kiosk.storage, kiosk.vision, db, kiosk's flat modules; never
calibration/, kiosk.training or kiosk.integrations.
"""
