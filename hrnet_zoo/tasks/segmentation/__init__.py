"""Semantic segmentation with HRNetV2 (paper Sec. 5.2): model, loss, metric, transforms,
inference and datasets. ``python -m hrnet_zoo.tasks.segmentation train|eval|predict``."""
from .model import (SEG_MODELS, HRNetSegmentation, SegModelSpec, build_segmentation_model,
                    convert_official_state_dict, load_backbone_weights, load_official_checkpoint)
from .ocr import HRNetOCRSegmentation
