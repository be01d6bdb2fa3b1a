# Runtime shared by every HS-FPN reproduction config (MMDetection 3, old-style string types).
default_scope = 'mmdet'

# Importing hsfpn registers HSFPN (neck) and AITODMetric; failing loudly beats a silent FPN fallback.
custom_imports = dict(imports=['hsfpn'], allow_failed_imports=False)

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50),
    param_scheduler=dict(type='ParamSchedulerHook'),
    # One checkpoint per epoch so an interrupted job resumes where it stopped; the last one kept (and the best
    # when validating), or all with --keep-checkpoints all (pipelines.detectors.apply_schedule sets it).
    checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=1),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='DetVisualizationHook'))

env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'))

# Scalars (losses, lr, iteration time, evaluation figures) go to vis_data/scalars.json and to TensorBoard event
# files beside it: `tensorboard --logdir WORK_DIR`.
vis_backends = [dict(type='LocalVisBackend'), dict(type='TensorboardVisBackend')]
visualizer = dict(type='DetLocalVisualizer', vis_backends=vis_backends, name='visualizer')
log_processor = dict(type='LogProcessor', window_size=50, by_epoch=True)
log_level = 'INFO'
load_from = None
resume = False
randomness = dict(seed=0)
