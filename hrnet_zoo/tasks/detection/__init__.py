"""Object detection with HRNetV2p (paper Sec. 5.3) on torchvision's detectors.
``python -m hrnet_zoo.tasks.detection train|eval|predict``."""
from .backbone import HRNetV2pBackbone, convert_official_detection_state_dict
from .datasets import CocoDetectionDataset, SyntheticBoxes, check_target, collate
from .metric import CocoEvaluator, evaluate_detector
from .models import (build_detector, fasterrcnn_hrnetv2p_w18, fasterrcnn_hrnetv2p_w32, fasterrcnn_hrnetv2p_w40,
                     fcos_hrnetv2p_w32, maskrcnn_hrnetv2p_w32, retinanet_hrnetv2p_w32)
