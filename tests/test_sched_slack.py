"""period_slack: spikepipe may take a longer period (up to (1 + slack) x the shortest it found) only to cut
gradient delay; the answer is valid, within the longer period, and never has more delay than the seed schedules
it found at the tight period (phase 2 is time-limited, so not than the tight period's phase-2 result)."""

from dataclasses import replace
from math import ceil

import pytest
from sched_graphs import graphs

from hwmodels import Cluster
from schedules import generate, validate

OPTS = {"time_limit_s": 2.0, "workers": 1}


@pytest.mark.parametrize("name", sorted(graphs()))
@pytest.mark.parametrize("procs", [2, 4])
def test_slack_stays_within_the_longer_period_and_never_has_more_delay_than_the_tight_seeds(name, procs):
    g, c = graphs()[name], Cluster.homogeneous(procs)
    s = generate("spikepipe", g, c, **OPTS, period_slack=0.25)
    validate(s, g, c)
    tight = s.info["period_before_slack_cycles"]
    assert s.period_cycles <= ceil(tight * 1.25)
    seeds = {k: v for k, v in s.info["candidates_total_delay"].items() if k.startswith("tight-")}
    assert seeds, "the tight period's seeds must be among phase 2's candidates"
    assert sum(s.gradient_delays) <= min(seeds.values())


def test_slack_buys_less_delay_on_a_uniform_chain():
    g, c = graphs()["uniform-chain"], Cluster.homogeneous(4)
    tight = generate("spikepipe", g, c, **OPTS)
    loose = generate("spikepipe", g, c, **OPTS, period_slack=0.25)
    assert tight.period_cycles < loose.period_cycles <= ceil(tight.period_cycles * 1.25)
    assert sum(loose.gradient_delays) < sum(tight.gradient_delays)
    assert loose.info["period_slack_used"]


def test_slack_that_buys_nothing_keeps_the_tight_period():
    g, c = graphs()["one-big-layer"], Cluster.homogeneous(2)
    tight = generate("spikepipe", g, c, **OPTS)
    loose = generate("spikepipe", g, c, **OPTS, period_slack=0.25)
    if sum(loose.gradient_delays) == sum(tight.gradient_delays):
        assert loose.period_cycles == tight.period_cycles
        assert not loose.info["period_slack_used"]
    else:
        assert sum(loose.gradient_delays) < sum(tight.gradient_delays)


@pytest.mark.parametrize("bad", [-0.1, 1.0, 2.5])
def test_slack_out_of_range_is_refused(bad):
    from spikepipe.ir import SpikePipeError

    g, c = graphs()["uniform-chain"], Cluster.homogeneous(2)
    with pytest.raises(SpikePipeError, match="period_slack"):
        generate("spikepipe", g, c, **OPTS, period_slack=bad)


SMALL = {"deterministic_time_s": 0.1, "search_evaluations": 100, "workers": 1}


@pytest.mark.parametrize("name", ["random-chain", "skip-dag", "uniform-chain"])
@pytest.mark.parametrize("procs", [2, 4])
@pytest.mark.parametrize("base", ["pipedream", "layerpipe", "spikepipe"])
@pytest.mark.parametrize("stretch", [1.0, 1.07, 1.5, 2.0])
def test_a_stretched_schedule_stays_valid_with_no_more_delay_per_layer(name, procs, base, stretch):
    """The claim seeds rest on: in-period starts kept, lags derived again at a longer period."""
    from schedules.spikepipe_phases import _stretched

    g, c = graphs()[name], Cluster.homogeneous(procs)
    s = generate(base, g, c, **(SMALL if base == "spikepipe" else {}))
    longer = _stretched(g, c, s, int(s.period_cycles * stretch))
    validate(longer, g, c)
    assert all(a <= b for a, b in zip(longer.gradient_delays, s.gradient_delays, strict=True))


@pytest.mark.parametrize("name", ["random-chain", "skip-dag"])
def test_a_given_seed_bounds_the_delay_at_a_longer_period(name):
    from schedules.spikepipe_sched import spikepipe

    g, c = graphs()[name], Cluster.homogeneous(4)
    shorter = spikepipe(g, c, **SMALL, period_slack=0.1)
    s = spikepipe(g, c, **SMALL, period_slack=0.3, seeds=[shorter])
    validate(s, g, c)
    assert "given-0" in s.info["candidates_total_delay"]
    assert s.info["candidates_total_delay"]["given-0"] <= sum(shorter.gradient_delays)
    assert sum(s.gradient_delays) <= sum(shorter.gradient_delays)


def test_a_seed_that_does_not_fit_is_ignored():
    from schedules.spikepipe_sched import spikepipe

    g = graphs()["random-chain"]
    on_four = spikepipe(g, Cluster.homogeneous(4), **SMALL)
    longer = spikepipe(g, Cluster.homogeneous(2), **SMALL, period_slack=0.3)
    s = spikepipe(g, Cluster.homogeneous(2), **SMALL, seeds=[on_four, longer])  # other processors; longer period
    assert not any(k.startswith("given-") for k in s.info["candidates_total_delay"])
    # priced by other hardware (one slot's duration off): ignored too; the same schedule as it is fits
    fits = spikepipe(g, Cluster.homogeneous(2), **SMALL)
    off = replace(fits, slots=(replace(fits.slots[0], duration_cycles=fits.slots[0].duration_cycles + 1),
                               *fits.slots[1:]))
    s = spikepipe(g, Cluster.homogeneous(2), **SMALL, seeds=[off, fits])
    assert "given-0" not in s.info["candidates_total_delay"] and "given-1" in s.info["candidates_total_delay"]
