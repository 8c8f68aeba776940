"""Links between processors: bandwidth in bytes/cycle, latency in cycles, topology, routes and the all-reduce.

Topologies (a link is a directed pair (a, b); every link carries link_bytes_per_cycle in its direction):
- all-to-all  a private link per ordered pair of processors (one hop everywhere).
- ring        links to both neighbours on a ring; a transfer takes the shorter way round, ties clockwise.
- mesh        processors on a rows x cols grid (row-major positions; `placement` may put processor i at another
              position), a link per neighbour and direction; dimension-order routing: along the row first (X),
              then along the column (Y).
- torus       the mesh with wrap-around links in both dimensions; each dimension takes its shorter way, ties
              towards increasing index.
- switch      a central switch: every processor has one injection port (a, SWITCH) and one ejection port
              (SWITCH, b); a transfer crosses both, store-and-forward like every hop here, so any processor
              reaches any other in two hops and a processor's ports limit what it can send and receive at once.
The grid defaults to the squarest factorisation of P (rows <= cols).

The all-reduce follows the topology as a list of phases (AllReducePhase), each a ring algorithm run by every
processor at once: one ring over all P on all-to-all, ring and switch (two hops per step through the switch);
on a mesh or torus a ring along every row then along every column (the 2D algorithm: reduce-scatter rows,
reduce-scatter columns, all-gather columns, all-gather rows). A ring along a mesh line without wrap-around is
folded onto it (0, 2, 4, ..., 5, 3, 1), so a logical step crosses at most two links and no link twice. Where
the grid has a Hamiltonian cycle of neighbour links (any torus; a mesh with both sides >= 2 and P even) a single
ring over all P is also possible, and the cheaper of the two plans is taken.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from math import ceil, isqrt

from hwmodels.errors import HardwareConfigError

TOPOLOGIES = ("all-to-all", "ring", "mesh", "torus", "switch")
SWITCH = -1  # the switch's node id in the links of the `switch` topology

Link = tuple[int, int]


@dataclass(frozen=True)
class AllReducePhase:
    steps: int  # sequential ring steps
    chunk_bytes: int  # what every processor sends in one step
    hops: int  # links a step's message crosses (store-and-forward)


def squarest_grid(processors: int) -> tuple[int, int]:
    """(rows, cols) with rows * cols == P, rows <= cols and rows as large as possible."""
    rows = next(r for r in range(isqrt(processors), 0, -1) if processors % r == 0)
    return rows, processors // rows


@dataclass(frozen=True)
class Interconnect:
    link_bytes_per_cycle: float = 64.0
    link_latency_cycles: int = 100
    topology: str = "all-to-all"
    grid: tuple[int, int] | None = None  # mesh/torus: rows x cols (default: the squarest factorisation of P)
    placement: tuple[int, ...] | None = None  # mesh/torus: grid position (row-major) of processor i
    # routes computed so far (ring, mesh, torus): a memo, not part of the value
    _routes: dict[tuple[int, int, int], tuple[Link, ...]] = field(default_factory=dict, init=False, repr=False,
                                                                  compare=False, hash=False)

    def __post_init__(self) -> None:
        bw = self.link_bytes_per_cycle
        if not isinstance(bw, (int, float)) or isinstance(bw, bool) or not bw > 0:
            raise HardwareConfigError(f"link_bytes_per_cycle must be > 0, got {self.link_bytes_per_cycle!r}")
        lat = self.link_latency_cycles
        if not isinstance(lat, int) or isinstance(lat, bool) or lat < 0:
            raise HardwareConfigError(f"link_latency_cycles must be an integer >= 0, got {self.link_latency_cycles!r}")
        if self.topology not in TOPOLOGIES:
            raise HardwareConfigError(f"unknown topology {self.topology!r}; use one of {', '.join(TOPOLOGIES)}")
        for key in ("grid", "placement"):
            v = getattr(self, key)
            if v is None:
                continue
            if not isinstance(v, (list, tuple)) or not all(isinstance(x, int) and not isinstance(x, bool) for x in v):
                raise HardwareConfigError(f"{key} must be a list of integers, got {v!r}")
            object.__setattr__(self, key, tuple(v))
        if self.grid is not None and (len(self.grid) != 2 or min(self.grid) < 1):
            raise HardwareConfigError(f"grid must be [rows, cols] of positive integers, got {list(self.grid)}")
        if (self.grid is not None or self.placement is not None) and self.topology not in ("mesh", "torus"):
            raise HardwareConfigError(f"grid and placement place processors on a mesh or torus, not on topology "
                                      f"{self.topology!r}")

    # ------------------------------------------------------------ the grid
    def check_size(self, processors: int) -> None:
        """Raise unless this interconnect can join `processors` processors (a given grid or placement fits)."""
        if self.topology not in ("mesh", "torus"):
            return
        rows, cols = self.dims(processors)
        if rows * cols != processors:
            raise HardwareConfigError(f"grid {rows}x{cols} holds {rows * cols} processors, the cluster has "
                                      f"{processors}; give grid = [rows, cols] with rows * cols = {processors}")
        if self.placement is not None and sorted(self.placement) != list(range(processors)):
            raise HardwareConfigError(f"placement must list every grid position 0..{processors - 1} once, got "
                                      f"{list(self.placement)}")

    def dims(self, processors: int) -> tuple[int, int]:
        return self.grid if self.grid is not None else squarest_grid(processors)

    def position(self, proc: int, processors: int) -> tuple[int, int]:
        """(row, col) of a processor on the grid."""
        pos = self.placement[proc] if self.placement is not None else proc
        return divmod(pos, self.dims(processors)[1])

    def _at(self, row: int, col: int, processors: int) -> int:
        pos = row * self.dims(processors)[1] + col
        return self.placement.index(pos) if self.placement is not None else pos

    # ------------------------------------------------------------ routes
    def route(self, src: int, dst: int, processors: int) -> tuple[Link, ...]:
        """Directed links (a, b) a transfer src->dst occupies, in order; () on one processor."""
        if src == dst:
            return ()
        if self.topology == "all-to-all":
            return ((src, dst),)
        if self.topology == "switch":
            return ((src, SWITCH), (SWITCH, dst))
        key = (src, dst, processors)
        route = self._routes.get(key)
        if route is None:  # schedulers ask for the same routes many times
            route = self._routes[key] = self._walk_route(src, dst, processors)
        return route

    def _walk_route(self, src: int, dst: int, processors: int) -> tuple[Link, ...]:
        if self.topology == "ring":
            return tuple((a, b) for a, b in _line_walk(src, dst, processors, wrap=True))
        rows, cols = self.dims(processors)
        wrap = self.topology == "torus"
        (r0, c0), (r1, c1) = self.position(src, processors), self.position(dst, processors)
        cells = [(r0, c) for c in _walk(c0, c1, cols, wrap)] + [(r, c1) for r in _walk(r0, r1, rows, wrap)]
        nodes = [src] + [self._at(r, c, processors) for r, c in cells]
        return tuple(zip(nodes, nodes[1:], strict=False))

    def hops(self, src: int, dst: int, processors: int) -> int:
        return len(self.route(src, dst, processors))

    def links(self, processors: int) -> tuple[Link, ...]:
        """Every directed link of the topology, sorted."""
        if processors <= 1:
            return ()
        if self.topology == "all-to-all":
            return tuple((a, b) for a in range(processors) for b in range(processors) if a != b)
        if self.topology == "switch":
            return tuple(sorted({(a, SWITCH) for a in range(processors)} | {(SWITCH, b) for b in range(processors)}))
        return tuple(sorted({link for a in range(processors) for b in range(processors) if a != b
                             for link in self.route(a, b, processors)[:1]}))

    # ------------------------------------------------------------ costs
    def occupancy_cycles(self, nbytes: int) -> int:
        """Cycles one link is busy carrying nbytes (bandwidth only)."""
        return ceil(nbytes / self.link_bytes_per_cycle) if nbytes > 0 else 0

    def transfer_cycles(self, src: int, dst: int, nbytes: int, processors: int) -> int:
        """Time from the producer's end to data available at the consumer (store-and-forward per hop)."""
        hops = len(self.route(src, dst, processors))
        if hops == 0:
            return 0
        return hops * (self.link_latency_cycles + self.occupancy_cycles(nbytes))

    def allreduce_plan(self, nbytes: int, processors: int) -> tuple[AllReducePhase, ...]:
        """The phases of an all-reduce of nbytes over every processor (see the module docstring)."""
        if processors <= 1 or nbytes <= 0:
            return ()
        if self.topology in ("all-to-all", "ring", "switch"):
            return (AllReducePhase(2 * (processors - 1), ceil(nbytes / processors),
                                   2 if self.topology == "switch" else 1),)
        rows, cols = self.dims(processors)
        wrap = self.topology == "torus"
        phases = []
        chunk = nbytes
        for n in (cols, rows):
            if n > 1:
                chunk = ceil(chunk / n)
                phases.append(AllReducePhase(2 * (n - 1), chunk, 1 if wrap or n <= 2 else 2))
        plans = [tuple(phases)]
        if wrap or (min(rows, cols) >= 2 and processors % 2 == 0):
            # a Hamiltonian cycle of neighbour links exists (a snake, closed by the wrap or the first column):
            # one ring over all P, one hop per step; large messages prefer it, small ones the fewer 2D steps
            plans.append((AllReducePhase(2 * (processors - 1), ceil(nbytes / processors), 1),))
        return min(plans, key=self._plan_cycles)

    def _plan_cycles(self, plan: tuple[AllReducePhase, ...]) -> int:
        return sum(ph.steps * ph.hops * (self.link_latency_cycles + self.occupancy_cycles(ph.chunk_bytes))
                   for ph in plan)

    def allreduce_cycles(self, nbytes: int, processors: int) -> int:
        """Duration of the all-reduce: every step of every phase pays its hops' latency and occupancy."""
        return self._plan_cycles(self.allreduce_plan(nbytes, processors))

    def allreduce_link_bytes(self, nbytes: int, processors: int) -> int:
        """Bytes x links of the all-reduce: every processor sends a chunk over `hops` links in every step."""
        return sum(ph.steps * processors * ph.hops * ph.chunk_bytes for ph in self.allreduce_plan(nbytes, processors))


def _walk(a: int, b: int, n: int, wrap: bool) -> list[int]:
    """Indices visited after a on the way to b along a line of n (a ring when wrap), shorter way, ties +1."""
    if a == b:
        return []
    if wrap:
        fwd = (b - a) % n
        step = 1 if fwd <= n - fwd else -1
    else:
        step = 1 if b > a else -1
    out, x = [], a
    while x != b:
        x = (x + step) % n if wrap else x + step
        out.append(x)
    return out


def _line_walk(a: int, b: int, n: int, wrap: bool) -> list[Link]:
    nodes = [a] + _walk(a, b, n, wrap)
    return list(zip(nodes, nodes[1:], strict=False))
