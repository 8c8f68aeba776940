"""Vector-unit cycles: lanes split neurons, timesteps run in sequence (the LIF IIR over T)."""

from __future__ import annotations

from math import ceil

import pytest

from hwmodels import HardwareConfigError, VectorUnit
from hwmodels.vector import DEFAULT_OPS_PER_ELEMENT

OPS = sorted(DEFAULT_OPS_PER_ELEMENT)


def test_required_ops_exist():
    for op in ("lif_fwd", "lif_bwd", "maxpool", "avgpool", "batchnorm_fwd", "batchnorm_bwd", "add"):
        assert op in VectorUnit().ops()


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("lanes", [1, 7, 128])
@pytest.mark.parametrize("elements,timesteps", [(1, 1), (128, 4), (1000, 25), (129, 1)])
def test_cycles_formula(op, lanes, elements, timesteps):
    vu = VectorUnit(lanes)
    assert vu.cycles(op, elements, timesteps) == ceil(elements / lanes) * timesteps * DEFAULT_OPS_PER_ELEMENT[op]


def test_lif_backward_costs_more_than_forward_and_scales_with_timesteps():
    vu = VectorUnit(64)
    assert vu.cycles("lif_bwd", 4096, 8) > vu.cycles("lif_fwd", 4096, 8)
    assert vu.cycles("lif_fwd", 4096, 8) == 2 * vu.cycles("lif_fwd", 4096, 4)


def test_more_lanes_never_slower():
    cyc = [VectorUnit(lanes).cycles("lif_fwd", 10_000, 4) for lanes in (1, 2, 16, 128, 1024, 20_000)]
    assert cyc == sorted(cyc, reverse=True) and cyc[-1] == 4 * 3


def test_empty_work_is_free():
    assert VectorUnit().cycles("add", 0, 4) == 0 and VectorUnit().cycles("add", 10, 0) == 0


@pytest.mark.parametrize("call", [lambda v: v.cycles("conv", 1), lambda v: v.cycles("add", 1.5),
                                  lambda v: v.cycles("add", 3, True)])
def test_bad_calls_raise(call):
    with pytest.raises(HardwareConfigError):
        call(VectorUnit())


@pytest.mark.parametrize("lanes", [0, -1, 2.0, True])
def test_bad_lanes(lanes):
    with pytest.raises(HardwareConfigError):
        VectorUnit(lanes)
