"""Human pose estimation with HRNetV1 (paper Sec. 4.1): model, targets and loss, geometry,
decoding, COCO OKS AP and a COCO-format dataset. ``python -m hrnet_zoo.tasks.pose`` trains,
evaluates and draws predictions."""
from ..heatmap import (decode_heatmaps, dark_refine, flip_back, get_max_preds, heatmap_coords,
                     predict_heatmaps, quarter_offset, to_image_coords)
from .metric import COCO_OKS_SIGMAS, coco_keypoint_ap, keypoint_results
from .model import (POSE_VARIANTS, PoseHRNet, build_pose_model, convert_official_pose_state_dict,
                    load_official_pose_checkpoint)
from ..heatmap import JointsMSELoss, gaussian_heatmaps
from ..topdown import (COCO_FLIP_PAIRS, COCO_KEYPOINT_NAMES, COCO_SKELETON, affine_matrix, apply_affine,
                         box_to_center_scale, clip_box, flip_keypoints, warp_image)

__all__ = [
    'PoseHRNet', 'build_pose_model', 'POSE_VARIANTS', 'convert_official_pose_state_dict',
    'load_official_pose_checkpoint', 'JointsMSELoss', 'gaussian_heatmaps', 'get_max_preds',
    'quarter_offset', 'dark_refine', 'heatmap_coords', 'flip_back', 'predict_heatmaps',
    'to_image_coords', 'decode_heatmaps', 'coco_keypoint_ap', 'keypoint_results', 'COCO_OKS_SIGMAS',
    'COCO_FLIP_PAIRS', 'COCO_KEYPOINT_NAMES', 'COCO_SKELETON', 'affine_matrix', 'apply_affine',
    'box_to_center_scale', 'clip_box', 'flip_keypoints', 'warp_image',
]
