"""Benchmark (b): the cold fingerprint of 200 MB of files against raw SHA-512.

Writes 150 files of 1 MiB and 2 of 25 MiB (200 MiB of random bytes) into a
temporary folder, then measures, interleaved and repeated:

- raw, one thread: `hashlib.sha512` over the same bytes already in memory
  (the machine's SHA-512 speed, no I/O at all);
- raw, one thread, from the files: `hashlib.file_digest(f, "sha512")` per file;
- raw, all cores: the in-memory hashing split over one thread per core
  (hashlib releases the GIL), largest buffers first;
- Mayuri, `mayuri.hashing.hash_files` on the paths;
- Mayuri, `mayuri.filestate.current_digests` with an empty stat cache (a
  fresh store each time): stat, hash, and the stat-cache write, as the first
  cache check or the end of a run does.

"Cold" means nothing is in Mayuri's stat cache; the files are in the OS page
cache, as they are right after a job wrote or read them. Target (issue 2):
Mayuri's throughput is at least 0.8x the raw SHA-512 throughput of the
machine, using every core when there is enough to hash.

Usage: python benchmarks/bench_hashing.py [--repeat 5] [--small 150] [--large 2]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from timing import Samples, interleave, machine_line, time_call, verdict

from mayuri.filestate import current_digests
from mayuri.hashing import hash_files
from mayuri.store import open_store

MIB = 1 << 20


def write_files(folder: Path, small: int, large: int, large_mib: int) -> list[Path]:
    paths = []
    for index in range(small):
        paths.append(folder / f"small-{index:04d}.bin")
        paths[-1].write_bytes(os.urandom(MIB))
    for index in range(large):
        paths.append(folder / f"large-{index}.bin")
        paths[-1].write_bytes(os.urandom(large_mib * MIB))
    return paths


def parallel_raw(buffers: list[bytes], workers: int) -> list[str]:
    """SHA-512 of each buffer, one thread per core, largest first."""
    ordered = sorted(buffers, key=len, reverse=True)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda data: hashlib.sha512(data).hexdigest(), ordered))


def file_digests(paths: list[Path]) -> list[str]:
    digests = []
    for path in paths:
        with open(path, "rb") as handle:
            digests.append(hashlib.file_digest(handle, "sha512").hexdigest())
    return digests


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5, help="timed repetitions of each figure")
    parser.add_argument("--small", type=int, default=150, help="files of 1 MiB")
    parser.add_argument("--large", type=int, default=2, help="files of --large-mib MiB")
    parser.add_argument("--large-mib", type=int, default=25)
    args = parser.parse_args()

    base = Path(tempfile.mkdtemp(prefix="mayuri-hash-"))
    try:
        data = base / "data"
        data.mkdir()
        paths = write_files(data, args.small, args.large, args.large_mib)
        total = sum(p.stat().st_size for p in paths)
        buffers = [p.read_bytes() for p in paths]
        workers = os.cpu_count() or 1
        expected = [hashlib.sha512(b).hexdigest() for b in buffers]
        entries = [(p.name, "file") for p in paths]
        stores = iter(range(10**6))

        def mayuri_cold() -> tuple[float, float]:
            store = open_store(base / f"store-{next(stores)}")
            try:
                return time_call(lambda: current_digests(store, data, entries))
            finally:
                store.close()

        # Correctness first: every path must give the raw digests.
        assert [d for d, _ in hash_files(paths)] == expected
        check_store = open_store(base / "store-check")
        found = current_digests(check_store, data, entries)
        check_store.close()
        assert [found[e][0] for e in entries] == expected

        figures = interleave(
            {
                "raw sha512, 1 thread, in memory": lambda: time_call(
                    lambda: [hashlib.sha512(b).hexdigest() for b in buffers]),
                "raw sha512, 1 thread, file_digest": lambda: time_call(lambda: file_digests(paths)),
                f"raw sha512, {workers} threads, in memory": lambda: time_call(
                    lambda: parallel_raw(buffers, workers)),
                "mayuri hash_files": lambda: time_call(lambda: hash_files(paths)),
                "mayuri current_digests, empty stat cache": mayuri_cold,
            },
            args.repeat,
        )
        report(figures, total, workers)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def report(figures: dict[str, Samples], total: int, workers: int) -> None:
    one, one_files, parallel, hash_files_s, cold = figures.values()
    mb = total / 1e6
    print(f"cold hashing of {total / MIB:.0f} MiB ({mb:.0f} MB) in {len(figures)} ways ({machine_line()})")
    for samples in figures.values():
        print(f"{samples.line()}   {mb / samples.median:8.1f} MB/s")
    # The machine's raw speed: all cores when there are several and enough to hash.
    machine = min(one.median, parallel.median) if workers > 1 else one.median
    for samples in (hash_files_s, cold):
        print(f"{samples.name:<44} {machine / samples.median:.2f}x raw (machine),"
              f" {one.median / samples.median:.2f}x raw (1 thread)")
    ratio = machine / cold.median
    print(f"target >= 0.8x raw SHA-512 of the machine ({mb / machine:.1f} MB/s):"
          f" {mb / cold.median:.1f} MB/s = {ratio:.2f}x -> {verdict(ratio >= 0.8)}")


if __name__ == "__main__":
    main()
