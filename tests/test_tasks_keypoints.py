"""Keypoint sets as data: every packaged set is well formed, agrees with mmpose's metainfo on
spot-checked facts and with the project's own COCO / face constants."""
from __future__ import annotations

import re

import numpy as np
import pytest

from hrnet_zoo.tasks.keypoints import (KEYPOINT_SETS, KeypointSet, KeypointSetError, get_keypoint_set,
                                       list_keypoint_sets, load_keypoint_set)

NAMES = list_keypoint_sets()
# (name, keypoints) of the 27 sets of issue 19 (COCO+AIC "combine": COCO 17 + head_top, neck) and ExLPose,
# whose mmpose checkpoint is catalogued too (CrowdPose's 14 keypoints, head for top_head)
SIZES = {'coco': 17, 'coco_aic': 19, 'mpii': 16, 'aic': 14, 'crowdpose': 14, 'posetrack18': 17, 'h36m': 17,
         'coco_wholebody': 133, 'halpe': 136, 'deepfashion_upper': 6, 'deepfashion_lower': 4,
         'deepfashion_full': 8, 'wflw': 98, '300w': 68, 'aflw': 19, 'cofw': 29, 'coco_wholebody_face': 68,
         'onehand10k': 21, 'rhd2d': 21, 'panoptic_hand2d': 21, 'coco_wholebody_hand': 21, 'ap10k': 17,
         'animalpose': 20, 'macaque': 17, 'horse10': 22, 'atrw': 15, 'animal_kingdom': 23, 'exlpose': 14}


def test_every_set_of_the_issue_is_packaged_with_its_size():
    assert {n: get_keypoint_set(n).num_keypoints for n in NAMES} == SIZES
    assert set(KEYPOINT_SETS) == set(SIZES)
    assert all(key == s.name for key, s in KEYPOINT_SETS.items())  # data/<name>.yaml holds set <name>


@pytest.mark.parametrize('name', NAMES)
def test_set_is_well_formed(name):
    s = get_keypoint_set(name)
    k = s.num_keypoints
    assert len(set(s.keypoint_names)) == k
    flat = [v for p in s.flip_pairs for v in p]
    assert len(flat) == len(set(flat)) and all(0 <= v < k for v in flat)
    assert all(i < j for i, j in s.flip_pairs)
    flip = np.array(s.flip_indices)
    assert np.array_equal(flip[flip], np.arange(k))  # flipping twice is the identity
    assert s.sigmas is None or (len(s.sigmas) == k and all(v > 0 for v in s.sigmas))
    assert len(s.joint_weights) == k
    assert all(0 <= v < k for link in s.skeleton for v in link)
    assert set(s.upper_body_ids).isdisjoint(s.lower_body_ids)
    assert s.metrics and s.source.startswith('open-mmlab/mmpose@759b39c configs/_base_/datasets/')
    assert s.citation and s.metric_source.startswith('open-mmlab/mmpose@')


def _mirror(name):
    """'left_eye' <-> 'right_eye', 'L_Eye' <-> 'R_Eye', 'Eye_Left' <-> 'Eye_Right'."""
    swaps = {'left': 'right', 'Left': 'Right', 'L_': 'R_'}
    swaps.update({v: k for k, v in swaps.items()})
    return re.sub('|'.join(swaps), lambda m: swaps[m.group(0)], name)


@pytest.mark.parametrize('name', ['coco', 'mpii', 'aic', 'crowdpose', 'posetrack18', 'coco_wholebody', 'halpe',
                                  'ap10k', 'animalpose', 'macaque', 'atrw', 'animal_kingdom'])
def test_flip_pairs_mirror_left_and_right_names(name):
    s = get_keypoint_set(name)
    named = [(s.keypoint_names[i], s.keypoint_names[j]) for i, j in s.flip_pairs]
    sided = [(a, b) for a, b in named if _mirror(a) != a]  # not 'face-0' / 'face-16'
    assert len(sided) >= 6
    assert all(_mirror(a) == b for a, b in sided), [(a, b) for a, b in sided if _mirror(a) != b]


def test_coco_agrees_with_the_project_constants():
    from hrnet_zoo.tasks.pose.metrics import COCO_OKS_SIGMAS
    from hrnet_zoo.tasks.pose.specs import (COCO_FLIP_PAIRS, COCO_JOINT_WEIGHTS, COCO_KEYPOINT_NAMES, COCO_SKELETON,
                                            COCO_UPPER_BODY_IDS)
    s = get_keypoint_set('coco')
    assert s.keypoint_names == COCO_KEYPOINT_NAMES
    assert s.flip_pairs == COCO_FLIP_PAIRS  # (1, 2), (3, 4), ..., (15, 16)
    assert s.skeleton == COCO_SKELETON
    assert s.upper_body_ids == COCO_UPPER_BODY_IDS and s.lower_body_ids == tuple(range(11, 17))
    assert s.joint_weights == COCO_JOINT_WEIGHTS
    assert np.allclose(s.sigmas, COCO_OKS_SIGMAS, rtol=0, atol=1e-12)  # 0.026 = .26 / 10, ...


@pytest.mark.parametrize('name', ['300w', 'wflw', 'cofw', 'aflw'])
def test_faces_agree_with_the_landmark_table(name):
    from hrnet_zoo.tasks.landmarks.specs import FACE_DATASETS
    face, s = FACE_DATASETS[name], get_keypoint_set(name)
    assert s.num_keypoints == face.num_landmarks
    assert {frozenset(p) for p in s.flip_pairs} == {frozenset(p) for p in face.flip_pairs}
    (nme,) = s.metrics
    assert nme.metric == 'NME' and nme.norm_keypoints == face.eye_corners  # None for AFLW: box size
    assert nme.normalizer == ('bbox_size' if face.eye_corners is None else 'keypoints')


def test_spot_checks_against_mmpose_metainfo():
    # counts and values read from mmpose's configs/_base_/datasets/*.py @ 759b39c
    pairs = {'wflw': 44, '300w': 29, 'cofw': 11, 'aflw': 8, 'coco_wholebody_face': 29, 'mpii': 6, 'aic': 6,
             'crowdpose': 6, 'coco_wholebody': 61, 'halpe': 61, 'animalpose': 8, 'animal_kingdom': 8,
             'onehand10k': 0, 'horse10': 0, 'deepfashion_full': 4}
    assert {n: len(get_keypoint_set(n).flip_pairs) for n in pairs} == pairs
    mpii = get_keypoint_set('mpii')
    assert mpii.keypoint_names[:2] == ('right_ankle', 'right_knee')
    assert mpii.flip_pairs[0] == (0, 5) and mpii.index('head_top') == 9  # r/l ankle; 9 is Head in the table
    assert mpii.sigmas[:3] == (0.089, 0.083, 0.107)
    assert get_keypoint_set('wflw').flip_pairs[0] == (0, 32)  # the jaw line's ends
    assert get_keypoint_set('300w').flip_pairs[0] == (0, 16)
    assert get_keypoint_set('crowdpose').keypoint_names[-2:] == ('top_head', 'neck')
    assert get_keypoint_set('aic').sigmas[-2:] == (0.01291456, 0.01236173)
    hand = get_keypoint_set('coco_wholebody_hand')
    assert hand.keypoint_names[0] == 'wrist' and hand.sigmas[0] == 0.029
    wb = get_keypoint_set('coco_wholebody')
    assert wb.keypoint_names[17] == 'left_big_toe' and wb.sigmas[:17] == get_keypoint_set('coco').sigmas
    assert get_keypoint_set('coco_aic').keypoint_names[17:] == ('head_top', 'neck')
    assert get_keypoint_set('horse10').keypoint_names[:2] == ('Nose', 'Eye')
    assert get_keypoint_set('deepfashion_upper').keypoint_names == (
        'left collar', 'right collar', 'left sleeve', 'right sleeve', 'left hem', 'right hem')


def test_metrics_as_the_configs_evaluate():
    def first(name):
        return get_keypoint_set(name).metrics[0]
    assert first('mpii').metric == 'PCKh' and first('mpii').threshold == 0.5 and first('mpii').normalizer == 'head'
    assert [m.metric for m in get_keypoint_set('onehand10k').metrics] == ['PCK', 'AUC', 'EPE']
    auc = get_keypoint_set('rhd2d').metrics[1]
    assert (auc.norm_factor, auc.num_thresholds) == (30.0, 20)
    assert first('animal_kingdom').threshold == 0.05
    assert first('horse10').norm_keypoints == (0, 1) and first('horse10').threshold == 0.3
    assert first('crowdpose').normalizer == 'bbox_area'
    assert first('coco_aic').keypoint_indices == tuple(range(17))
    assert first('coco_wholebody_face').norm_keypoints == (36, 45)
    assert {n for n in NAMES if first(n).metric == 'AP'} == {
        'coco', 'coco_aic', 'aic', 'crowdpose', 'coco_wholebody', 'halpe', 'ap10k', 'animalpose', 'macaque', 'atrw',
        'exlpose'}


def test_lookup_by_alias_and_errors():
    assert get_keypoint_set('COCO-WholeBody-Hand').name == 'coco_wholebody_hand'
    assert get_keypoint_set('ak') is get_keypoint_set('Animal Kingdom') is get_keypoint_set('animal_kingdom')
    assert get_keypoint_set('rhd').name == 'rhd2d'
    assert list_keypoint_sets('hand') == ['coco_wholebody_hand', 'onehand10k', 'panoptic_hand2d', 'rhd2d']
    with pytest.raises(KeypointSetError, match='packaged sets: 300w'):
        get_keypoint_set('cats')
    with pytest.raises(KeypointSetError, match='no keypoint'):
        get_keypoint_set('coco').index('tail')
    with pytest.raises(KeypointSetError, match='groups'):
        list_keypoint_sets('plants')


def test_load_own_set_and_its_checks(tmp_path):
    raw = {'name': 'tri', 'keypoint_names': ['a', 'l', 'r'], 'flip_pairs': [[1, 2]], 'skeleton': [[0, 1], [0, 2]],
           'sigmas': [0.1, 0.2, 0.2], 'metrics': [{'metric': 'PCK', 'threshold': 0.2, 'normalizer': 'bbox'}]}
    s = load_keypoint_set(raw)
    assert isinstance(s, KeypointSet) and s.flip_indices == (0, 2, 1) and s.joint_weights == (1.0,) * 3
    path = tmp_path / 'tri.yaml'
    path.write_text('name: tri\nkeypoint_names: [a, l, r]\nflip_pairs: [[1, 2]]\n')
    assert load_keypoint_set(path).flip_pairs == ((1, 2),)
    for bad, match in (({'flip_pairs': [[1, 3]]}, 'indices in 0..2'), ({'flip_pairs': [[1, 1]]}, 'itself'),
                       ({'flip_pairs': [[0, 1], [1, 2]]}, 'two flip pairs'), ({'sigmas': [0.1]}, '1 sigmas for 3'),
                       ({'keypoint_names': ['a', 'a', 'r']}, 'unique'),
                       ({'metrics': [{'metric': 'PCK', 'normalizer': 'torso'}]}, 'normalizer')):
        with pytest.raises(KeypointSetError, match=match):
            load_keypoint_set({**raw, **bad})
    with pytest.raises(KeypointSetError, match='no keypoint-set file'):
        load_keypoint_set(tmp_path / 'missing.yaml')
