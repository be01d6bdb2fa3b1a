"""The command groups of ``hsfpn-data`` and ``hsfpn-repro``, one module each (Typer's "bigger applications").

``cli.py`` assembles them: each module here holds a ``typer.Typer`` named ``app`` whose commands are added to
one of the two entry points with ``add_typer``. A command parses its arguments, calls one library function and
prints that function's summary; defaults come from the library's options types, so each exists once.

Modules:
    common      What every group shares: one-line domain errors, the progress bar, comma lists, --version.
    aitod       hsfpn-data build-aitod, synthetic-aitod.
    slicing     hsfpn-data slice and the convert group (convert visdrone).
    dataset     hsfpn-data build-dotamini10, stats, synthetic-dota.
    detections  hsfpn-data merge, coco-gt.
    evaluate    hsfpn-repro eval (AI-TOD metric or DOTA Task2).
    export      hsfpn-repro export (ONNX: the neck, or a torchvision ResNet backbone with HS-FPN).
    convert     hsfpn-repro convert-checkpoint.
    tables      hsfpn-repro table1-table5.
    train       hsfpn-repro train.
    detect      hsfpn-repro detect.
    visualize   hsfpn-repro visualize errors|frequencies and analyze scr.

Library modules are imported inside each command so that ``--help`` answers without loading torch.
"""
