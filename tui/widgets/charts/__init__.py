"""Part of the dashboard (see tui/app.py)."""
