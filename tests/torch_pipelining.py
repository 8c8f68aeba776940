"""torch.distributed.pipelining's own flush schedules as an oracle: their `pipeline_order` built with mock stages
(no process group), replayed with unit costs (F = B-input = B-weight = 1, a full backward 2) and free transfers."""

from __future__ import annotations

from dataclasses import dataclass

from torch.distributed.pipelining import schedules as tps


@dataclass
class MockStage:
    """What the schedules read of a stage to compute their order."""

    stage_index: int
    num_stages: int
    group_size: int
    group_rank: int = 0
    submod: object = None

    @property
    def is_first(self) -> bool:
        return self.stage_index == 0

    @property
    def is_last(self) -> bool:
        return self.stage_index == self.num_stages - 1


COMPUTE = "FIWB"


def _renumbered(order: dict) -> dict:
    """Schedule1F1B's pipeline_order numbers the last rank's forwards from 1 (its warm-up loop leaves forward_mb at
    0 and the steady state pre-increments); its runtime runs micro-batches in order. Number the k-th F and the
    k-th B of each rank k, which is what 1F1B (and GPipe) runs."""
    out = {}
    for rank, acts in order.items():
        seen: dict[str, int] = {}
        out[rank] = []
        for a in acts:
            if a is None or a.computation_type.value not in COMPUTE:
                continue
            t = a.computation_type.value
            out[rank].append(a._replace(microbatch_index=seen.get(t, 0)))
            seen[t] = seen.get(t, 0) + 1
    return out


def pipeline_order(name: str, p: int, m: int, v: int = 1) -> dict:
    """torch's order for p ranks and m micro-batches: rank -> actions (stage index, type, micro-batch)."""
    loss = lambda out, target: out  # noqa: E731 - only its presence matters (it enables the backward)
    if name in ("Schedule1F1B", "ScheduleGPipe"):
        cls = getattr(tps, name)
        return _renumbered(cls(MockStage(0, p, p), m, loss_fn=loss).pipeline_order)
    if name == "ScheduleZBVZeroBubble":
        stages = [MockStage(0, 2 * p, p), MockStage(2 * p - 1, 2 * p, p)]
    else:
        stages = [MockStage(j * p, v * p, p) for j in range(v)]
    return getattr(tps, name)(stages, m, loss_fn=loss).pipeline_order


def unit_makespan(order: dict) -> int:
    """Each rank runs its compute actions in order, each as soon as its rank is free and its inputs are done:
    F(s) needs F(s-1); an input backward I(s) (or a full B) needs F(s) and I(s+1); W(s) needs I(s)."""
    cost = {"F": 1, "I": 1, "W": 1, "B": 2}
    acts = {r: [a for a in lst if a is not None and a.computation_type.value in COMPUTE] for r, lst in order.items()}
    stages = 1 + max(a.stage_index for lst in acts.values() for a in lst)
    done: dict[tuple[str, int, int], int] = {}
    free = dict.fromkeys(acts, 0)
    nxt = dict.fromkeys(acts, 0)
    left = sum(len(lst) for lst in acts.values())
    while left:
        moved = False
        for r, lst in acts.items():
            while nxt[r] < len(lst):
                a = lst[nxt[r]]
                s, t, mb = a.stage_index, a.computation_type.value, a.microbatch_index
                if t == "F":
                    needs = [("F", s - 1, mb)] if s else []
                elif t in "IB":
                    needs = [("F", s, mb)] + ([("I", s + 1, mb)] if s + 1 < stages else [])
                else:
                    needs = [("I", s, mb)]
                if any(n not in done for n in needs):
                    break
                end = max([free[r]] + [done[n] for n in needs]) + cost[t]
                done[(t, s, mb)] = free[r] = end
                if t == "B":
                    done[("I", s, mb)] = end
                nxt[r] += 1
                left -= 1
                moved = True
        if not moved:
            raise RuntimeError(f"torch order deadlocks in the unit replay: {nxt}")
    return max(free.values())
