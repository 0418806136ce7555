"""glibc's allocator settings for training: never hand a large tensor its own mmap, never give freed memory back.

By default glibc serves a block above its mmap threshold (at most 32 MB, adjusted as it goes) with a fresh mmap
and unmaps it when freed. A training step frees and allocates such blocks every time (the word embeddings'
gradient is 47 MB for minilm), so each step pays for zeroing freshly mapped pages: the fill of that gradient took
14 ms a step against 4.8 ms with these settings (docs/performance.md, "Runs side by side"). The benchmark
measures its steps with them; the command line (`python -m addrop`) and the worker processes of `--workers` set
them at start with mallopt(), unless the MALLOC_* variables are already set. The app does not: a server that
never returns freed memory would keep its peak for good.
"""
from __future__ import annotations

import os
import sys

# the same as environment variables (read by glibc at start-up only): what the benchmark restarts itself with
MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": "17179869184", "MALLOC_TRIM_THRESHOLD_": "68719476736"}
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters
GLIBC_DEFAULT = 128 * 1024
_MMAP_THRESHOLD, _TRIM_THRESHOLD = 2**30, 2**31 - 1  # mallopt takes an int


def env_set() -> bool:
    return all(os.environ.get(k) for k in MALLOC_ENV)


def _glibc(call) -> bool:
    """call(libc, ctypes) on this process's glibc; False where there is none (or it lacks the function)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        return bool(call(ctypes.CDLL("libc.so.6"), ctypes))
    except (OSError, AttributeError):
        return False


def mallopt(mmap_threshold: int, trim_threshold: int) -> bool:
    """Set glibc's thresholds in this process (False where there is no glibc)."""
    return _glibc(lambda libc, c: libc.mallopt(_M_MMAP_THRESHOLD, c.c_int(mmap_threshold))
                  and libc.mallopt(_M_TRIM_THRESHOLD, c.c_int(trim_threshold)))


def give_back_freed() -> bool:
    """Return the memory this process has freed to the OS (glibc's malloc_trim), which the thresholds above keep
    otherwise: a worker process the app keeps between plans calls it after each run. False where there is no glibc."""
    return _glibc(lambda libc, c: libc.malloc_trim(0))


def tune_for_training() -> bool:
    """This process's allocator as the benchmark measures it, unless the MALLOC_* variables say otherwise."""
    return not env_set() and mallopt(_MMAP_THRESHOLD, _TRIM_THRESHOLD)
