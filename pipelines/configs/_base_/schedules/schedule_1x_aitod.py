# The paper's schedule (section 4.2): SGD, momentum 0.9, weight decay 1e-4, 12 epochs, lr divided by 10
# after epochs 8 and 11, linear warm-up over 500 iterations from 0.001 x lr. lr 0.005 is the two-stage
# value at 2 GPUs x 1 image; one-stage detectors override it with 0.001.
max_epochs = 12
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=max_epochs)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=500),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[8, 11], gamma=0.1)
]

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=0.005, momentum=0.9, weight_decay=0.0001))

# The paper trains with 2 GPUs x 1 image; the runner records the effective batch and scales lr only
# when asked (--auto-scale-lr).
auto_scale_lr = dict(enable=False, base_batch_size=2)
