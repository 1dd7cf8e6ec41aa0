"""The four face-alignment benchmarks as data: landmark count, left/right flip pairs (0-based) and
the NME normaliser, from the official HRNet-Facial-Landmark-Detection code
(``lib/utils/transforms.py`` MATCHED_PARTS; ``lib/core/evaluation.py`` compute_nme):
inter-ocular distance (outer eye corners) for 300W (36, 45), WFLW (60, 72) and COFW (8, 9); the
face box size for AFLW.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional, Tuple


@dataclass(frozen=True)
class FaceDatasetSpec:
    name: str
    num_landmarks: int
    flip_pairs: Tuple[Tuple[int, int], ...]
    eye_corners: Optional[Tuple[int, int]]   # None: normalise by the box size (AFLW)


def _zero_based(pairs):
    return tuple((a - 1, b - 1) for a, b in pairs)


FACE_DATASETS: Dict[str, FaceDatasetSpec] = {
    '300w': FaceDatasetSpec('300w', 68, _zero_based((
        (1, 17), (2, 16), (3, 15), (4, 14), (5, 13), (6, 12), (7, 11), (8, 10), (18, 27), (19, 26),
        (20, 25), (21, 24), (22, 23), (32, 36), (33, 35), (37, 46), (38, 45), (39, 44), (40, 43),
        (41, 48), (42, 47), (49, 55), (50, 54), (51, 53), (62, 64), (61, 65), (68, 66), (59, 57),
        (60, 56))), (36, 45)),
    'aflw': FaceDatasetSpec('aflw', 19, _zero_based((
        (1, 6), (2, 5), (3, 4), (7, 12), (8, 11), (9, 10), (13, 15), (16, 18))), None),
    'cofw': FaceDatasetSpec('cofw', 29, _zero_based((
        (1, 2), (5, 7), (3, 4), (6, 8), (9, 10), (11, 12), (13, 15), (17, 18), (14, 16), (19, 20),
        (23, 24))), (8, 9)),
    'wflw': FaceDatasetSpec('wflw', 98, tuple(
        [(i, 32 - i) for i in range(16)]
        + [(33, 46), (34, 45), (35, 44), (36, 43), (37, 42), (38, 50), (39, 49), (40, 48), (41, 47),
           (60, 72), (61, 71), (62, 70), (63, 69), (64, 68), (65, 75), (66, 74), (67, 73),
           (55, 59), (56, 58), (76, 82), (77, 81), (78, 80), (87, 83), (86, 84),
           (88, 92), (89, 91), (95, 93), (96, 97)]), (60, 72)),
}


def spec_for(num_landmarks: int) -> Optional[FaceDatasetSpec]:
    """The benchmark with this many landmarks, if any."""
    return next((s for s in FACE_DATASETS.values() if s.num_landmarks == num_landmarks), None)
