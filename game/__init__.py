"""The playable pygame-ce demo: VM 0 runs the frame loop while VM 1 generates the world.

This package will hold the scenes (loading, world, error), the renderer and the ``python -m game``
entry point. It uses both ``runtime`` and ``worldgen``.
"""
