"""Learning the closure of a job: the project files and modules it actually used."""

from __future__ import annotations

from mayuri.closure.collect import Closure, collect_closure, uncaught_exceptions
from mayuri.closure.launch import closure_env

__all__ = ["Closure", "closure_env", "collect_closure", "uncaught_exceptions"]
