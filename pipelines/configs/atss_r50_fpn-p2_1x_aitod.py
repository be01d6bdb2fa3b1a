# Table 3 baseline row: ATSS R-50 + FPN on AI-TOD; one-stage (lr 0.001). Like RetinaNet* it uses P2-P6 so
# that the HS-FPN (which needs C2-C5) can replace the FPN; ATSS keeps its single square anchor per
# location, with the AI-TOD base scale 2.
_base_ = [
    './_base_/models/retinanet_r50_fpn-p2_aitod.py',
    './_base_/datasets/aitod_detection.py',
    './_base_/schedules/schedule_1x_aitod.py',
    './_base_/default_runtime.py',
]
model = dict(
    type='ATSS',
    neck=dict(add_extra_convs='on_output'),
    bbox_head=dict(
        _delete_=True,
        type='ATSSHead',
        num_classes=8,
        in_channels=256,
        stacked_convs=4,
        feat_channels=256,
        anchor_generator=dict(
            type='AnchorGenerator',
            ratios=[1.0],
            octave_base_scale=2,
            scales_per_octave=1,
            strides=[4, 8, 16, 32, 64]),
        bbox_coder=dict(
            type='DeltaXYWHBBoxCoder',
            target_means=[.0, .0, .0, .0],
            target_stds=[0.1, 0.1, 0.2, 0.2]),
        loss_cls=dict(type='FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25, loss_weight=1.0),
        loss_bbox=dict(type='GIoULoss', loss_weight=2.0),
        loss_centerness=dict(type='CrossEntropyLoss', use_sigmoid=True, loss_weight=1.0)),
    train_cfg=dict(
        _delete_=True,
        assigner=dict(type='ATSSAssigner', topk=9),
        allowed_border=-1,
        pos_weight=-1,
        debug=False),
    test_cfg=dict(nms=dict(type='nms', iou_threshold=0.6)))
optim_wrapper = dict(optimizer=dict(lr=0.001))
