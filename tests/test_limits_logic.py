"""The pure parts of memory and GPU limits: quantities, placement, discovery."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from lepton_platform.cgroups import CgroupLimits, delegated
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


def fake_cgroup(tmp_path, controllers: str = "cpu memory pids") -> tuple[Path, Path]:
    """A directory shaped like a cgroup v2 service cgroup (the tests never touch real cgroups)."""
    root = tmp_path / "cgroup"
    service = root / "system.slice" / "lepton.service"
    service.mkdir(parents=True)
    (service / "cgroup.controllers").write_text(controllers + "\n")
    (service / "cgroup.subtree_control").write_text("")
    (service / "cgroup.procs").write_text("101\n102\n")
    membership = tmp_path / "self-cgroup"
    membership.write_text("0::/system.slice/lepton.service\n")
    return root, membership


def can_mark(folder: Path) -> bool:
    try:
        os.setxattr(folder, "user.delegate", b"1")
        return True
    except OSError:
        return False


def test_only_a_delegated_cgroup_with_memory_is_used(tmp_path):
    root, membership = fake_cgroup(tmp_path)
    service = root / "system.slice" / "lepton.service"
    assert delegated(root, membership) is None  # writable (root can write anywhere) but not handed over
    assert delegated(root, membership, marked=False) == service  # `memory_limits: cgroup`: the operator says so
    if not can_mark(service):
        pytest.skip("this filesystem keeps no user.* extended attributes")
    assert delegated(root, membership) == service
    other_root, other_membership = fake_cgroup(tmp_path / "nomem", controllers="cpu pids")
    assert delegated(other_root, other_membership, marked=False) is None
    (tmp_path / "v1").write_text("4:memory:/x\n")
    assert delegated(root, tmp_path / "v1", marked=False) is None


def test_replicas_get_leaf_cgroups_with_their_limit(tmp_path):
    root, _ = fake_cgroup(tmp_path)
    service = root / "system.slice" / "lepton.service"
    limits = CgroupLimits(service)
    assert (service / "cgroup.subtree_control").read_text() == "+memory"
    assert (service / "platform" / "cgroup.procs").read_text() == "102"  # each pid written in turn; the fake keeps the last
    folder = limits.prepare("fn-00001-ab1", 128 << 20)
    assert (folder / "memory.max").read_text() == str(128 << 20)
    assert CgroupLimits.oom_kills(folder) == 0
    (folder / "memory.events").write_text("low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\n")
    assert CgroupLimits.oom_kills(folder) == 1
    (folder / "memory.events").unlink()
    (folder / "memory.max").unlink()
    CgroupLimits.remove(folder)
    assert not folder.exists()
