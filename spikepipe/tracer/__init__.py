"""The front end's tracer (one for the product): spikepipe.frontend is its entry point.

core     the TorchFunctionMode + forward hooks that turn one run of the model into layers
neurons  spiking neurons of our library, snnTorch and SpikingJelly -> NeuronSpec
layout   how the model uses time and batch (multi-step [T, B, ...] or a time loop inside forward)
"""
