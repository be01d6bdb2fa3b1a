# Table 3: Faster R-CNN R-101 + FPN on AI-TOD; only the backbone depth differs from the R-50 config.
_base_ = './faster-rcnn_r50_fpn_1x_aitod.py'
model = dict(backbone=dict(depth=101))
