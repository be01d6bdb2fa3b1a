# Table 3: Faster R-CNN MobileNetV2 + FPN on AI-TOD. Outputs of MobileNetV2 stages 2, 3, 5 and the final
# 1x1 conv give the four inputs C2-C5 at strides 4-32 (24, 32, 96, 1280 channels) the HS-FPN needs.
_base_ = './faster-rcnn_r50_fpn_1x_aitod.py'
model = dict(
    backbone=dict(
        _delete_=True,
        type='MobileNetV2',
        out_indices=(1, 2, 4, 7),
        frozen_stages=1,
        norm_cfg=dict(type='BN', requires_grad=True),
        norm_eval=True,
        init_cfg=None),
    neck=dict(in_channels=[24, 32, 96, 1280]))
# mmdet's MobileNetV2 freezes its stem (frozen_stages) in train(), after the model is wrapped for several
# processes: DDP then waits for gradients the frozen parameters never get, unless told to look for them.
find_unused_parameters = True
