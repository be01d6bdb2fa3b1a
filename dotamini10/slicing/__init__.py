"""Slicing any COCO detection set of large images into windows with the builder's rules (``hsfpn-data slice``).

Modules:
    source  The COCO json read and checked: images, categories, every annotation's box and flags.
    task    What a worker does with one image: decode once, scale, cut the windows, clip and keep the boxes, write.
    build   The orchestrator: plan, run (parallel, resumable, with progress), assemble the COCO json, the manifest,
            the problems file and the record.

Rules shared with the DOTAmini10 builder: windows from :func:`dotamini10.split.get_windows` (steps of ``stride``,
the last window moved flush to the far edge, an image smaller than a window padded bottom/right), objects clipped
to the window and kept when area(box ∩ window) / area(box) >= iof (:func:`dotamini10.split.assign_objects`).
"""
