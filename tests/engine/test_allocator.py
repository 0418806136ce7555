"""glibc's allocator settings for training (addrop/engine/allocator.py): set by the command line unless the MALLOC_*
variables are, the same thresholds as the benchmark's."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from addrop.engine import allocator


def test_tune_only_without_the_variables(monkeypatch):
    calls = []
    monkeypatch.setattr(allocator, "mallopt", lambda mmap, trim: calls.append((mmap, trim)) or True)
    for k in allocator.MALLOC_ENV:
        monkeypatch.delenv(k, raising=False)
    assert allocator.tune_for_training() is True
    assert calls == [(allocator._MMAP_THRESHOLD, allocator._TRIM_THRESHOLD)]
    for k, v in allocator.MALLOC_ENV.items():
        monkeypatch.setenv(k, v)
    assert allocator.tune_for_training() is False and len(calls) == 1  # glibc has read the variables already


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_the_command_line_sets_them_at_start():
    code = ("import runpy, sys, addrop.engine.allocator as a; seen = []; real = a.mallopt; "
            "a.mallopt = lambda m, t: seen.append((m, t)) or real(m, t); sys.argv = ['addrop', '--help']\n"
            "try:\n    runpy.run_module('addrop', run_name='__main__')\nexcept SystemExit:\n    pass\n"
            "print(seen)")
    env = {k: v for k, v in __import__("os").environ.items() if k not in allocator.MALLOC_ENV}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120).stdout
    assert out.strip().splitlines()[-1] == str([(allocator._MMAP_THRESHOLD, allocator._TRIM_THRESHOLD)])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim")
def test_freed_memory_goes_back_to_the_system_with_the_thresholds_set():
    """A process with the training thresholds keeps what it frees until give_back_freed (a kept worker, between
    plans): its resident size falls by the freed block's size."""
    code = ("import addrop.engine.allocator as a, ctypes\n"
            "def rss():\n    return int(open('/proc/self/statm').read().split()[1]) * 4096\n"
            "a.tune_for_training()\n"
            "libc = ctypes.CDLL('libc.so.6'); libc.malloc.restype = ctypes.c_void_p\n"
            "p = libc.malloc(200 << 20); ctypes.memset(p, 1, 200 << 20); libc.free(ctypes.c_void_p(p))\n"
            "kept = rss(); done = a.give_back_freed()\n"
            "print(done, (kept - rss()) >> 20)")
    done, mib = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                               env={k: v for k, v in os.environ.items()
                                    if k not in allocator.MALLOC_ENV}).stdout.split()
    assert done == "True" and int(mib) > 150
