"""Text files of a closure are kept; `mayuri diff` shows how a config and a code file changed."""

from __future__ import annotations

from tests.conftest import Project


def _two_runs(project: Project) -> tuple[str, str]:
    project.write("helper.py", "X = 1\n")
    project.write("config/train.cfg", "lr = 0.1\nbatch = 32\nname = 'a'\n")
    project.write("data.bin", "")
    (project.root / "data.bin").write_bytes(b"\0\1\2" * 10)
    project.write("big.txt", "")
    (project.root / "big.txt").write_text("x" * (1 << 20) + "more\n")
    project.write("job.py", """\
        import helper
        open("config/train.cfg").read()
        open("data.bin", "rb").read()
        open("big.txt").read()
        """)
    project.write("exp.yaml", "jobs:\n  train:\n    run: python job.py\n")
    assert project.mayuri("run", "exp.yaml").returncode == 0
    project.write("config/train.cfg", "lr = 0.2\nbatch = 32\nname = 'b'\n")
    project.write("helper.py", "X = 2\n")
    (project.root / "data.bin").write_bytes(b"\0\1\3" * 10)
    (project.root / "big.txt").write_text("y" * (1 << 20) + "more\n")
    done = project.mayuri("run", "exp.yaml")
    assert done.returncode == 0, done.stderr
    old, new = sorted(project.runs(), key=lambda r: r["started"])
    return old["id"], new["id"]


def test_diff_prints_a_unified_diff_of_each_changed_text_file(project: Project) -> None:
    old, new = _two_runs(project)
    done = project.mayuri("diff", old[:8], new[:8])
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert f"--- a/config/train.cfg ({old[:8]})" in out and f"+++ b/config/train.cfg ({new[:8]})" in out
    assert "-lr = 0.1" in out and "+lr = 0.2" in out and " batch = 32" in out
    assert "-X = 1" in out and "+X = 2" in out
    # Binary and large files are named, without a diff.
    assert "data.bin  changed (no text diff" in out and "big.txt  changed (no text diff" in out
    stat = project.mayuri("diff", old[:8], new[:8], "--stat").stdout
    assert "config/train.cfg  changed +2 -2" in stat and "-lr = 0.1" not in stat
    files = {f["path"]: f for f in __import__("json").loads(project.mayuri("diff", old, new, "--json").stdout)["files"]}
    assert "+lr = 0.2" in files["config/train.cfg"]["diff"] and files["data.bin"]["diff"] == ""


def test_kept_text_blobs_survive_gc_while_their_run_lives(project: Project) -> None:
    old, new = _two_runs(project)
    # No grace: gc removes every blob that nothing references at once.
    (project.root / "mayuri.toml").write_text('[gc]\ngrace = "0s"\n')
    done = project.mayuri("gc", "--yes")
    assert done.returncode == 0, done.stderr
    out = project.mayuri("diff", old, new).stdout
    assert "+lr = 0.2" in out
