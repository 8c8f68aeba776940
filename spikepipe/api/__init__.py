"""The public Python API of SpikePipe; use it as `import spikepipe` (the names of `spikepipe.__all__`).

    import spikepipe as sp
    work = sp.load_network(model, example_input)          # or "vgg11", "my_net.py:build", "model.nir"
    hw = sp.hardware("tpu-like-128", link_bytes_per_cycle=32.0)
    res = sp.compare(work, hw, processors=[2, 4, 8])
    res.to_pandas(); res.plot()

Modules: inputs (workloads, hardware), ops (the operations), plans (schedule files, the frontier), results
(frozen results), progress, contract (the JSON objects the CLI prints, shared with `.to_dict()`). This package imports nothing heavy until a name is used,
so the CLI can import `spikepipe.api.contract` without loading torch.
"""

from __future__ import annotations

from typing import Any

import spikepipe as _root

__all__ = [n for n in _root.__all__ if n != "__version__"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(_root, name)
    raise AttributeError(f"module 'spikepipe.api' has no attribute {name!r}")
