"""SpikePipe: pipelined SNN training on systolic-array processors: speed, cost and accuracy."""

__version__ = "0.1.0"
