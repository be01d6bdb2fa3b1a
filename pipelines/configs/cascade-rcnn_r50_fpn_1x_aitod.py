# Table 3 (and Tables 1, 2): Cascade R-CNN R-50 + FPN on AI-TOD, the authors' published setting.
_base_ = [
    './_base_/models/cascade-rcnn_r50_fpn_aitod.py',
    './_base_/datasets/aitod_detection.py',
    './_base_/schedules/schedule_1x_aitod.py',
    './_base_/default_runtime.py',
]
