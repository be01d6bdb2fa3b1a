"""AI-TOD from its sources: the xView windows cut exactly as the official generation stores them, plus
AI-TOD_wo_xview, verified against the annotation jsons (``hsfpn-data build-aitod``).

Modules, in the order the build uses them:
    lists     The ``aitod_xview_{split}.txt`` lists: which xView windows each split holds.
    official  The official windowing rule (wwtool's ``split_image``) and the pixels of one window.
    inputs    Where the tifs, the AI-TOD_wo_xview images and the annotation jsons are.
    tasks     What a worker does: cut one tif's windows, copy a batch of AI-TOD_wo_xview images.
    verify    The jsons against the output: every image present at its size, every box inside it.
    record    ``build.json`` of an AI-TOD build and AI-TOD's published figures.
    build     The orchestrator.
    card      The data card ``hsfpn-data stats`` writes for an AI-TOD build.
    synthetic A small AI-TOD-shaped source (tifs, lists, AI-TOD_wo_xview, jsons) for tests and benchmarks.
"""
