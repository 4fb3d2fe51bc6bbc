"""The playable pygame-ce demo: VM 0 runs the frame loop while a pool of VMs streams an endless world
(or, with ``--size``, VM 1 generates one finite world).

``python -m game`` (see :mod:`game.cli`). How the pieces fit::

    app.App                 the loop: handle_events() -> update() (fixed 60 Hz ticks) -> draw(), then
                            FrameClock.tick(60); polls the generator once a frame, never waits for it;
                            the scenes' host (scene.Host): App.go alone picks the next scene
    chunkjob                a chunk of the endless world generated and coloured (the pool VMs' job)
    chunksource             where chunks come from: runtime.ComputePool (or a thread/inline, to compare)
    streamer                what to ask for and in which order, the chunk cache, drawing chunks
    endless_scene,          the endless world's scene, camera (levels of detail) and creatures
    endless_camera, endless_creatures
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
imports ``game.worlddata``, ``game.terrain`` and ``game.chunkjob`` without it).
"""
