# Table 3: DetectoRS = Cascade R-CNN with a ResNet-50 using Switchable Atrous Convolution (SAC) and the
# Recursive Feature Pyramid (RFP, two steps) on AI-TOD. RFP is DetectoRS' FPN; the HS-FPN row of the
# paper ("R-50 w/SAC + HS-FPN") replaces RFP with the HS-FPN, which the runner does (see
# pipelines.detectors.swap_neck). The unrolled RFP backbone gets the same pretrained file as the
# backbone (the runner fills both), never a download.
_base_ = './cascade-rcnn_r50_fpn_1x_aitod.py'
model = dict(
    backbone=dict(
        type='DetectoRS_ResNet',
        conv_cfg=dict(type='ConvAWS'),
        sac=dict(type='SAC', use_deform=True),
        stage_with_sac=(False, True, True, True),
        output_img=True),
    neck=dict(
        type='RFP',
        rfp_steps=2,
        aspp_out_channels=64,
        aspp_dilations=(1, 3, 6, 1),
        rfp_backbone=dict(
            rfp_inplanes=256,
            type='DetectoRS_ResNet',
            depth=50,
            num_stages=4,
            out_indices=(0, 1, 2, 3),
            frozen_stages=1,
            norm_cfg=dict(type='BN', requires_grad=True),
            norm_eval=True,
            conv_cfg=dict(type='ConvAWS'),
            sac=dict(type='SAC', use_deform=True),
            stage_with_sac=(False, True, True, True),
            pretrained=None,
            style='pytorch')))
