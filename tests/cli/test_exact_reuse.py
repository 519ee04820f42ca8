"""Exact reuse (issue 14): every read counts, through the real `mayuri run` in a temporary project.

Links, reads made in C or by non-Python programs, data outside the project,
inputs replaced while the job runs, products, and a tracer that cannot see.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from mayuri.closure.launch import tracer_library
from tests.conftest import Project

needs_tracer = pytest.mark.skipif(tracer_library() is None, reason="the C tracer is not built here")

EXP = """
    name: exact
    jobs:
      job:
        run: %s
"""


def setup_job(project: Project, command: str, main: str | None = None) -> None:
    if main is not None:
        project.write("main.py", main)
    project.write("exp.yaml", EXP % command)


def run(project: Project, env: dict[str, str] | None = None) -> str:
    done = project.mayuri("run", "exp.yaml", env=env)
    assert done.returncode == 0, done.stderr
    return done.stderr


def assert_cached(project: Project) -> None:
    assert "cached" in run(project)


def latest(project: Project) -> dict:
    return project.runs()[0]


# -- links --------------------------------------------------------------------


def test_retargeted_file_link_reruns_and_says_where_it_points(project: Project) -> None:
    project.write("data/v1.txt", "one\n")
    project.write("data/v2.txt", "two\n")
    os.symlink("v1.txt", project.root / "data/current.txt")
    setup_job(project, "python main.py", "print(open('data/current.txt').read())\n")
    run(project)
    assert_cached(project)
    os.remove(project.root / "data/current.txt")
    os.symlink("v2.txt", project.root / "data/current.txt")
    assert "data/current.txt now points to v2.txt" in run(project)


def test_retargeted_folder_link_inside_the_project_reruns(project: Project) -> None:
    for version in ("dataset_v1", "dataset_v2"):
        project.write(f"{version}/a.txt", version + "\n")
    os.symlink("dataset_v1", project.root / "dataset")
    setup_job(project, "python main.py", "print(open('dataset/a.txt').read())\n")
    run(project)
    assert_cached(project)
    os.remove(project.root / "dataset")
    os.symlink("dataset_v2", project.root / "dataset")
    assert "dataset now points to dataset_v2" in run(project)


def test_link_to_a_folder_outside_the_project_counts(project: Project, tmp_path: Path) -> None:
    for version in ("outside_v1", "outside_v2"):
        (tmp_path / version).mkdir()
        (tmp_path / version / "a.txt").write_text(version)
    os.symlink(tmp_path / "outside_v1", project.root / "ext")
    setup_job(project, "python main.py", "print(open('ext/a.txt').read())\n")
    run(project)
    assert_cached(project)
    (tmp_path / "outside_v1" / "a.txt").write_text("edited outside the project")
    assert f"{tmp_path / 'outside_v1' / 'a.txt'} changed" in run(project)
    os.remove(project.root / "ext")
    os.symlink(tmp_path / "outside_v2", project.root / "ext")
    assert f"ext now points to {tmp_path / 'outside_v2'}" in run(project)


# -- reads outside the project -----------------------------------------------------


@pytest.mark.parametrize("tracer", ["1", "0"])
def test_file_under_a_cache_root_counts(project: Project, tmp_path: Path, tracer: str) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "x.txt").write_text("1")
    config = project.root / "mayuri.toml"
    config.write_text(config.read_text().replace("key_env = []", f'key_env = []\nroots = ["{shared}"]'))
    setup_job(project, "python main.py", f"print(open({str(shared / 'x.txt')!r}).read())\n")
    run(project, env={"MAYURI_TRACER": tracer})
    assert "cached" in run(project, env={"MAYURI_TRACER": tracer})
    (shared / "x.txt").write_text("2")
    assert f"{shared / 'x.txt'} changed" in run(project, env={"MAYURI_TRACER": tracer})


@needs_tracer
def test_untracked_read_is_listed_by_show_why(project: Project, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere.txt"
    elsewhere.write_text("not covered")
    setup_job(project, f"cat {elsewhere}")
    run(project)
    why = project.show(latest(project)["id"], "--why")
    assert str(elsewhere) in why["untracked"]
    assert why["tracer"] == "preload"
    text = project.mayuri("show", latest(project)["id"], "--why").stdout
    assert str(elsewhere) in text and "untracked reads" in text


# -- reads Python's open never sees ----------------------------------------------------


@pytest.mark.parametrize(("journal", "tracer"), [("delete", "1"), ("wal", "1"), ("wal", "0")])
def test_sqlite_database_is_an_input(project: Project, journal: str, tracer: str) -> None:
    env = {"MAYURI_TRACER": tracer}  # "0": the audit hook's sqlite3.connect event alone
    db = project.root / "data.db"
    with sqlite3.connect(db) as conn:
        conn.execute(f"PRAGMA journal_mode={journal}")
        conn.execute("CREATE TABLE t (v INTEGER)")
        conn.execute("INSERT INTO t VALUES (1)")
    conn.close()
    setup_job(project, "python main.py", """
        import sqlite3
        conn = sqlite3.connect("data.db")
        print(conn.execute("SELECT sum(v) FROM t").fetchone())
        conn.close()
    """)
    run(project, env)
    assert latest(project)["fingerprint"] is not None  # reading is no replacing, WAL or not
    assert "cached" in run(project, env)
    with sqlite3.connect(db) as conn:
        conn.execute("INSERT INTO t VALUES (2)")
    conn.close()
    assert "data.db changed" in run(project, env)


@needs_tracer
@pytest.mark.parametrize("command", ["sort data/x.txt", "python main.py"])
def test_non_python_children_reads_count(project: Project, command: str) -> None:
    project.write("data/x.txt", "b\na\n")
    setup_job(project, command, "import subprocess\nsubprocess.run(['cat', 'data/x.txt'], check=True)\n")
    run(project)
    assert_cached(project)
    project.write("data/x.txt", "c\na\n")
    assert "data/x.txt changed" in run(project)


@needs_tracer
def test_safetensors_weights_read_in_rust_count(project: Project) -> None:
    pytest.importorskip("safetensors")
    import numpy as np
    from safetensors.numpy import save_file

    save_file({"w": np.zeros(4, dtype=np.float32)}, str(project.root / "weights.safetensors"))
    setup_job(project, "python main.py", """
        from safetensors.numpy import load_file
        print(load_file("weights.safetensors")["w"].sum())
    """)
    run(project)
    assert_cached(project)
    save_file({"w": np.ones(4, dtype=np.float32)}, str(project.root / "weights.safetensors"))
    assert "weights.safetensors changed" in run(project)


@needs_tracer
def test_parquet_read_in_cpp_counts(project: Project) -> None:
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"v": [1, 2]}), project.root / "data.parquet")
    setup_job(project, "python main.py", """
        import pyarrow.parquet as pq
        print(pq.read_table("data.parquet").num_rows)
    """)
    run(project)
    assert_cached(project)
    pq.write_table(pa.table({"v": [1, 2, 3]}), project.root / "data.parquet")
    assert "data.parquet changed" in run(project)


# -- files replaced while the job runs ----------------------------------------------------

# The job reads its input, then waits while the test replaces it from outside.
REPLACING = """
    import os, sys, time
    print(open("data.csv").read())
    ready, done = sys.argv[1], sys.argv[2]
    open(ready, "w").close()
    deadline = time.time() + 60
    while not os.path.exists(done) and time.time() < deadline:
        time.sleep(0.02)
"""


def run_while(project: Project, tmp_path: Path, replace: str) -> None:
    """`mayuri run exp.yaml` with `replace` run in the project while the job waits."""
    ready, done = tmp_path / "ready", tmp_path / "done"
    for signal_file in (ready, done):
        signal_file.unlink(missing_ok=True)
    command = [sys.executable, "-m", "mayuri", "run", "exp.yaml"]
    proc = subprocess.Popen(command, cwd=project.root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 60
        while not ready.exists() and time.time() < deadline and proc.poll() is None:
            time.sleep(0.02)
        assert ready.exists(), proc.communicate()[1] if proc.poll() is not None else "the job never started"
        subprocess.run(replace, shell=True, cwd=project.root, check=True)
        done.touch()
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("replace", [
    "mv staged.csv data.csv", "cp -p staged.csv data.csv", "touch -r staged.csv data.csv",
])
def test_input_replaced_while_the_job_ran_is_not_reusable(project: Project, tmp_path: Path, replace: str) -> None:
    project.write("data.csv", "old\n")
    project.write("staged.csv", "new\n")
    old = time.time() - 3600
    os.utime(project.root / "staged.csv", (old, old))  # an rsync/tar-style mtime from before the job
    setup_job(project, f"python main.py {tmp_path / 'ready'} {tmp_path / 'done'}", REPLACING)
    run_while(project, tmp_path, replace)
    first = latest(project)
    assert first["fingerprint"] is None
    assert "data.csv was replaced while the job ran" in project.show(first["id"])["error"]
    # Not cached on the data as it is now: the next run reads it.
    (tmp_path / "done").touch()  # the second run need not wait
    assert "cached (run" not in run(project)
    assert len(project.runs()) == 2


def test_future_mtime_is_not_a_change(project: Project) -> None:
    project.write("data.csv", "1\n")
    future = time.time() + 86400
    os.utime(project.root / "data.csv", (future, future))
    setup_job(project, "python main.py", "print(open('data.csv').read())\n")
    run(project)
    first = latest(project)
    assert first["fingerprint"] is not None, project.show(first["id"])["error"]
    assert_cached(project)
    project.write("data.csv", "2\n")
    os.utime(project.root / "data.csv", (future, future))
    assert "data.csv changed" in run(project)


# -- products --------------------------------------------------------------------------


PRODUCING = """
    import os
    os.makedirs("out", exist_ok=True)
    with open("out/model.pt", "w") as f:
        f.write("weights")
"""


def test_deleted_product_reruns(project: Project) -> None:
    setup_job(project, "python main.py", PRODUCING)
    run(project)
    product = [c for c in project.show(latest(project)["id"])["closure"] if c["role"] == "product"]
    assert [c["path"] for c in product] == ["out/model.pt"]
    assert_cached(project)
    os.remove(project.root / "out/model.pt")
    assert "out/model.pt missing" in run(project)
    assert (project.root / "out/model.pt").exists()


def test_edited_product_reruns(project: Project) -> None:
    setup_job(project, "python main.py", PRODUCING)
    run(project)
    first = latest(project)["id"]
    (project.root / "out/model.pt").write_text("tampered")
    assert f"out/model.pt changed since run {first[:8]}" in run(project)


# -- what the tracer cannot see --------------------------------------------------------------


def test_forced_fallback_is_reported_as_python_reads_only(project: Project) -> None:
    setup_job(project, "python main.py", "print(1)\n")
    run(project, env={"MAYURI_TRACER": "0"})
    run_id = latest(project)["id"]
    assert project.show(run_id)["closure_coverage"]["tracer"] == "python"
    assert "closure: Python reads only" in project.mayuri("show", run_id).stdout


@needs_tracer
def test_tracer_coverage_is_shown(project: Project) -> None:
    setup_job(project, "python main.py", "print(1)\n")
    run(project)
    run_id = latest(project)["id"]
    assert "closure: every process" in project.mayuri("show", run_id).stdout


@needs_tracer
def test_job_sees_no_difference(project: Project) -> None:
    # argv and the exit code untouched; a project's own LD_PRELOAD still loaded (chained after the tracer).
    source = project.write("mine.c", """
        #include <stdlib.h>
        __attribute__((constructor)) static void mine(void) { setenv("MINE_LOADED", "yes", 1); }
    """)
    built = subprocess.run(["cc", "-shared", "-fPIC", "-o", str(project.root / "libmine.so"), str(source)],
                           capture_output=True)
    if built.returncode != 0:
        pytest.skip("no C compiler")
    project.write("main.py", """
        import os, sys
        print(repr(sys.argv[1:]), os.environ.get("MINE_LOADED"), os.environ["LD_PRELOAD"])
        sys.exit(3)
    """)
    project.write("exp.yaml", f"""
        name: exact
        jobs:
          job:
            run: python main.py a 'b c'
            env: {{LD_PRELOAD: {project.root / 'libmine.so'}}}
    """)
    done = project.mayuri("run", "exp.yaml")
    assert done.returncode != 0
    run_row = latest(project)
    assert run_row["exit_code"] == 3
    out = (Path(run_row["run_dir"]) / "stdout.log").read_text()
    assert "['a', 'b c'] yes" in out
    assert out.split()[-1] == str(project.root / "libmine.so")  # after the tracer's, which comes first
    assert "_tracer" in out


@needs_tracer
def test_static_program_is_reported_as_unseen(project: Project) -> None:
    source = project.write("tool.c", "int main(void) { return 0; }\n")
    built = subprocess.run(["cc", "-static", "-o", str(project.root / "tool"), str(source)], capture_output=True)
    if built.returncode != 0:
        pytest.skip("no static C library to build a static program with")
    setup_job(project, "./tool")
    run(project)
    run_id = latest(project)["id"]
    assert project.show(run_id)["closure_coverage"]["unseen"] == [str(project.root / "tool")]
    assert "not seen: " in project.mayuri("show", run_id).stdout


@needs_tracer
def test_dashboard_run_page_shows_links_products_and_coverage(project: Project) -> None:
    from mayuri.inspect_runs import run_detail
    from mayuri.store.db import open_store
    from mayuri.tui.widgets.run.overview_panel import _closure_line

    project.write("data/v1.txt", "one\n")
    os.symlink("v1.txt", project.root / "data/current.txt")
    setup_job(project, "python main.py", "print(open('data/current.txt').read())\n" + textwrap.dedent(PRODUCING))
    run(project)
    store = open_store(project.root / ".mayuri", create=False)
    try:
        line = _closure_line(run_detail(store, latest(project)["id"]))
    finally:
        store.close()
    assert line is not None and line.startswith("every process")
    assert "1 links, 1 products" in line


@needs_tracer
def test_new_shard_in_a_folder_listed_in_cpp_reruns(project: Project) -> None:
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    (project.root / "shards").mkdir()
    pq.write_table(pa.table({"v": [1]}), project.root / "shards" / "0.parquet")
    setup_job(project, "python main.py", """
        import pyarrow.parquet as pq
        print(pq.read_table("shards").num_rows)
    """)
    run(project)
    assert_cached(project)
    pq.write_table(pa.table({"v": [2]}), project.root / "shards" / "1.parquet")
    assert "shards/ listing changed" in run(project)


@needs_tracer
def test_file_saved_by_rename_is_a_product(project: Project) -> None:
    setup_job(project, "python main.py", """
        import os
        with open("model.tmp", "w") as f:
            f.write("weights")
        os.replace("model.tmp", "model.bin")
    """)
    run(project)
    closure = project.show(latest(project)["id"])["closure"]
    assert [c["path"] for c in closure if c["role"] == "product"] == ["model.bin"]


def test_bad_cache_roots_is_a_clear_error(project: Project) -> None:
    config = project.root / "mayuri.toml"
    config.write_text(config.read_text().replace("key_env = []", "key_env = []\nroots = [3]"))
    setup_job(project, "python main.py", "print(1)\n")
    done = project.mayuri("run", "exp.yaml")
    assert done.returncode == 2
    assert "[cache] roots must list folder paths" in done.stderr and "Traceback" not in done.stderr
