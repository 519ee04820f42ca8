"""`python -m mayuri` runs the CLI."""

from __future__ import annotations

from mayuri.cli import main

main()
