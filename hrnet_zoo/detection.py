"""Public path for the HRNetV2p detectors: ``hrnet_zoo.detection.fasterrcnn_hrnetv2p_w32(...)``
(a thin re-export of :mod:`hrnet_zoo.tasks.detection`)."""
from .tasks.detection import (CocoEvaluator, HRNetV2pBackbone, build_detector, fasterrcnn_hrnetv2p_w18,
                              fasterrcnn_hrnetv2p_w32, fasterrcnn_hrnetv2p_w40, fcos_hrnetv2p_w32,
                              maskrcnn_hrnetv2p_w32, retinanet_hrnetv2p_w32)

__all__ = ['HRNetV2pBackbone', 'CocoEvaluator', 'build_detector', 'fasterrcnn_hrnetv2p_w18', 'fasterrcnn_hrnetv2p_w32',
           'fasterrcnn_hrnetv2p_w40', 'maskrcnn_hrnetv2p_w32', 'retinanet_hrnetv2p_w32', 'fcos_hrnetv2p_w32']
