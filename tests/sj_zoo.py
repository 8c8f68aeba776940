"""The real-model catalogue of experiments/frontend_bench/models.py for the tests: SpikingJelly's zoo (with a
stand-in for torchvision, which its modules import only for a URL loader and which cannot load here) and the
snnTorch tutorial CNN."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "experiments" / "frontend_bench"))

from models import SnnTorchTutorialCNN, sj_zoo, stand_in_torchvision  # noqa: E402

zoo_module = sj_zoo
__all__ = ["SnnTorchTutorialCNN", "stand_in_torchvision", "zoo_module"]
