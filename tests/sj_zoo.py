"""SpikingJelly's model zoo without torchvision: its modules import torchvision only for a URL loader (of
pretrained weights, never used here), and torchvision cannot load beside the CPU torch in this environment."""

from __future__ import annotations

import importlib
import sys
import types


def stand_in_torchvision() -> None:
    """Put a minimal torchvision (only `load_state_dict_from_url`) in sys.modules unless a real one imports."""
    if "torchvision" in sys.modules:
        return
    try:
        importlib.import_module("torchvision")
        return
    except Exception:  # noqa: BLE001 - any failure to import means: use the stand-in
        for name in [n for n in sys.modules if n == "torchvision" or n.startswith("torchvision.")]:
            del sys.modules[name]

    def load_state_dict_from_url(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("pretrained weights are not available offline")

    root = types.ModuleType("torchvision")
    models = types.ModuleType("torchvision.models")
    utils = types.ModuleType("torchvision.models.utils")
    utils.load_state_dict_from_url = load_state_dict_from_url  # type: ignore[attr-defined]
    root.models = models  # type: ignore[attr-defined]
    models.utils = utils  # type: ignore[attr-defined]
    sys.modules.update({"torchvision": root, "torchvision.models": models, "torchvision.models.utils": utils})


def zoo_module(name: str) -> types.ModuleType:
    """spikingjelly.activation_based.model.<name>, importable with the stand-in."""
    stand_in_torchvision()
    return importlib.import_module(f"spikingjelly.activation_based.model.{name}")
