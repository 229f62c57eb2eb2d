"""Where replicas run: ceil(cpu) cores each, the least used first, the platform's core last."""

import pytest

from lepton_platform.cpus import CpuPlacement, cores_wanted


@pytest.mark.parametrize("cpu, cores", [("1", 1), ("2", 2), ("500m", 1), ("1.5", 2), ("2500m", 3), ("0.1", 1)])
def test_cpu_quantities_become_whole_cores(cpu, cores):
    assert cores_wanted(cpu) == cores


def test_replicas_spread_over_the_cores_and_leave_the_platforms_for_last():
    placement = CpuPlacement([0, 1, 2, 3])
    first, second, third = placement.take("1"), placement.take("1"), placement.take("1")
    assert (first, second, third) == ([0], [1], [2])
    assert placement.take("1") == [0]  # every core but the platform's has one: start again
    assert placement.take("2") == [1, 2]
    placement.give_back([1, 2])
    placement.give_back(second)
    assert placement.take("1") == [1]


def test_a_function_asking_for_more_than_the_machine_gets_all_of_it():
    placement = CpuPlacement([0, 1, 2, 3])
    assert placement.take("16") == [0, 1, 2, 3]
    assert CpuPlacement([5]).take("1") == [5]  # one core: shared with the platform
