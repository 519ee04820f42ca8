"""Mayuri: an embedded experiment store and GPU scheduler.

Inside a job, `import mayuri` gives the in-job API (`mayuri.params()`,
`mayuri.output()`, `mayuri.current_run()`). Importing this package stays
cheap: nothing heavy (no database, no textual, no torch) is imported here.
"""

from __future__ import annotations

from mayuri.job import current_run, output, params

__version__ = "0.1.0"

__all__ = ["__version__", "current_run", "output", "params"]
