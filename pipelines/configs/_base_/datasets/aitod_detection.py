# AI-TOD v1 as released: COCO-format json + 800 x 800 images, 8 classes. The runner replaces data_root,
# the annotation files and the image folders with the resolved --data-root layout.
dataset_type = 'CocoDataset'
data_root = 'data/AI-TOD/'
metainfo = dict(
    classes=('airplane', 'bridge', 'storage-tank', 'ship', 'swimming-pool', 'vehicle', 'person',
             'wind-mill'))
backend_args = None
img_scale = (800, 800)

train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'))
]

train_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    batch_sampler=dict(type='AspectRatioBatchSampler'),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        metainfo=metainfo,
        ann_file='annotations/aitod_trainval_v1.json',
        data_prefix=dict(img='trainval/images/'),
        filter_cfg=dict(filter_empty_gt=True, min_size=0),
        pipeline=train_pipeline,
        backend_args=backend_args))
val_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        metainfo=metainfo,
        ann_file='annotations/aitod_test_v1.json',
        data_prefix=dict(img='test/images/'),
        test_mode=True,
        pipeline=test_pipeline,
        backend_args=backend_args))
test_dataloader = val_dataloader

# The AI-TOD protocol: COCO AP with very tiny / tiny / small / medium ranges, maxDets up to 1500.
val_evaluator = dict(
    type='AITODMetric',
    ann_file=data_root + 'annotations/aitod_test_v1.json',
    classwise=False)
test_evaluator = val_evaluator
