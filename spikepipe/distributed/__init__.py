"""Real execution of a schedule on P torch.distributed ranks (gloo on CPU), equal to the single-process emulation.

plan.py     each rank's events of an epoch in the emulation's order, and the messages between ranks (pure data)
worker.py   one rank: runs its events with isend/irecv, weight versions, stashing, all-reduce of shared layers
launch.py   the driver: a trainer whose epochs run on spawned ranks; fault detection and cleanup
calibrate.py  measured costs of every task and transfer on this machine, for the simulator's prediction
"""

from spikepipe.distributed.launch import BACKENDS, DistributedError, DistributedPipeline, make_trainer
from spikepipe.distributed.plan import PlanError, build_plan

__all__ = ["BACKENDS", "DistributedError", "DistributedPipeline", "PlanError", "build_plan", "make_trainer"]
