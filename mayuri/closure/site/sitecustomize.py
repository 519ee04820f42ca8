"""Mayuri's closure hook, loaded into every Python process of a job.

The scheduler puts this folder first on the job's PYTHONPATH, so Python's
`site` imports this module at start-up (and so do the job's child Python
processes, which inherit the environment). With MAYURI_CLOSURE_DIR set, it
installs an audit hook (PEP 578) that appends to
`$MAYURI_CLOSURE_DIR/<pid>-<random>.rec` one record per new fact about the
project tree (see `mayuri.closure.collect` for the reader):

    KIND \\t MONOTONIC_NS \\t ABSOLUTE_PATH_OR_NAME \\0

KIND is `c` (code: executed or imported module source, the `__main__` script),
`R` (file opened for reading; the path follows its identity at that moment,
"dev,ino,size,mtime_ns,ctime_ns"), `r` (a file that was not there opened for
reading), `w` (file opened for writing), `l` (folder listed) or `m` (top-level
name of an imported module). The C tracer (`tracer.c`) writes the same format. Each record is one
`os.write` on an O_APPEND descriptor, so nothing is lost when the process is
killed or leaves through `os._exit`.

Either way it then steps aside: it leaves `sys.path` as it would have been and
runs the next `sitecustomize` on the path, if any.

Standard library only, POSIX only, and it never raises into the job.
"""

from __future__ import annotations

import os
import sys

# Set by type checkers only: importing `typing` would cost every job's start-up.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import TracebackType

_HERE = os.path.dirname(os.path.abspath(__file__))

# Names that are no distribution: not worth a record.
_NOT_MODULES = frozenset(("", "__main__", "__mp_main__", "sitecustomize", "usercustomize"))


def _install(closure_dir: str, root: str, excludes: list[str]) -> None:
    """Install the audit hook and the exit-time sweep of `sys.modules`."""
    import atexit
    from _thread import get_ident
    from time import monotonic_ns

    # Everything the hook touches is bound to a local of this closure: cell
    # lookups are cheaper than globals, and later monkeypatching of `os` by the
    # job cannot redirect the hook.
    getcwd = os.getcwd
    getpid = os.getpid
    stat = os.stat
    getframe = sys._getframe
    normpath = os.path.normpath
    fspath = os.fspath
    encoding = sys.getfilesystemencoding()
    fsdecode = os.fsdecode
    write = os.write
    acc_mode = os.O_ACCMODE
    wronly = os.O_WRONLY
    rdwr = os.O_RDWR
    creating = os.O_CREAT | os.O_TRUNC

    # Set by the scheduler with the C tracer's preload (closure/launch.py `with_tracer`).
    traced = "MAYURI_TRACER_SKIP" in os.environ
    root = normpath(root)
    prefix = root if root == "/" else root + "/"
    skip: set[str] = set()
    for folder in excludes + [closure_dir]:
        # Compared against non-resolved paths, so both spellings are needed.
        for spelling in (os.path.abspath(folder), os.path.realpath(folder)):
            skip.add(spelling.rstrip("/") + "/")
    for folder in (sys.prefix, sys.base_prefix, sys.exec_prefix):
        # Only an environment inside the project: a project under the prefix
        # (/usr/src/app with a /usr Python) must still be tracked.
        for spelling in (os.path.abspath(folder), os.path.realpath(folder)):
            if spelling.startswith(prefix):
                skip.add(spelling.rstrip("/") + "/")
    skip_prefixes = tuple(skip)
    # The project and the `[cache] roots` folders (both spellings, as for the skipped ones).
    roots = [folder for folder in os.environ.get("MAYURI_CACHE_ROOTS", "").split(os.pathsep) if folder]
    tracked = (prefix,) + tuple(
        {spelling.rstrip("/") + "/" for folder in roots for spelling in (os.path.abspath(folder), os.path.realpath(folder))}
    )
    # Other runs' folders in the store (an upstream's results) are reported, not the job's own:
    # a downstream job counts only the upstream files it used (mayuri/upstream_reads.py).
    other_runs = tuple({folder.rstrip("/") + "/" for folder in os.environ.get("MAYURI_TRACE_RUNS", "").split(":")
                        if folder})
    own_run = tuple(folder + os.environ.get("MAYURI_RUN_ID", "") + "/" for folder in other_runs)
    tracked += other_runs
    # The run's params.json, opened by the job itself: then every param counts (see mayuri/params_used.py).
    # mayuri.params() reads the params from MAYURI_PARAMS and opens no file.
    run_dir = os.environ.get("MAYURI_RUN_DIR")
    params_files = {os.path.join(spelling(run_dir), "params.json") for spelling in (os.path.abspath, os.path.realpath)} \
        if run_dir else set()
    seen_params: set[str] = set()

    stdlib = os.path.dirname(os.__file__)
    # Opens from these frames are the import system loading code.
    loader_frames = (
        "<frozen importlib",
        "<frozen zipimport",
        os.path.join(stdlib, "importlib", "_bootstrap"),
        os.path.join(stdlib, "zipimport.py"),
    )
    # Data read through a loader (pkgutil.get_data) stays an input.
    code_suffixes = (".py", ".pyc", ".pyw", ".zip")
    # What the hook still looks at when the C tracer records data: code, and the run's params.json
    # (which params a job used, see on_open).
    hooked_suffixes = code_suffixes + ("params.json",)
    # Listings from these frames are the import system (FileFinder caches,
    # distribution discovery scanning every sys.path entry): they do not
    # depend on the job and would make the project root a listing of every job.
    listing_frames = loader_frames + (os.path.join(stdlib, "importlib", "metadata"),)
    # Listings made anywhere under Mayuri's own in-job API (mayuri.artifact walking an output
    # folder) are the job's outputs being stored, not inputs it depends on.
    mayuri_package = os.path.dirname(os.path.dirname(_HERE))
    own_frames = tuple({os.path.join(p, "") for p in (mayuri_package, os.path.realpath(mayuri_package))})
    listing_suffixes = ("/pkg_resources/__init__.py", "/importlib_metadata/__init__.py")

    busy: set[int] = set()
    state = [-1, -1]  # [pid owning the record file, its fd]; fd -2: recording disabled
    # What this process (or its parent before a fork) has already recorded.
    seen_code: set[str] = set()
    seen_read: set[str] = set()
    seen_written: set[str] = set()
    seen_listed: set[str] = set()
    seen_modules: set[str] = set()

    def resolve(given: object) -> str | None:
        """Absolute normalised path if it is in the tracked part of the project, else None."""
        if type(given) is str:
            path = given
        elif isinstance(given, int):
            return None  # a file descriptor: already recorded when it was opened
        else:
            native = fspath(given)  # type: ignore[call-overload]
            path = fsdecode(native) if isinstance(native, bytes) else native
        if path[:1] != "/":
            if not path:
                return None
            path = getcwd() + "/" + path
        elif not path.startswith(tracked) and path != root:
            # The common case for everything outside the project: a prefix test.
            if "/.." not in path and "/./" not in path and "//" not in path:
                return None
        if "/." in path or "//" in path or path[-1] == "/":
            path = normpath(path)
        if not path.startswith(tracked) and path != root:
            return None
        tail = path + "/"
        if other_runs and tail.startswith(other_runs):
            return None if tail.startswith(own_run) else path
        if tail.startswith(skip_prefixes) or "/site-packages/" in tail or "/dist-packages/" in tail:
            return None
        return path

    def open_record_file() -> int:
        pid = getpid()
        old = state[1]
        if old >= 0:
            # Inherited through fork: the parent keeps appending to it.
            try:
                os.close(old)
            except OSError:
                pass
        name = "%d-%s.rec" % (pid, os.urandom(4).hex())
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_CLOEXEC", 0)
        try:
            os.makedirs(closure_dir, exist_ok=True)
            fd = os.open(os.path.join(closure_dir, name), flags, 0o644)
        except OSError:
            fd = -2
        state[0] = pid
        state[1] = fd
        return fd

    def emit(seen: set[str], kind: str, value: str, extra: str = "") -> None:
        if value in seen:
            return
        seen.add(value)
        if state[0] != getpid():
            open_record_file()
        fd = state[1]
        if fd >= 0:
            record = "%s\t%d\t%s%s\0" % (kind, monotonic_ns(), extra, value)
            write(fd, record.encode(encoding, "surrogateescape"))

    def emit_read(path: str) -> None:
        # The file's identity before the job reads it: a file replaced while
        # the job runs (mv, cp -p) is then caught at the end.
        if path in seen_read:
            return
        try:
            st = stat(path)
        except OSError:
            emit(seen_read, "r", path)
            return
        identity = "%d,%d,%d,%d,%d" % (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        emit(seen_read, "R", path, identity)

    def emit_code(path: str) -> None:
        # The import system opens the cached bytecode; the source is what counts.
        if path.endswith(".pyc") and "/__pycache__/" in path:
            head, _, name = path.rpartition("/__pycache__/")
            path = head + "/" + name.partition(".")[0] + ".py"
        emit(seen_code, "c", path)

    def emit_module(name: object) -> None:
        if isinstance(name, str):
            top = name.partition(".")[0]
            if top not in seen_modules and top not in _NOT_MODULES:
                emit(seen_modules, "m", top)

    # The handlers run two frames below the audited call: handler, hook, caller.
    def on_open(args: tuple) -> None:
        given = args[0]
        if params_files and type(given) is str and given.endswith("params.json"):
            whole = normpath(given if given[:1] == "/" else getcwd() + "/" + given)
            if whole in params_files:
                emit(seen_params, "J", whole)  # mayuri.params_used.PARAMS_OPENED
        path = resolve(given)
        if path is None:
            return
        mode = args[1]
        if mode is None:  # os.open: only flags
            flags = args[2]
            access = flags & acc_mode
            writing = access == wronly or (access == rdwr and flags & creating)
        else:
            writing = "r" not in mode
        if writing:
            if "/__pycache__/" not in path and not traced:
                emit(seen_written, "w", path)
            return
        if not path.endswith(code_suffixes):
            # Only code is loaded by the import system: no need for the frame.
            # The C tracer, where it runs, records data reads with less work.
            if not traced:
                emit_read(path)
            return
        try:
            caller = getframe(2).f_code.co_filename
        except ValueError:
            # No Python frame at all: the interpreter opening the __main__ script.
            emit_code(path)
            return
        if caller.startswith(loader_frames):
            emit_code(path)
        else:
            emit_read(path)

    def on_listing(args: tuple) -> None:
        target = args[0]
        path = resolve("." if target is None else target)
        if path is None:
            return
        try:
            frame = getframe(2)
        except ValueError:
            frame = None
        if frame is not None:
            caller = frame.f_code.co_filename
            if caller.startswith(listing_frames) or caller.endswith(listing_suffixes):
                return
            while frame is not None:
                if frame.f_code.co_filename.startswith(own_frames):
                    return
                frame = frame.f_back
        emit(seen_listed, "l", path)

    def on_exec(args: tuple) -> None:
        code = args[0]
        try:
            frame = getframe(2)
        except ValueError:
            frame = None
        if frame is not None and frame.f_code.co_name == "_call_with_frames_removed":
            # The import system executing a module; `importlib.import_module`
            # raises no `import` event, so the module's name is taken here.
            call_args = frame.f_locals.get("args")
            namespace = call_args[1] if isinstance(call_args, tuple) and len(call_args) > 1 else None
            if isinstance(namespace, dict):
                emit_module(namespace.get("__name__"))
        filename = getattr(code, "co_filename", None)
        if isinstance(filename, str) and filename[:1] != "<":
            path = resolve(filename)
            if path is not None:
                emit_code(path)

    def on_import(args: tuple) -> None:
        emit_module(args[0])

    def on_sqlite(args: tuple) -> None:
        # SQLite opens its files in C: a database (and its write-ahead log,
        # where one is there) is read through this event, not `open`.
        path = resolve(args[0]) if args and args[0] != ":memory:" else None
        if path is not None:
            emit_read(path)
            if os.path.exists(path + "-wal"):
                emit_read(path + "-wal")

    def on_spawn(args: tuple) -> None:
        # Without the C tracer nothing sees what a started program reads: it may read params.json,
        # so every param counts (mayuri.params_used.PARAMS_OPENED), never a false cache hit.
        emit(seen_params, "J", "(a program the job started)")

    handlers = {
        "open": on_open,
        "os.listdir": on_listing,
        "os.scandir": on_listing,
        "exec": on_exec,
        "import": on_import,
        "sqlite3.connect": on_sqlite,
    }
    if not traced:
        handlers.update(dict.fromkeys(("subprocess.Popen", "os.system", "os.posix_spawn", "os.exec"), on_spawn))
    get_handler = handlers.get

    def hook(event: str, args: tuple) -> None:
        handler = get_handler(event)  # membership test first: most events return here
        if handler is None:
            return
        if handler is on_open and traced:
            given = args[0]
            if type(given) is str and not given.endswith(hooked_suffixes):
                return  # data: the C tracer records it (the cheapest way out of the hot path)
        # Per-thread guard: our own os.open (and anything else the handlers
        # trigger) re-enters the hook; other threads must still be recorded.
        tid = get_ident()
        if tid in busy:
            return
        busy.add(tid)
        try:
            handler(args)
        except Exception:
            pass
        finally:
            busy.discard(tid)

    def sweep() -> None:
        # Belt and braces at a normal exit: modules that bypassed the events
        # (extension modules loaded via importlib.import_module, for instance).
        tid = get_ident()
        busy.add(tid)
        try:
            for name, module in list(sys.modules.items()):
                try:
                    emit_module(name)
                    namespace = getattr(module, "__dict__", None)
                    filename = namespace.get("__file__") if isinstance(namespace, dict) else None
                    if isinstance(filename, str):
                        path = resolve(filename)
                        if path is not None:
                            emit_code(path)
                except Exception:
                    pass
        except Exception:
            pass
        finally:
            busy.discard(tid)

    def after_fork_in_child() -> None:
        # Threads that were inside the hook do not exist in the child.
        busy.clear()

    seen_errors: set[str] = set()
    previous_excepthook = sys.excepthook

    def excepthook(kind: type[BaseException], value: BaseException, traceback: TracebackType | None) -> None:
        # The scheduler reads this to recognise a GPU out-of-memory (torch's
        # OutOfMemoryError) even when stderr was redirected or truncated.
        try:
            first = str(value).splitlines()[0] if str(value) else ""
            text = "%s.%s: %s" % (kind.__module__, kind.__qualname__, first)
            emit(seen_errors, "x", text[:2000].replace("\0", " "))
        except Exception:
            pass
        previous_excepthook(kind, value, traceback)

    sys.excepthook = excepthook
    sys.addaudithook(hook)
    atexit.register(sweep)
    if hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=after_fork_in_child)


def _chain() -> None:
    """Hide this folder from the job and run the next `sitecustomize`, if any."""
    sys.path[:] = [entry for entry in sys.path if os.path.abspath(entry or ".") != _HERE]
    sys.path_importer_cache.pop(_HERE, None)
    me = sys.modules.pop("sitecustomize", None)
    try:
        import sitecustomize  # noqa: F401  (the project's own, found further along sys.path)
    except ModuleNotFoundError as exc:
        if exc.name != "sitecustomize":
            raise
        # The import system pops the module it is loading from sys.modules
        # once this file has run: it must still be there.
        if me is not None:
            sys.modules["sitecustomize"] = me


def _main() -> None:
    closure_dir = os.environ.get("MAYURI_CLOSURE_DIR")
    root = os.environ.get("MAYURI_PROJECT_ROOT")
    if closure_dir and root and os.name == "posix" and hasattr(sys, "addaudithook"):
        try:
            excluded = os.environ.get("MAYURI_CLOSURE_EXCLUDE", "")
            excludes = [path for path in excluded.split(os.pathsep) if path]
            _install(closure_dir, root, excludes)
        except Exception:
            pass  # tracking is lost for this process; the job itself must still run
    _chain()


_main()
