"""The kiosk's database: schema (models), engines and sessions (session), migrations."""
