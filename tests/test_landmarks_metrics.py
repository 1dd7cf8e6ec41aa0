"""NME (inter-ocular / box), failure rate and AUC."""
from __future__ import annotations

import numpy as np
import pytest

from hrnet_zoo.tasks.landmarks.specs import FACE_DATASETS
from hrnet_zoo.tasks.landmarks.metrics import auc, failure_rate, landmark_metrics, nme, normalisers


def faces(n_landmarks, n=6, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(20, 200, size=(n, n_landmarks, 2))


@pytest.mark.parametrize('name', ['300w', 'wflw', 'cofw'])
def test_nme_of_ground_truth_is_zero_and_of_a_shift_is_shift_over_interocular(name):
    spec = FACE_DATASETS[name]
    gt = faces(spec.num_landmarks)
    assert landmark_metrics(gt, gt, spec)['nme'] == 0.0
    shift = np.array([3.0, 4.0])  # 5 px for every landmark
    a, b = spec.eye_corners
    expected = 5.0 / np.linalg.norm(gt[:, a] - gt[:, b], axis=1)
    assert np.allclose(nme(gt + shift, gt, normalisers(gt, spec)), expected)
    assert landmark_metrics(gt + shift, gt, spec)['nme'] == pytest.approx(expected.mean())


def test_aflw_is_normalised_by_box_size():
    gt = faces(19)
    boxes = np.array([100.0, 120, 80, 90, 150, 110])
    assert np.allclose(nme(gt + [0, 2.0], gt, normalisers(gt, FACE_DATASETS['aflw'], boxes)), 2.0 / boxes)
    with pytest.raises(ValueError, match='box_sizes'):
        normalisers(gt, FACE_DATASETS['aflw'])


def test_failure_rate_and_auc():
    e = np.array([0.0, 0.05, 0.08, 0.12, 0.3])
    assert failure_rate(e, 0.1) == pytest.approx(2 / 5)
    # AUC of the cumulative error curve up to 0.1, checked against numerical integration
    xs = np.linspace(0, 0.1, 100001)
    ced = (e[None, :] <= xs[:, None]).mean(1)
    assert auc(e, 0.1) == pytest.approx(np.trapezoid(ced, xs) / 0.1, abs=1e-4)
    assert auc(np.zeros(3)) == pytest.approx(1.0) and auc(np.full(3, 0.2)) == 0.0


def test_shape_mismatch_and_degenerate_normaliser():
    gt = faces(68)
    with pytest.raises(ValueError, match='differ in shape'):
        nme(gt[:, :67], gt, np.ones(len(gt)))
    with pytest.raises(ValueError, match='<= 0'):
        nme(gt, gt, np.zeros(len(gt)))
