# Table 3: Faster R-CNN R-50 + FPN on AI-TOD (two-stage: lr 0.005). The runner swaps model.neck for HSFPN.
_base_ = [
    './_base_/models/faster-rcnn_r50_fpn_aitod.py',
    './_base_/datasets/aitod_detection.py',
    './_base_/schedules/schedule_1x_aitod.py',
    './_base_/default_runtime.py',
]
