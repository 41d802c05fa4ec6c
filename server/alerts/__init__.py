"""Alerts: rules, rosters, delivery through notification channels, acknowledgement."""
