"""The in-job side of Mayuri: what `import mayuri` gives a job that Mayuri launched.

Reads the run's environment variables and run folder. `log` is the hot path
of a training loop: it appends tuples to a list and nothing more (the
buffer's thread and writer process do the rest, see `mayuri.tracking.writer`).
The database is opened only by `artifact` and `init`, lazily, so importing
this module stays cheap.
"""

from __future__ import annotations

import atexit
import json
import numbers
import operator
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from time import time as _now

from mayuri.errors import MayuriError
from mayuri.run_contract import (
    ATTEMPT_VAR,
    CHECKPOINT_DIR_VAR,
    CHECKPOINTS_DIR,
    OUTPUTS_FILE,
    OUTPUTS_LOCK,
    PARAMS_FILE,
    PARAMS_USED_FILE,
    PARAMS_VAR,
    RESUME_FROM_VAR,
    RUN_DIR_VAR,
    RUN_ID_VAR,
    SCRIPT_PARAMS_FILE,
    STORE_VAR,
)

# Set by type checkers only: importing `typing` would cost every job's start (~2 ms).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from mayuri.tracking.writer import MetricBuffer

__all__ = ["CHECKPOINTS_DIR", "OUTPUTS_FILE", "OUTPUTS_LOCK", "PARAMS_FILE", "PARAMS_USED_FILE", "PARAMS_VAR",
           "SCRIPT_PARAMS_FILE"]


class NotInJob(MayuriError):
    """An in-job function was called outside a job that Mayuri launched."""


class CurrentRun:
    """The run this process belongs to.

    A plain class: `dataclasses` (with `inspect`) or `typing.NamedTuple` would
    cost every job's start several ms, for four fields.
    """

    __slots__ = ("attempt", "dir", "id", "store")

    def __init__(self, id: str, dir: Path, store: Path, attempt: int) -> None:  # noqa: A002 (the run's id)
        self.id, self.dir, self.store, self.attempt = id, dir, store, attempt

    def __repr__(self) -> str:
        return f"CurrentRun(id={self.id!r}, dir={str(self.dir)!r}, attempt={self.attempt})"


def current_run() -> CurrentRun:
    """The run this job is (from MAYURI_RUN_ID, MAYURI_RUN_DIR, MAYURI_STORE, MAYURI_ATTEMPT)."""
    try:
        return CurrentRun(
            id=os.environ[RUN_ID_VAR],
            dir=Path(os.environ[RUN_DIR_VAR]),
            store=Path(os.environ.get(STORE_VAR, "")),
            attempt=int(os.environ.get(ATTEMPT_VAR, "1")),
        )
    except KeyError:
        raise NotInJob(
            "this is not a job launched by `mayuri run` (MAYURI_RUN_ID is not set).",
            hint="Run it through `mayuri run exp.yaml`.",
        ) from None


_noticed: set[str] = set()


def _outside(call: str) -> bool:
    """Whether this process is outside any run, so that `call` does nothing (after one notice on stderr).

    A script written for Mayuri then also runs as a plain `python train.py`;
    with MAYURI_STRICT=1 the call fails instead (NotInJob), for scripts that must be tracked.
    """
    if RUN_ID_VAR in os.environ or os.environ.get("MAYURI_STRICT") == "1":
        return False
    if call not in _noticed:
        _noticed.add(call)
        import sys

        print(f"mayuri: not in a run, so mayuri.{call}() records nothing (this notice is shown once; "
              "run it with `mayuri run`, or call mayuri.init(...) first; MAYURI_STRICT=1 makes it an error).",
              file=sys.stderr)
    return True


def params(defaults: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The job's resolved params (as written to params.json in its run folder), over `defaults`.

    Outside a run: a copy of `defaults` (or an empty mapping), so that the script runs by hand too.
    In a run, the mapping records the keys the job reads (see `UsedParams`): only those count in
    the run's fingerprint. The scheduler passes the params in MAYURI_PARAMS, so that reading them
    here opens no file: a job that opens params.json itself is seen doing it, and then every
    param counts.
    """
    if RUN_ID_VAR not in os.environ and os.environ.get("MAYURI_STRICT") != "1":
        return dict(defaults or {})
    run = current_run()
    text = os.environ.get(PARAMS_VAR)
    if text is None:
        with open(run.dir / PARAMS_FILE, encoding="utf-8") as handle:
            text = handle.read()
    loaded: dict[str, Any] = json.loads(text)
    return UsedParams({**defaults, **loaded} if defaults else loaded, _UsedLog(run.dir / PARAMS_USED_FILE), "")

class _UsedLog:
    """The params a job read, appended to a file in its run folder as they are first read.

    Appended at once (one write per new key), not at exit: a job that ends
    with os._exit or is killed after its work still leaves what it read.
    Every process of the job appends to the same file.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.seen: set[str] = set()

    def add(self, key: str) -> None:
        if key in self.seen:
            return
        self.seen.add(key)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o666)
        try:
            os.write(fd, (key + "\n").encode("utf-8"))
        finally:
            os.close(fd)


class UsedParams(dict):  # type: ignore[type-arg]
    """A job's params that record which keys the job reads (nested ones by dotted path).

    Reading one key records it; reading a nested mapping records nothing until
    a key of it is read; anything that sees the whole mapping (iterating it,
    its keys, values or items, copying it, comparing or printing it) records
    the mapping whole (`*` at the top).
    """

    def __init__(self, data: dict[str, Any], log: _UsedLog, prefix: str) -> None:
        super().__init__(data)
        self._log = log
        self._prefix = prefix

    def _whole(self) -> None:
        self._log.add(self._prefix[:-1] if self._prefix else "*")

    def _value(self, key: Any, value: Any) -> Any:
        if isinstance(value, dict) and isinstance(key, str):
            return UsedParams(value, self._log, f"{self._prefix}{key}.")
        self._log.add(f"{self._prefix}{key}")
        return value

    def __getitem__(self, key: Any) -> Any:
        try:
            value = super().__getitem__(key)
        except KeyError:
            self._log.add(f"{self._prefix}{key}")  # its absence is what the job saw
            raise
        return self._value(key, value)

    def get(self, key: Any, default: Any = None) -> Any:
        if key in self:
            return self[key]
        self._log.add(f"{self._prefix}{key}")
        return default

    def __contains__(self, key: object) -> bool:
        # Presence is something the job saw, whether the key is there or not.
        self._log.add(f"{self._prefix}{key}")
        return super().__contains__(key)

    def __iter__(self) -> Any:
        self._whole()
        return super().__iter__()

    def keys(self) -> Any:
        self._whole()
        return super().keys()

    def values(self) -> Any:
        self._whole()
        return super().values()

    def items(self) -> Any:
        self._whole()
        return super().items()

    def copy(self) -> dict[str, Any]:
        self._whole()
        return dict(super().items())

    def __len__(self) -> int:
        self._whole()
        return super().__len__()

    def __eq__(self, other: object) -> bool:
        self._whole()
        return super().__eq__(other)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        self._whole()
        return super().__repr__()

    def __reduce__(self) -> Any:
        self._whole()
        return (dict, (dict(super().items()),))


def _check_json(name: str, value: Any) -> None:
    try:
        json.dumps(value, allow_nan=True)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"mayuri.output({name!r}, ...): the value must be JSON-serialisable ({exc}).") from None


def read_outputs(run_dir: Path) -> dict[str, Any]:
    """The outputs a job set with `output()` (read by the scheduler when the job ends)."""
    try:
        with open(run_dir / OUTPUTS_FILE, encoding="utf-8") as handle:
            loaded: dict[str, Any] = json.load(handle)
            return loaded
    except FileNotFoundError:
        return {}


def output(name: str, value: Any) -> None:
    """Declare a small result (a path, a score) that downstream jobs get through `depends_on`."""
    if not isinstance(name, str) or not name:
        raise ValueError("mayuri.output: the name must be a non-empty string.")
    _check_json(name, value)
    if _outside("output"):
        return
    run_dir = current_run().dir
    # Imported here: they cost start-up time for every `import mayuri`.
    import fcntl

    # Several processes of one job (fork or spawn workers, threads) may set outputs at once: each
    # read-modify-write holds an exclusive lock, or one would drop what another had just added.
    lock = os.open(run_dir / OUTPUTS_LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        values = read_outputs(run_dir)
        values[name] = value
        _write_json(run_dir, OUTPUTS_FILE, values)
    finally:
        os.close(lock)


def _write_json(run_dir: Path, name: str, value: Any) -> None:
    from mayuri.store.perms import (
        write_text_atomically,  # loads the store's helpers only when needed
    )

    # Written whole to a temporary name and renamed (a crash never leaves half a file), with the
    # mode a plain create would give it (mkstemp's 0600 would hide it from a shared store's group).
    write_text_atomically(run_dir / name, json.dumps(value, sort_keys=True))


class MetricValueError(MayuriError, TypeError):
    """`mayuri.log` was given something that is not one number."""


_buffer: MetricBuffer | None = None
_buffer_lock = threading.Lock()


def _open_buffer() -> MetricBuffer | None:
    global _buffer
    if _outside("log"):
        return None
    from mayuri.tracking.writer import MetricBuffer

    run = current_run()
    with _buffer_lock:
        if _buffer is None:
            _buffer = MetricBuffer(run.id, run.store)
            _close_in_worker()
        return _buffer


def _close_in_worker() -> None:
    # A forked multiprocessing worker ends with os._exit(), which skips atexit:
    # its own exit hooks (util.Finalize) are what still runs, so the points go there.
    # (Asked at the first log, not at fork: the parent may not have imported this module yet.)
    import sys

    processing = sys.modules.get("multiprocessing")
    if processing is not None and processing.parent_process() is not None:
        from multiprocessing import util

        util.Finalize(None, _close_buffer, exitpriority=100)


def _scalar(key: str, value: Any) -> float:
    """The slow path of `log`: anything that is not a plain int or float."""
    if isinstance(value, bool):
        return float(value)
    item, numel = getattr(value, "item", None), getattr(value, "numel", None)
    # numpy scalars and 0-d arrays (size 1), torch tensors of one element (numel() 1).
    if callable(item) and ((callable(numel) and numel() == 1) or getattr(value, "size", None) == 1):
        value = item()
    if isinstance(value, numbers.Real):
        return float(value)
    raise MetricValueError(
        f"mayuri.log: {key!r} must be one number (int or float), not {type(value).__name__}.",
        hint=f"Log one scalar per name, e.g. mayuri.log(step=step, {key}=float(x)); "
        "keep lists and tensors out, or reduce them to a number first.",
    )


def log(metrics: Mapping[str, Any] | None = None, /, *, step: int | None = None, **scalars: Any) -> None:
    """Record scalar metrics at `step` (one more than the previous call's step when left out).

    `mayuri.log(step=10, loss=0.31, acc=0.9)`; names with other characters go
    in a mapping: `mayuri.log({"eval/loss": 0.4}, step=10)`. Costs about a
    microsecond per value: the points are written in the background, at
    least every half second.
    """
    buffer = _buffer or _open_buffer()
    if buffer is None:
        return
    if step is None:
        step = buffer.next_step
    elif type(step) is not int:
        step = _step(step)
    buffer.next_step = step + 1
    now = _now()
    append = buffer.append
    if metrics is not None:
        scalars = _merge(metrics, scalars)
    for key, value in scalars.items():
        if type(value) is not float and type(value) is not int:
            value = _scalar(key, value)
        append((key, step, value, now))


def _merge(metrics: Mapping[str, Any], scalars: dict[str, Any]) -> dict[str, Any]:
    for key in metrics:
        if not isinstance(key, str) or not key:
            raise MetricValueError(f"mayuri.log: metric names must be non-empty strings, not {key!r}.")
    return {**metrics, **scalars}


def _step(step: Any) -> int:
    try:
        return operator.index(step)
    except TypeError:
        raise MetricValueError(
            f"mayuri.log: step must be an integer, not {type(step).__name__} ({step!r})."
        ) from None


def _close_buffer() -> None:
    global _buffer
    with _buffer_lock:
        buffer, _buffer = _buffer, None
    if buffer is not None:
        buffer.close()


def _forget_after_fork() -> None:
    # A forked child (a DataLoader worker) has no flusher thread and shares the
    # parent's pipe to the writer: if it logs, it starts a buffer of its own.
    global _buffer, _buffer_lock
    _buffer = None
    _buffer_lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_after_fork)
atexit.register(_close_buffer)


_checkpoint_policy: Any = None


def checkpoint_dir(*, keep_last: int | None = None, keep_best: int | None = None, metric: str | None = None,
                   mode: str = "min") -> Path:
    """This attempt's checkpoint folder (created): MAYURI_CHECKPOINT_DIR, else `checkpoints/` in the run folder.

    A retried attempt, or a new run of an interrupted one, finds what was
    saved here through `resume_from()`. With `keep_last` and/or `keep_best`
    (ranked by `metric`, lowest first unless `mode="max"`), each
    `checkpoint_saved(path, **metrics)` deletes the noted checkpoints beyond
    that policy.
    """
    global _checkpoint_policy
    if keep_last is not None or keep_best is not None:
        from mayuri.tracking.checkpoints import Policy

        _checkpoint_policy = Policy(keep_last, keep_best, metric, mode)
    given = os.environ.get(CHECKPOINT_DIR_VAR)
    folder = Path(given) if given else current_run().dir / CHECKPOINTS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def checkpoint_saved(path: str | os.PathLike[str], **metrics: float) -> list[str]:
    """Note a checkpoint just saved in `checkpoint_dir()` (a file or folder) with its metrics.

    Applies the retention policy given to `checkpoint_dir()`; returns the
    names of the checkpoints it deleted.
    """
    from mayuri.tracking.checkpoints import Policy, note_saved

    return note_saved(checkpoint_dir(), Path(path), metrics, _checkpoint_policy or Policy())


def resume_from() -> Path | None:
    """The checkpoint folder of the previous attempt, when this one is a retry (MAYURI_RESUME_FROM), or None."""
    value = os.environ.get(RESUME_FROM_VAR)
    return Path(value) if value else None


def artifact(path: str | os.PathLike[str], name: str | None = None) -> str:
    """Keep a file or a folder with the run, content-addressed in the store; returns its name.

    `name` defaults to the file or folder name; saving a name again replaces it.
    """
    if _outside("artifact"):
        return name or Path(path).name
    from mayuri.tracking.artifacts import save_artifact

    run = current_run()
    return save_artifact(run.store, run.id, Path(path), name, kind=None)


def init(experiment: str, *, params: Mapping[str, Any] | None = None, job: str | None = None) -> CurrentRun:
    """Make this process a run: inside a Mayuri job, the job's run; elsewhere a new ad-hoc run.

    Inside a job, `params` are recorded as the run's script params (`show` lists them),
    for scripts that build their own config. The ad-hoc run goes into the store of
    the project around the current folder, is `running` until the process exits
    (or `finish()`), then `succeeded`, or `failed` after an uncaught exception.
    """
    if RUN_ID_VAR in os.environ:
        run = current_run()
        if params:
            # Paths and other objects a script's config holds are kept as their text.
            given = json.loads(json.dumps(dict(params), default=str))
            _write_json(run.dir, SCRIPT_PARAMS_FILE, given)
        return run
    from mayuri.tracking.adhoc import start_adhoc

    start_adhoc(experiment, dict(params or {}), job)
    return current_run()


def finish(status: str | None = None) -> None:
    """End an ad-hoc run now (default: succeeded); in a job, just write out pending metrics."""
    _close_buffer()
    from mayuri.tracking.adhoc import finish_adhoc

    finish_adhoc(status)
