"""BlocTrain through `simulate` and `compare`: its phases are a sequence of task graphs (methods.phased), each
scheduled and replayed with the chosen generators; the result's rows combine them and `phases` holds each phase's
own result (with its schedules and replays)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from hwmodels import Cluster
from spikepipe.api.inputs import ApiArgumentError
from spikepipe.api.progress import ProgressCallback, ProgressEvent
from spikepipe.api.results import SimulateResult
from spikepipe.ir import Schedule, TaskGraph

if TYPE_CHECKING:
    from spikepipe.methods.registry import MethodOptions


def method_options(method: str | MethodOptions, method_blocks: int = 2) -> MethodOptions:
    """The MethodOptions of `method` (a name takes the registry's defaults and `method_blocks` blocks)."""
    from spikepipe.methods.registry import MethodOptions

    if isinstance(method, MethodOptions):
        return method
    params = {"blocks": method_blocks} if method in ("ttl", "local", "bloctrain") else {}
    return MethodOptions.of(method, **params)


def is_phased(method: str | MethodOptions) -> bool:
    """Does `method` train in phases (a task graph per phase)? BlocTrain does."""
    return (method if isinstance(method, str) else method.name) == "bloctrain"


def simulate_phases(graph: TaskGraph, cluster: Cluster, names: Sequence[str], options: MethodOptions, *,
                    eval_kwargs: Mapping[str, Any], keep_going: bool | None = None,
                    progress: ProgressCallback | None = None, given: Sequence[Schedule] = (),
                    zero_skip: bool = False, minibatches: Sequence[float] | None = None) -> SimulateResult:
    """`simulate` of BlocTrain on the network's task graph `graph`: every phase graph with every generator of
    `names`; the rows combine the phases (methods.phased: minibatch-weighted means, equal minibatches per phase
    unless `minibatches` says how many each phase trains) and list them under `phases`."""
    from spikepipe.methods.phased import evaluate_phases

    if given:
        raise ApiArgumentError("a schedule file fits one task graph; method bloctrain runs one task graph per "
                               "phase (schedule it by generator name)")
    if zero_skip:
        raise ApiArgumentError("zero_skip is not modelled for method bloctrain's phases; simulate without it")
    label = f"{graph.name}+bloctrain P={cluster.size}"
    total = len(names) * len(_phase_count(graph, options))
    done = [0]

    def step(what: str) -> None:
        if progress:
            progress(ProgressEvent("simulate", done[0], total, f"{label}: {what}"))
        done[0] += 1

    phased = evaluate_phases(graph, cluster, names, options, minibatches=minibatches, progress=step,
                             keep_going=len(names) > 1 if keep_going is None else keep_going, **dict(eval_kwargs))
    if progress:
        progress(ProgressEvent("simulate", total, total, label))
    phases = tuple(SimulateResult.from_report(r.report, list(r.evaluations), r.graph) for r in phased.runs)
    return SimulateResult.from_report(phased.report, [], graph, phases=phases)


def _phase_count(graph: TaskGraph, options: MethodOptions) -> list[tuple[int, int]]:
    from spikepipe.methods.local import partition

    return partition(graph.num_layers, options.blocks)
