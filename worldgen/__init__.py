"""Deterministic, seamless world generation with numpy.

This package will hold ``generate()`` (a world region as numpy arrays: elevation, moisture, biomes,
heights and creatures) and ``gen_world()``, the seed example's entry point. It depends on numpy only:
never on pygame or runtime.
"""
