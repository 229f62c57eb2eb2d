"""The pure parts of memory and GPU limits: quantities, placement, discovery."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from lepton_platform.gpus import GpuPlacement, discover
from lepton_platform.watchdog import memory_bytes, private_bytes


def test_memory_quantities_read_as_kubernetes_reads_them():
    assert memory_bytes("512Mi") == 512 << 20
    assert memory_bytes("1Gi") == 1 << 30
    assert memory_bytes("128M") == 128_000_000
    assert memory_bytes("1.5Gi") == 3 << 29
    assert memory_bytes("1000") == 1000
    with pytest.raises(ValueError):
        memory_bytes("lots")


def test_private_memory_of_a_live_process_and_of_none():
    code = "import sys; blob = b'x' * (int(sys.argv[1]) << 20); print('ready', flush=True); sys.stdin.read()"
    sizes = {}
    for mb in (0, 64):
        with subprocess.Popen([sys.executable, "-c", code, str(mb)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) as child:
            assert child.stdout.readline() == "ready\n"
            sizes[mb] = private_bytes(child.pid)
            child.stdin.close()
    assert sizes[0] is not None and sizes[64] is not None
    assert sizes[64] - sizes[0] >= 60 << 20, sizes
    assert private_bytes(2**22 + 12345) is None  # no such process


def test_gpus_are_handed_out_whole_and_come_back():
    placement = GpuPlacement([0, 1, 2])
    assert placement.take(2) == [0, 1]
    assert placement.fits(1) and not placement.fits(2)
    assert placement.take(2) is None  # nothing is taken when not all of it is free
    assert placement.take(1) == [2]
    placement.give_back([0, 1])
    assert placement.take(2) == [0, 1]
    assert placement.take(0) == []


def test_replicas_see_only_their_gpus_and_none_without_gpu():
    assert GpuPlacement([0, 1]).visible_devices([1]) == {"CUDA_VISIBLE_DEVICES": "1"}
    assert GpuPlacement([0, 1]).visible_devices([]) == {"CUDA_VISIBLE_DEVICES": ""}
    assert GpuPlacement([]).visible_devices([]) == {}  # a machine without GPUs leaves CUDA alone


def test_gpu_discovery_from_config_or_nvml():
    assert discover("0,1") == [0, 1]
    assert discover("3,1,1") == [1, 3]
    assert discover("none") == []
    if not os.path.exists("/dev/nvidiactl"):
        assert discover(None) == []  # NVML is installed (nvidia-ml-py), but there is no driver
