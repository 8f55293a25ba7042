"""Fixtures for tests and benchmarks (timm's tiny test models in spirit): a tiny checkpoint,
textured tiles with coordinates, drone views of a tile, rendered plane scenes with known poses.

Kept out of the packages they exercise: nothing in the deployment path, the reconstruction or
the training code imports this package.
"""
