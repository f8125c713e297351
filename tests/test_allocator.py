"""stimuli/allocator.py: freed activations stay in the process (no page faults to get them back)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from stimuli.allocator import ENV, keep_freed_memory

# Allocate and touch a 20 MB tensor, free it, and print how much resident memory went back.
DROP = """
import stimuli, torch
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096
x = torch.ones(5_000_000)
before = rss()
del x
print((before - rss()) / 2**20)
"""


def freed_mib(keep: str) -> float:
    env = {**os.environ, ENV: keep}
    out = subprocess.run(
        [sys.executable, "-c", DROP], env=env, capture_output=True, text=True, check=True
    )
    return float(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc only")
def test_a_freed_activation_stays_resident_unless_switched_off() -> None:
    assert freed_mib("1") < 2  # kept for the next step's activations
    assert freed_mib("0") > 15  # glibc's default: handed back, faulted in again next time


def test_switched_off_by_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV, "0")
    assert keep_freed_memory() is False
    monkeypatch.setenv(ENV, "1")
    assert keep_freed_memory() is (sys.platform.startswith("linux"))


def test_a_switch_that_is_neither_on_nor_off_names_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(ENV, "maybe")
    with pytest.raises(ValueError, match=f"{ENV}='maybe' is not a switch"):
        keep_freed_memory()
    monkeypatch.setenv(ENV, " OFF ")
    assert keep_freed_memory() is False
