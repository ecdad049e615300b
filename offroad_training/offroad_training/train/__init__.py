"""Training DDRNet23-slim with the seed's recipe: config, data, augmentation, loss, EMA, loop.

Import the submodules directly; this package module stays light so ``offroad --help`` is fast.
"""
