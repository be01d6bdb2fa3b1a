# Table 3: RetinaNet* (P2-P6) R-50 on AI-TOD; one-stage, so lr 0.001.
_base_ = [
    './_base_/models/retinanet_r50_fpn-p2_aitod.py',
    './_base_/datasets/aitod_detection.py',
    './_base_/schedules/schedule_1x_aitod.py',
    './_base_/default_runtime.py',
]
optim_wrapper = dict(optimizer=dict(lr=0.001))
