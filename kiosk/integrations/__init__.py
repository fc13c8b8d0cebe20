"""The kiosk talking to other systems: MQTT events and state out, signed commands in, Home Assistant discovery."""
