"""Slurm submission overhead: 100 trivial jobs through `mayuri run --executor slurm` against bare submitit.

Both sides submit to the same cluster (scripts/slurm-up.sh's one-node
cluster, or a real one: `--partition`), in the same run, interleaved round
by round, and are timed from the first submission until every job has ended
and (for Mayuri) been recorded. The bare side is the floor any submitit user
pays: one sbatch per job (`submit`), or one array (`map_array`), a pickled
function that returns at once on the node, done when its result file is
there. Mayuri's side does everything a real run does: plan, cache check, run
records and folders, the node runner and its exit record, the spool read
back, the closure and fingerprint. Both sides submit every job at once
(Mayuri with `max_parallel` = the job count), so the cluster runs them as
fast as it can either way. Each side's figure is the median of the rounds.
Target: at most 1.5x bare submitit, job per job and array against array.
Usage: python benchmarks/bench_slurm.py [--jobs 100] [--rounds 1] [--partition P] [--dir DIR]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from mayuri.init_project import init_project
from mayuri.run_experiment import RunRequest, run_experiment
from mayuri.scheduler.events import SilentReporter

sys.path.insert(0, str(Path(__file__).resolve().parent))
from timing import machine_line


def _nothing() -> int:
    return 0


def bare(jobs: int, folder: Path, partition: str | None, array: bool) -> float:
    """Submit `jobs` trivial functions with submitit alone; seconds until all their results are written."""
    import submitit

    began = time.perf_counter()
    executor = submitit.SlurmExecutor(folder=folder, max_num_timeout=0)
    executor.update_parameters(**({"partition": partition} if partition else {}))
    if array:
        submitted = executor.map_array(lambda _: _nothing(), range(jobs))
    else:
        submitted = [executor.submit(_nothing) for _ in range(jobs)]
    waiting = list(submitted)
    while waiting:
        waiting = [job for job in waiting if not job.paths.result_pickle.exists()]
        time.sleep(0.05)
    return time.perf_counter() - began


def scheduled(jobs: int, root: Path, partition: str | None, array: bool) -> float:
    """Run `jobs` trivial jobs (`true`, a sweep) through `mayuri run --executor slurm`; seconds until recorded."""
    settings = f"[scheduler]\nmax_parallel = {jobs}\n\n[executor.slurm]\narray = {str(array).lower()}\n"
    if partition:
        settings += f'partition = "{partition}"\n'
    (root / "mayuri.toml").write_text(settings)
    init_project(root)
    values = ", ".join(str(i) for i in range(jobs))
    exp = root / "bench.yaml"
    # `${i}` in the command: every instance is known to differ, so all start in the first turn.
    exp.write_text(f"name: bench\njobs:\n  noop:\n    run: \"true ${{i}}\"\n    params: {{i: 0}}\n"
                   f"    sweep: {{i: [{values}]}}\n")
    began = time.perf_counter()
    result = run_experiment(RunRequest(file=exp, executor="slurm"), SilentReporter(), root=root)
    elapsed = time.perf_counter() - began
    if not result.ok or result.outcome.count("succeeded") != jobs:
        raise SystemExit(f"the Mayuri run did not succeed: {result.outcome.count('succeeded')} of {jobs}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--partition", default=None, help="default: the cluster's default partition")
    parser.add_argument("--dir", type=Path, default=None,
                        help="where the temporary projects go, on a filesystem the nodes share (default: $TMPDIR)")
    parser.add_argument("--no-array", action="store_true", help="only one Slurm job per job")
    args = parser.parse_args()
    modes = [False] if args.no_array else [False, True]
    times: dict[tuple[str, bool], list[float]] = {}
    for _ in range(args.rounds):
        for array in modes:
            with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
                root = Path(tmp)
                (root / "project").mkdir()
                times.setdefault(("bare", array), []).append(bare(args.jobs, root / "bare", args.partition, array))
                times.setdefault(("mayuri", array), []).append(
                    scheduled(args.jobs, root / "project", args.partition, array))
    print(f"{args.jobs} trivial jobs submitted at once, median of {args.rounds} round(s); {machine_line()}")
    for array in modes:
        kind = "one array" if array else "one Slurm job each"
        floor = statistics.median(times[("bare", array)])
        ours = statistics.median(times[("mayuri", array)])
        ratio = ours / floor
        per = 1000 / args.jobs
        print(f"{kind}:")
        print(f"  bare submitit:  {floor:7.2f} s  ({floor * per:.1f} ms/job)")
        print(f"  mayuri run:     {ours:7.2f} s  ({ours * per:.1f} ms/job)")
        print(f"  ratio:          {ratio:7.2f}x  (target <= 1.5x) {'OK' if ratio <= 1.5 else 'OVER TARGET'}")


if __name__ == "__main__":
    main()
