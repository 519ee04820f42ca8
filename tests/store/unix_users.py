"""Real Unix users, groups and read-only mounts for store-safety tests (root only; removed afterwards).

Root ignores permission bits, so a test that a store is safe for (or from) a
teammate must run the teammate's side as a real unprivileged user. Mayuri's
Python lives under /root here, which other users cannot enter: their
processes keep only CAP_DAC_READ_SEARCH (read and traverse anything), never
the right to write what their permissions forbid.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest


def need_root_tools(*tools: str) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to create Unix users or mounts (root ignores permission bits otherwise)")
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)}")


@contextlib.contextmanager
def unix_group_users(count: int) -> Iterator[tuple[str, list[str]]]:
    """A new group and `count` new users in it; all deleted on exit."""
    need_root_tools("useradd", "userdel", "groupadd", "groupdel", "setpriv")
    tag = uuid.uuid4().hex[:6]
    group = f"mayg{tag}"
    users = [f"may{n}{tag}" for n in range(count)]
    subprocess.run(["groupadd", group], check=True)
    made: list[str] = []
    try:
        for user in users:
            subprocess.run(["useradd", "-M", "-N", "-g", group, "-s", "/usr/sbin/nologin", user], check=True)
            made.append(user)
        yield group, users
    finally:
        for user in made:
            subprocess.run(["userdel", user], check=False)
        subprocess.run(["groupdel", group], check=False)


def as_user(user: str, args: list[str], *, cwd: Path, umask: int = 0o022, env: dict[str, str] | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run `python -m mayuri ARGS` (or python ARGS when args[0] is '-c' or a .py file) as `user`."""
    command = [sys.executable, *args] if args[0] == "-c" or args[0].endswith(".py") else \
        [sys.executable, "-m", "mayuri", *args]
    full = dict(os.environ, COLUMNS="200", **(env or {}))
    full["HOME"] = str(cwd)
    return subprocess.run(
        ["setpriv", "--reuid", user, "--regid", _group_of(user), "--init-groups",
         "--inh-caps", "+dac_read_search", "--ambient-caps", "+dac_read_search",
         "sh", "-c", f"umask {umask:03o} && exec \"$@\"", "sh", *command],
        cwd=cwd, env=full, capture_output=True, text=True, timeout=timeout,
    )


def _group_of(user: str) -> str:
    import grp
    import pwd

    return grp.getgrgid(pwd.getpwnam(user).pw_gid).gr_name


@contextlib.contextmanager
def read_only_mount(folder: Path) -> Iterator[Path]:
    """`folder` bind-mounted read-only over itself (a read-only snapshot); unmounted on exit."""
    need_root_tools("mount", "umount")
    if subprocess.run(["mount", "--bind", str(folder), str(folder)], capture_output=True).returncode != 0:
        pytest.skip("cannot bind-mount here (no CAP_SYS_ADMIN)")
    try:
        done = subprocess.run(["mount", "-o", "remount,bind,ro", str(folder)], capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"cannot remount read-only: {done.stderr.strip()}")
        yield folder
    finally:
        unmount(folder)


def unmount(folder: Path) -> None:
    """Unmount `folder`; when busy (a connection left open by a failing test), detach it: never leave it."""
    if subprocess.run(["umount", str(folder)], capture_output=True).returncode != 0:
        subprocess.run(["umount", "-l", str(folder)], check=False)
