"""One module per group of `kiosk` subcommands; kiosk.cli imports them all at start-up."""
