"""A job that misbehaves on request, for the scheduler's tests (RELIABILITY.md's harness).

Usage: python fakejob.py [--sleep S] [--stdout-bytes N] [--stderr-bytes N] [--oom SIGNATURE]
       [--oom-above PARAM=LIMIT] [--ignore-term] [--double-fork] [--rss MB] [--exit CODE] [--signal NAME]
       [--checkpoint] [--record FILE]

It appends one JSON line per start to --record (params, env, times) so that
tests can see what each attempt got.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time

SIGNATURES = {
    "torch": "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total "
             "capacity of 15.77 GiB of which 1.12 GiB is free.",
    "cublas": "RuntimeError: CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`",
    "cudnn": "RuntimeError: cuDNN error: CUDNN_STATUS_ALLOC_FAILED",
    "cudnn_exec": "RuntimeError: cuDNN error: CUDNN_STATUS_EXECUTION_FAILED",
    "cudnn_unsupported": "RuntimeError: cuDNN error: CUDNN_STATUS_NOT_SUPPORTED. This error may appear if "
                         "you passed in a non-contiguous input.",
    "jax": "jaxlib.xla_extension.XlaRuntimeError: RESOURCE_EXHAUSTED: Out of memory while trying to allocate "
           "1073741824 bytes.",
    "nccl": "torch.distributed.DistBackendError: NCCL error: unhandled cuda error, NCCL version 2.18.1\n"
            "Last error: Cuda failure 'out of memory'",
    "tf": "tensorflow.python.framework.errors_impl.ResourceExhaustedError: OOM when allocating tensor with "
          "shape[1024,1024,1024]",
    "host": "RuntimeError: [enforce fail at alloc_cpu.cpp:83] . DefaultCPUAllocator: can't allocate memory: "
            "you tried to allocate 8589934592 bytes.",
    "illegal": "RuntimeError: CUDA error: an illegal memory access was encountered",
    "assert": "RuntimeError: CUDA error: device-side assert triggered",
    "shape": "RuntimeError: mat1 and mat2 shapes cannot be multiplied (64x10 and 20x30)",
    "value": "ValueError: Expected input batch_size (64) to match target batch_size (32).",
    "nccl_timeout": "RuntimeError: NCCL communicator was aborted: Watchdog caught collective operation timeout",
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sleep", type=float, default=0.0)
    parser.add_argument("--stdout-bytes", type=int, default=0)
    parser.add_argument("--stderr-bytes", type=int, default=0)
    parser.add_argument("--oom", default=None)
    parser.add_argument("--oom-above", default=None)
    parser.add_argument("--param", action="append", default=[])
    parser.add_argument("--ignore-term", action="store_true")
    parser.add_argument("--double-fork", action="store_true")
    parser.add_argument("--rss", type=int, default=0)
    parser.add_argument("--exit", type=int, default=0)
    parser.add_argument("--signal", default=None)
    parser.add_argument("--checkpoint", action="store_true")
    parser.add_argument("--record", default=None)
    args = parser.parse_args()
    params = dict(p.split("=", 1) for p in args.param)
    if args.record:
        line = {"pid": os.getpid(), "params": params, "start": time.time(),
                "env": {k: v for k, v in os.environ.items() if k.startswith(("MAYURI_", "CUDA_"))}}
        with open(args.record, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(line) + "\n")
    if args.ignore_term:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if args.double_fork and os.fork() == 0:
        if os.fork() == 0:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            time.sleep(120)
        os._exit(0)
    hold = bytearray(args.rss * 1024 * 1024) if args.rss else b""
    for stream, count in ((sys.stdout.buffer, args.stdout_bytes), (sys.stderr.buffer, args.stderr_bytes)):
        chunk = b"x" * (1 << 20)
        while count > 0:
            stream.write(chunk[: min(count, len(chunk))])
            count -= len(chunk)
        stream.flush()
    resumed = os.environ.get("MAYURI_RESUME_FROM")
    if args.checkpoint:
        state = 0
        if resumed:
            with open(os.path.join(resumed, "state.txt"), encoding="utf-8") as handle:
                state = int(handle.read())
        print(f"resumed from step {state}" if resumed else "fresh start", flush=True)
        os.makedirs(os.environ["MAYURI_CHECKPOINT_DIR"], exist_ok=True)
        with open(os.path.join(os.environ["MAYURI_CHECKPOINT_DIR"], "state.txt"), "w", encoding="utf-8") as handle:
            handle.write(str(state + 10))
    if args.sleep:
        time.sleep(args.sleep)
    if args.oom_above:
        name, limit = args.oom_above.split("=")
        if float(params[name]) > float(limit):
            print(SIGNATURES[args.oom or "torch"], file=sys.stderr, flush=True)
            sys.exit(1)
    elif args.oom:
        print(SIGNATURES[args.oom], file=sys.stderr, flush=True)
        sys.exit(1)
    if args.signal:
        os.kill(os.getpid(), getattr(signal, args.signal))
    del hold
    sys.exit(args.exit)


if __name__ == "__main__":
    main()
