"""The playable pygame-ce demo: VM 0 runs the frame loop while VM 1 generates the world.

``python -m game`` (see :mod:`game.cli`). How the pieces fit::

    app.App                 the loop: handle_events() -> update() (fixed 60 Hz ticks) -> draw(), then
                            FrameClock.tick(60); polls the generator once a frame, never waits for it
    generation.VMGenerator  ComputeThread(1) running worlddata.build_world_data (cancel + resubmit on R)
    worlddata, terrain      VM 1's side (numpy + worldgen only): generate, colour, zoom levels
    scene, loading_scene,   the scenes (enter/leave/handle_event/on_generation/update/draw)
    world_scene, error_scene
    failure                 what the error screen tells a player and offers (a smaller size, a retry)
    render, camera          terrain Surfaces from VM 1's arrays, only the visible part scaled
    sprites                 creature PNGs from game.assets and their vectorised wandering
    hud, ui, palette        overlays, drawing helpers, the one biome palette
    layout                  where the overlays go in any window size, so that none covers another
    stats, clock, release   frame timing, a steady 60 FPS clock, freeing old worlds off the loop

This package is imported by nothing else in the project; importing it does not import pygame (VM 1
imports ``game.worlddata`` and ``game.terrain`` without it).
"""
