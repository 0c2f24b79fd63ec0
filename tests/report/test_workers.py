"""The report step sizes its chart workers from the pod's limits (cgroup v2 cpu.max and memory.max)."""

from __future__ import annotations

import os

import pytest

from shared.report import default_workers


@pytest.mark.parametrize(
    ("cpu_max", "memory_max", "expected"),
    [
        ("max 100000", "max", 4),  # no limits: the CPUs this process may use, at most 4
        ("200000 100000", "max", 2),  # the manifest's CPU limit of the report step: "2"
        ("50000 100000", "max", 1),  # half a CPU still gets one worker
        ("max 100000", str(1024 * 2**20), 3),  # 1 GiB: 3 workers of 256 MiB after the parent's 256 MiB
        ("max 100000", str(300 * 2**20), 1),
        ("200000 100000", str(1024 * 2**20), 2),
    ],
)
def test_workers_follow_the_pod_limits(tmp_path, cpu_max, memory_max, expected) -> None:
    (tmp_path / "cpu.max").write_text(cpu_max + "\n")
    (tmp_path / "memory.max").write_text(memory_max + "\n")
    cpus = len(os.sched_getaffinity(0))  # never more workers than CPUs this process may use
    assert default_workers(cgroup=tmp_path) == min(expected, cpus)


def test_without_cgroup_files(tmp_path) -> None:
    assert 1 <= default_workers(cgroup=tmp_path / "missing") <= 4


def test_a_small_book_is_drawn_in_process(tmp_path) -> None:
    (tmp_path / "cpu.max").write_text("max 100000\n")
    (tmp_path / "memory.max").write_text("max\n")
    assert default_workers(5, cgroup=tmp_path) == 1
