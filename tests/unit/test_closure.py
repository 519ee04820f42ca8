"""Closure tracking end to end: real Python children under `closure_env`, then `collect_closure`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from mayuri.closure import Closure, closure_env, collect_closure
from mayuri.closure.launch import MAYURI_PACKAGE, SITE_DIR


def _clean_env() -> dict[str, str]:
    # Bytecode caches on, as for real jobs: the import system then opens the .pyc.
    dropped = ("MAYURI_", "PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX")
    return {key: value for key, value in os.environ.items() if not key.startswith(dropped)}


class Project:
    """A throwaway project tree with a store folder, and a way to run tracked jobs in it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.store = root / ".mayuri"
        self.closure_dir = self.store / "closure"
        root.mkdir(parents=True)

    def write(self, relative: str, text: str = "") -> Path:
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
        return path

    def env(self, base: dict[str, str] | None = None) -> dict[str, str]:
        return closure_env(base or _clean_env(), self.closure_dir, self.root, [self.store])

    def run(
        self,
        *args: str,
        tracked: bool = True,
        env: dict[str, str] | None = None,
        python: str = sys.executable,
        stdin: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        environment = self.env(env) if tracked else (env or _clean_env())
        return subprocess.run(
            [python, *args],
            cwd=self.root,
            env=environment,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
        )

    def reset(self) -> None:
        for record in self.closure_dir.glob("*.rec"):
            record.unlink()

    def closure(self) -> Closure:
        return collect_closure(self.closure_dir, self.root, [self.store])


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return Project(tmp_path / "proj")


def _ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, result.stderr
    return result


def test_imported_helper_is_code(project: Project) -> None:
    project.write("main.py", "import json\nimport helper\nprint(helper.VALUE)\n")
    project.write("helper.py", "VALUE = 1\n")
    project.write("unused.py", "VALUE = 2\n")
    # The second run loads helper from the bytecode cache the first one wrote.
    for _ in range(2):
        project.reset()
        _ok(project.run("main.py"))
        closure = project.closure()
        assert closure.code == {"main.py", "helper.py"}
        assert closure.inputs == set()
        assert {"json", "helper"} <= closure.modules
        assert "__main__" not in closure.modules
    assert list((project.root / "__pycache__").glob("helper.*.pyc"))


def test_import_module_is_code(project: Project) -> None:
    project.write(
        "main.py",
        """
        import importlib
        importlib.import_module("pkg.sub")
        importlib.import_module("colorsys")  # a stdlib module nothing else imports
        """,
    )
    project.write("pkg/__init__.py")
    project.write("pkg/sub.py", "X = 1\n")
    _ok(project.run("main.py"))
    closure = project.closure()
    assert closure.code == {"main.py", "pkg/__init__.py", "pkg/sub.py"}
    assert {"pkg", "colorsys"} <= closure.modules


def test_run_module_is_code(project: Project) -> None:
    project.write("pkg/__init__.py")
    project.write("pkg/tool.py", "import pkg.lib\nprint('ran', __name__)\n")
    project.write("pkg/lib.py")
    result = _ok(project.run("-m", "pkg.tool"))
    assert "ran __main__" in result.stdout
    closure = project.closure()
    assert closure.code == {"pkg/__init__.py", "pkg/tool.py", "pkg/lib.py"}
    assert closure.listings == set()


def test_reads_are_inputs(project: Project) -> None:
    project.write(
        "main.py",
        """
        import os, pathlib, threading
        with open("data/a.csv") as f:
            f.read()
        pathlib.Path("notes.txt").read_text()
        os.close(os.open(os.path.abspath("raw.bin"), os.O_RDONLY))
        thread = threading.Thread(target=lambda: open(b"data/threaded.csv").read())
        thread.start()
        thread.join()
        """,
    )
    for name in ("data/a.csv", "notes.txt", "raw.bin", "data/threaded.csv", "data/unread.csv"):
        project.write(name, "a,b\n1,2\n")
    _ok(project.run("main.py"))
    closure = project.closure()
    assert closure.inputs == {"data/a.csv", "notes.txt", "raw.bin", "data/threaded.csv"}
    assert closure.code == {"main.py"}
    assert closure.listings == set()


def test_missing_file_is_input(project: Project) -> None:
    project.write(
        "main.py",
        """
        try:
            open("config/override.toml")
        except FileNotFoundError:
            pass
        """,
    )
    _ok(project.run("main.py"))
    assert project.closure().inputs == {"config/override.toml"}


def test_glob_records_listing_not_the_script_folder(project: Project) -> None:
    project.write(
        "main.py",
        """
        import glob, importlib.metadata, pathlib
        import helper  # the import system lists the root; that is not the job's doing
        importlib.metadata.version("pytest")  # scans every sys.path entry, root included
        print(glob.glob("data/*.csv"))
        list(pathlib.Path("shards").iterdir())
        """,
    )
    project.write("helper.py")
    project.write("data/a.csv")
    project.write("shards/0.bin")
    _ok(project.run("main.py"))
    closure = project.closure()
    assert closure.listings == {"data", "shards"}
    assert closure.inputs == set()


def test_root_listing_recorded_when_the_job_lists_it(project: Project) -> None:
    project.write("main.py", "import os\nos.listdir()\n")
    _ok(project.run("main.py"))
    assert project.closure().listings == {"."}


def test_virtualenv_inside_project_is_excluded(project: Project) -> None:
    venv = project.root / ".venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    project.write(".venv/lib/python3.11/site-packages/vendored.py", "X = 1\n")
    project.write(".venv/share/data.txt", "x")
    project.write(
        "main.py",
        """
        import sys
        sys.path.insert(0, ".venv/lib/python3.11/site-packages")
        import vendored
        open(".venv/pyvenv.cfg").read()
        open(".venv/share/data.txt").read()
        open("own.txt").read()
        """,
    )
    project.write("own.txt", "x")
    # Once with the project's interpreter (sys.prefix is the .venv), once with Mayuri's.
    for python in (str(venv / "bin" / "python"), sys.executable):
        project.reset()
        _ok(project.run("main.py", python=python))
        closure = project.closure()
        assert closure.code == {"main.py"}
        assert closure.inputs == {"own.txt"}
        assert "vendored" in closure.modules


def test_project_inside_the_interpreter_prefix_is_tracked(tmp_path: Path) -> None:
    # As with /usr/src/app run by a /usr/bin/python: the prefix contains the project.
    venv = tmp_path / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    project = Project(venv / "proj")
    project.write("main.py", "import helper\nopen('in.txt').read()\n")
    project.write("helper.py")
    project.write("in.txt")
    _ok(project.run("main.py", python=str(venv / "bin" / "python")))
    closure = project.closure()
    assert closure.code == {"main.py", "helper.py"}
    assert closure.inputs == {"in.txt"}


def test_store_is_excluded(project: Project) -> None:
    project.write(".mayuri/runs/upstream/out.csv", "1\n")
    project.write(
        "main.py",
        """
        import os
        os.listdir(".mayuri/runs")
        open(".mayuri/runs/upstream/out.csv").read()
        """,
    )
    _ok(project.run("main.py"))
    closure = project.closure()
    assert closure.inputs == set()
    assert closure.listings == set()


def test_outputs_read_back_are_not_inputs(project: Project) -> None:
    project.write("state.json", "{}")
    project.write(
        "main.py",
        """
        import os
        os.makedirs("out", exist_ok=True)
        with open("out/result.txt", "w") as f:
            f.write("42")
        open("out/result.txt").read()
        previous = open("state.json").read()  # read, then rewritten: still an input
        open("state.json", "w").write(previous)
        """,
    )
    _ok(project.run("main.py"))
    assert project.closure().inputs == {"state.json"}


def test_child_python_process_is_tracked(project: Project) -> None:
    project.write(
        "main.py", "import subprocess, sys\nsubprocess.run([sys.executable, 'other.py'], check=True)\n"
    )
    project.write("other.py", "import helper2\nopen('data2.txt').read()\n")
    project.write("helper2.py")
    project.write("data2.txt", "x")
    _ok(project.run("main.py"))
    closure = project.closure()
    assert closure.code == {"main.py", "other.py", "helper2.py"}
    assert closure.inputs == {"data2.txt"}
    assert len(list(project.closure_dir.glob("*.rec"))) >= 2


@pytest.mark.parametrize("method", ["spawn", "fork"])
def test_multiprocessing_workers_are_tracked(project: Project, method: str) -> None:
    project.write(
        "main.py",
        f"""
        import multiprocessing as mp

        def work(x):
            import mphelper
            open("worker_input.txt").read()
            return mphelper.double(x)

        if __name__ == "__main__":
            with mp.get_context("{method}").Pool(2) as pool:
                print(sum(pool.map(work, range(4))))
        """,
    )
    project.write("mphelper.py", "def double(x):\n    return 2 * x\n")
    project.write("worker_input.txt", "x")
    result = _ok(project.run("main.py"))
    assert result.stdout.strip() == "12"
    closure = project.closure()
    assert closure.code == {"main.py", "mphelper.py"}
    assert closure.inputs == {"worker_input.txt"}
    # Forked workers too write their own files, not the parent's inherited one.
    pids = {record.name.split("-")[0] for record in project.closure_dir.glob("*.rec")}
    assert len(pids) >= 2


def test_killed_job_keeps_what_it_recorded(project: Project) -> None:
    project.write("data.txt", "x")
    project.write("helper.py")
    project.write("lazy.py")
    project.write(
        "main.py",
        """
        import importlib, os, signal, helper
        importlib.import_module("lazy")
        importlib.import_module("colorsys")
        open("data.txt").read()
        os.kill(os.getpid(), signal.SIGKILL)
        """,
    )
    result = project.run("main.py")
    assert result.returncode == -signal.SIGKILL
    closure = project.closure()
    assert closure.inputs == {"data.txt"}
    assert closure.code == {"main.py", "helper.py", "lazy.py"}
    # No exit-time sweep ran: these come from the events alone.
    assert {"helper", "lazy", "colorsys"} <= closure.modules


def test_job_sees_an_unchanged_interpreter(project: Project) -> None:
    project.write(
        "main.py",
        """
        import json, sys
        print(json.dumps({
            "argv": sys.argv,
            "path": sys.path,
            "name": __name__,
            "stdin": sys.stdin.read(),
        }))
        sys.exit(3)
        """,
    )
    seen = {}
    for tracked in (False, True):
        result = project.run("main.py", "a", "--b=1", tracked=tracked, stdin="hello\n")
        assert result.returncode == 3, result.stderr
        assert result.stderr == ""
        seen[tracked] = json.loads(result.stdout)
    assert seen[True] == seen[False]
    assert seen[True]["argv"] == ["main.py", "a", "--b=1"]
    assert seen[True]["name"] == "__main__"
    assert seen[True]["stdin"] == "hello\n"
    assert str(SITE_DIR) not in seen[True]["path"]


def test_project_sitecustomize_still_runs(project: Project) -> None:
    project.write("custom/sitecustomize.py", "import builtins\nbuiltins.CUSTOMIZED = 'yes'\n")
    project.write(
        "main.py", "import sys\nprint(CUSTOMIZED, sys.modules['sitecustomize'].__file__)\nopen('in.txt')\n"
    )
    project.write("in.txt")
    env = _clean_env()
    env["PYTHONPATH"] = str(project.root / "custom")
    result = _ok(project.run("main.py", env=env))
    assert result.stdout.startswith("yes ")
    assert result.stdout.strip().endswith("custom/sitecustomize.py")
    closure = project.closure()
    assert closure.inputs == {"in.txt"}
    assert "custom/sitecustomize.py" in closure.code


def test_hook_is_inert_without_closure_dir(project: Project) -> None:
    project.write("main.py", "import sys\nopen('x.txt', 'w').write('1')\nprint(sys.path[1:])\n")
    env = _clean_env()
    env["PYTHONPATH"] = str(SITE_DIR)
    plain = _ok(project.run("main.py", tracked=False)).stdout
    inert = _ok(project.run("main.py", tracked=False, env=env)).stdout
    assert plain == inert
    assert not project.closure_dir.exists()


def test_closure_env_prefixes_pythonpath(tmp_path: Path) -> None:
    closure_dir = tmp_path / "closure"
    base = {"PYTHONPATH": "/a:/b", "HOME": "/h"}
    env = closure_env(base, closure_dir, tmp_path, [tmp_path / ".mayuri"])
    assert env["PYTHONPATH"] == os.pathsep.join([str(SITE_DIR), "/a", "/b"])
    assert env["HOME"] == "/h"
    assert env["MAYURI_PROJECT_ROOT"] == os.path.realpath(tmp_path)
    assert env["MAYURI_CLOSURE_EXCLUDE"].split(os.pathsep) == [
        os.path.realpath(tmp_path / ".mayuri"), os.path.realpath(MAYURI_PACKAGE)]
    assert closure_dir.is_dir()
    again = closure_env(env, closure_dir, tmp_path, [])
    assert again["PYTHONPATH"] == env["PYTHONPATH"]
    assert closure_env({}, closure_dir, tmp_path, [])["PYTHONPATH"] == str(SITE_DIR)


def test_overhead(project: Project) -> None:
    """Prints the cost of tracking a job that imports 300 modules and reads 2,000 files."""
    project.write("mods/__init__.py")
    for i in range(300):
        project.write(f"mods/m{i}.py", f"VALUE = {i}\n")
    for i in range(2000):
        project.write(f"files/f{i}.txt", "x" * 100)
    project.write(
        "bench.py",
        """
        import importlib, time
        start = time.perf_counter()
        for i in range(300):
            importlib.import_module(f"mods.m{i}")
        for i in range(2000):
            with open(f"files/f{i}.txt") as f:
                f.read()
        print(time.perf_counter() - start)
        """,
    )
    _ok(project.run("bench.py", tracked=False))  # writes the bytecode caches

    # Interleaved, best of 7: the machine's speed drifts between runs.
    best: dict[bool, tuple[float, float]] = {False: (float("inf"),) * 2, True: (float("inf"),) * 2}
    for _ in range(7):
        for tracked in (False, True):
            project.reset()
            started = time.perf_counter()
            result = _ok(project.run("bench.py", tracked=tracked))
            wall = time.perf_counter() - started
            inner = float(result.stdout)
            best[tracked] = (min(best[tracked][0], wall), min(best[tracked][1], inner))
    (plain_wall, plain_inner), (tracked_wall, tracked_inner) = best[False], best[True]
    started = time.perf_counter()
    closure = project.closure()
    collect_s = time.perf_counter() - started
    assert len(closure.code) == 302 and len(closure.inputs) == 2000
    print(
        f"\nclosure overhead (300 imports + 2000 reads, best of 7): "
        f"in-script {1e3 * (tracked_inner - plain_inner):.1f} ms "
        f"({1e3 * plain_inner:.1f} -> {1e3 * tracked_inner:.1f}), "
        f"whole process {1e3 * (tracked_wall - plain_wall):.1f} ms "
        f"({1e3 * plain_wall:.1f} -> {1e3 * tracked_wall:.1f}); collect {1e3 * collect_s:.1f} ms"
    )
