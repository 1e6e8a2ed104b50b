"""`seglens train`: fine-tune SegFormer (transformers, torch) or the VGG16-UNet baseline (Keras).

Modules: `cli` (arguments, `main`), `data` (Cityscapes-layout samples mapped to the training scheme,
cached at the training size, batched), `augment` (image/label-consistent augmentations in numpy/PIL),
`loop` (LR schedule, early stopping, validation mIoU with app.core.domain.metrics, CSV/JSON log, resume state,
the epoch loop), `torch_trainer` (SegFormer) and `keras_trainer` (VGG16-UNet). torch and TensorFlow are
imported only inside the trainer modules, when a training run starts.
"""

from __future__ import annotations
