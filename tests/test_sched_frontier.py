"""The period/delay frontier: a monotone staircase (a longer period never has more total delay), every baseline
dominated by a point, ending at zero delay; the CLI prints the contract JSON and writes JSON, CSV and PNG."""

import json

import pytest
from sched_graphs import graphs

from hwmodels import Cluster
from spikepipe.cli import main
from spikepipe.frontier import FrontierPoint, frontier, knee, pareto


def _p(period, total, maxd=None, source="x"):
    return FrontierPoint(period, total, total if maxd is None else maxd, (), 1.0, float(period), "heuristic", 1,
                         0.0, 0, 0.0, source, "periodic")


def test_pareto_is_a_monotone_staircase():
    pts = [_p(100, 9), _p(120, 9), _p(110, 5), _p(110, 7), _p(150, 6), _p(200, 0), _p(90, 12), _p(200, 0, 0, "y")]
    front = pareto(pts)
    assert [(p.period_cycles, p.total_delay) for p in front] == [(90, 12), (100, 9), (110, 5), (200, 0)]
    for p in pts:  # every candidate is dominated by (or is) a frontier point
        assert any(f.period_cycles <= p.period_cycles and f.total_delay <= p.total_delay for f in front)
    assert knee(front) in range(len(front))


@pytest.mark.parametrize("procs", [2, 4])
@pytest.mark.parametrize("graph_name", ["random-chain", "skip-dag"])
def test_frontier_dominates_the_baselines_and_ends_at_zero_delay(graph_name, procs, monkeypatch):
    built = _count_builds(monkeypatch)
    g, c = graphs()[graph_name], Cluster.homogeneous(procs)
    fr = frontier(g, c, slacks=(0.0, 0.1, 0.3), options={"deterministic_time_s": 0.1, "search_evaluations": 200,
                                                          "workers": 1})
    # each baseline built once: the candidates' are the solves' (sequential also once more, as the speedup's base)
    baselines = [n for n in built if n != "spikepipe"]
    assert sorted(baselines) == sorted([*set(baselines), "sequential"])
    pts = fr.points
    for a, b in zip(pts, pts[1:], strict=False):  # longer period: less total delay, or as much and less max delay
        assert a.period_cycles < b.period_cycles and (a.total_delay, a.max_delay) > (b.total_delay, b.max_delay)
        assert a.total_delay >= b.total_delay
    assert pts[-1].total_delay == 0
    for p in fr.candidates:
        assert any(f.period_cycles <= p.period_cycles and f.total_delay <= p.total_delay for f in pts), p.source
        assert p.period_lower_bound_cycles <= p.period_cycles and p.delay_lower_bound <= p.total_delay
        assert p.simulated_period_cycles == p.period_cycles
    assert {"pipedream", "layerpipe", "zero-bubble", "zb-v"} <= {p.source for p in fr.candidates}
    assert pts[0].period_cycles == min(p.period_cycles for p in fr.candidates)
    assert 0 <= fr.knee < len(pts)


@pytest.mark.parametrize("graph_name", ["random-chain", "skip-dag"])
def test_frontier_ladder_alone_never_adds_delay(graph_name):
    """Each slack's solve is seeded with the least-delay schedule of the shorter slacks: the spikepipe points by
    themselves, in slack order, never gain total delay (before the staircase drops anything)."""
    g, c = graphs()[graph_name], Cluster.homogeneous(4)
    fr = frontier(g, c, slacks=(0.0, 0.05, 0.1, 0.2, 0.3),
                  options={"deterministic_time_s": 0.1, "search_evaluations": 100, "workers": 1})
    ladder = [p for p in fr.candidates if p.source == "spikepipe"]
    assert [p.period_slack for p in ladder] == sorted(p.period_slack for p in ladder)
    for k, p in enumerate(ladder[1:], 1):
        assert p.total_delay <= min(q.total_delay for q in ladder[:k]), [q.total_delay for q in ladder]


def test_frontier_cli_json_csv_png(tmp_path, capsys):
    out = tmp_path / "fr"
    assert main(["frontier", "--network", "snn-mlp", "-P", "2", "--slacks", "0,0.2", "--deterministic-time", "0.1",
                 "--out", str(out), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert {"network", "processors", "lower_bound_cycles", "points"} <= set(data)
    assert data["network"] == "snn-mlp" and data["processors"] == 2
    for p in data["points"]:
        assert {"period_cycles", "total_delay", "max_delay", "gradient_delays", "speedup", "status",
                "period_gap", "delay_gap", "delay_lower_bound", "period_lower_bound_cycles"} <= set(p)
        assert p["total_delay"] == sum(p["gradient_delays"]) and p["max_delay"] == max(p["gradient_delays"])
    assert json.loads((out / "frontier.json").read_text())["points"] == data["points"]
    assert len((out / "frontier.csv").read_text().splitlines()) == len(data["points"]) + 1
    assert (out / "frontier.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_period_slack_auto_picks_the_knee_of_its_solves(monkeypatch):
    from schedules import generate, validate
    from schedules.spikepipe_options import DEFAULT_COMPARE
    from schedules.spikepipe_sched import AUTO_SLACKS

    g, c = graphs()["random-chain"], Cluster.homogeneous(4)
    opts = {"deterministic_time_s": 0.1, "search_evaluations": 200, "workers": 1}
    built = _count_builds(monkeypatch)
    s = generate("spikepipe", g, c, **opts, period_slack="auto")
    assert sorted(n for n in built if n != "spikepipe") == sorted(DEFAULT_COMPARE)  # once for the five solves
    validate(s, g, c)
    auto = s.info["period_slack_auto"]
    assert [t["period_slack"] for t in auto["tried"]] == list(AUTO_SLACKS)
    picked = next(t for t in auto["tried"] if t["period_slack"] == auto["picked"])
    assert (picked["period_cycles"], picked["total_delay"]) == (s.period_cycles, sum(s.gradient_delays))
    tight = generate("spikepipe", g, c, **opts)
    assert s.period_cycles >= tight.period_cycles and sum(s.gradient_delays) <= sum(tight.gradient_delays)


def test_simulate_takes_period_slack_auto(capsys):
    assert main(["simulate", "--network", "snn-mlp", "-P", "2", "--schedule", "spikepipe", "--period-slack", "auto",
                 "--json"]) == 0
    row = json.loads(capsys.readouterr().out)["results"][0]
    assert row["schedule"] == "spikepipe" and row["period_cycles"] > 0


def test_a_solve_with_a_memo_of_baselines_builds_none_and_gives_the_same_schedule(monkeypatch):
    """The frontier and period_slack="auto" solve one graph several times: the baselines (which depend on neither
    the slack nor the seeds) come from a memo, and a solve with a filled memo returns what a fresh solve returns."""
    from schedules.spikepipe_options import DEFAULT_COMPARE
    from schedules.spikepipe_sched import spikepipe

    g, c = graphs()["random-chain"], Cluster.homogeneous(3)
    opts = {"deterministic_time_s": 0.05, "search_evaluations": 60, "workers": 1}
    memo: dict = {}
    first = spikepipe(g, c, baselines=memo, **opts)
    assert sorted(memo) == sorted(DEFAULT_COMPARE)
    built = _count_builds(monkeypatch)
    again = spikepipe(g, c, baselines=memo, **opts)
    assert built == []  # every baseline came from the memo
    assert again.slots == first.slots and again.period_cycles == first.period_cycles
    assert again.info["baselines_compared"] == first.info["baselines_compared"]


def _count_builds(monkeypatch) -> list[str]:
    """The names of the schedules generated from now on (each call of a generator the registry hands out)."""
    import schedules.registry as registry

    built, real_get = [], registry.get

    def get(name):
        gen = real_get(name)
        return lambda *a, **k: built.append(name) or gen(*a, **k)

    monkeypatch.setattr(registry, "get", get)
    return built
