"""Keep freed memory in the process instead of handing it back to the operating system.

glibc's malloc serves blocks over its mmap threshold with fresh pages from the kernel and gives
the top of its heap back when more than its trim threshold is free. A training or synthesis
step allocates and frees the same 10-20 MB activations every step (a `(256, 16, 1200)` float32
tensor is 19.7 MB), so with the defaults each step pays page faults on memory it had a moment
ago; on this project's 2-core virtual machine a fill of a fresh activation buffer cost several
times a fill of a reused one. Raising the mmap threshold to its ceiling (32 MiB on 64-bit
glibc) and trimming only past 2 GiB keeps those pages: the same numbers, in less time
(README, "Scaling out"; `python -m bench.allocator`). The process's resident memory then stays
near its high-water mark instead of falling back between steps.

Applied when `stimuli` is imported, so every process of a run has it (the run, Hydra's joblib
workers, `stimuli.parallel`'s workers). `STIMULI_KEEP_FREED_MEMORY=0` turns it off
(`stimuli.env.env_switch`); it does nothing where the C library is not glibc.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

from stimuli.env import env_switch

M_TRIM_THRESHOLD = -1  # glibc's mallopt parameter numbers (malloc.h)
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_CEILING = 32 * 1024 * 1024  # HEAP_MAX_SIZE / 2 on 64-bit glibc
TRIM_THRESHOLD = 2**31 - 1  # mallopt takes an int: trim only past 2 GiB free at the top
ENV = "STIMULI_KEEP_FREED_MEMORY"


def keep_freed_memory() -> bool:
    """Set glibc's mmap threshold to its ceiling and its trim threshold to 2 GiB; True when
    both were applied."""
    if not env_switch(ENV, default=True):
        return False
    if not sys.platform.startswith("linux"):
        return False
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and other C libraries have no mallopt
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    mmap_set = mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_CEILING)
    trim_set = mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    return bool(mmap_set and trim_set)
