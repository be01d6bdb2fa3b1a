"""Reproduction pipelines: MMDetection 3 configs, job runner and the paper's tables rebuilt.

Modules:
    configs/        MMDetection 3 configs of every Table 3 detector (``_base_`` model / dataset / schedule /
                    runtime files + one file per detector); the neck is swapped per job, never copied.
    paper           The paper's figures of Tables 1-4.
    presets         Run settings: defaults -> preset (``paper`` / ``smoke`` / ``demo``) -> command-line overrides.
    datasets        AI-TOD / DOTAmini10 / any COCO-format layouts, checked on disk and applied to a config.
    synthetic_coco  The seeded synthetic tiny-object COCO set of the smoke preset.
    detectors       Rows, neck variants and the resolution of one job's config.
    models          One way to load a model: row id or config file, --neck, checkpoint read weights-only.
    runner          Jobs in subprocesses: skip finished, resume interrupted, record failures, progress.
    job_folder      One job's folder: its file names, reads and writes, and the job's status.
    parent_guard    Starts a job so that it (and torchrun's or srun's processes) ends when the runner dies.
    job             One job's process (train, evaluate, model.pth, done marker), with its MMEngine ``hooks``,
                    its multi-process set-up (``distributed``) and the metric columns (``metrics``).
    progress        Where a running job is (progress.json), written by the job and read by the runner.
    tables          Table plans, runs and outputs (md, csv, png).
    training        ``hsfpn-repro train``: one job on one's own COCO-format data, with its report.
    table5          Table 5 (parameters and FLOPs).
    detect/         ``hsfpn-repro detect``: full scenes cut into the builder's windows, batched through a
                    model, merged back (per-image JSON, previews, COCO results, DOTA Task2 files).
    oracle          A registered detector returning each window's ground truth, for testing such chains.
    visualize/      The paper's analysis figures on your data: TP/FP/FN error views, high-frequency
                    responses and P2 features, the signal-to-clutter ratio of tiny objects.
    commands/       The command groups of ``hsfpn-data`` and ``hsfpn-repro`` (``cli.py`` assembles them).
"""
