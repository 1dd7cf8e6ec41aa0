"""A small HRNetV2 landmark model really trained through the shared engine on synthetic faces."""
from __future__ import annotations

import pytest
import torch

from hrnet_zoo.tasks.landmarks.data import FaceLandmarks
from hrnet_zoo.tasks.landmarks.evaluate import evaluate_landmarks
from hrnet_zoo.tasks.landmarks.specs import FaceDatasetSpec, build_face_model
from hrnet_zoo.tasks.landmarks.training import fit_landmarks
from hrnet_zoo.tasks.pose.synthetic import write_synthetic_faces
from hrnet_zoo.train.engine import TrainConfig
from hrnet_zoo.train.recipes import load_recipe

SPEC = FaceDatasetSpec('toy', 5, (), None)   # 5 colour-coded landmarks, box-size normaliser (as AFLW)
STEPS = 150


def faces(root, n, seed):
    csv_file, images = write_synthetic_faces(str(root), n, num_landmarks=5, with_box_size=True, radius=2.5, seed=seed)
    return csv_file, images


def test_small_landmark_model_trains_to_low_nme(tmp_path):
    """W18-small trunk + V2 head, 64x64 crops, 150 Adam steps of 8 faces, BatchNorm momentum 0.1
    (the official 0.01 needs long schedules). Measured NME (box-normalised) on 16 held-out faces:
    untrained 0.574, trained 0.038 after 150 steps (FR@0.1 0.062, AUC@0.1 0.632; OMP_NUM_THREADS=1)."""
    train_set = FaceLandmarks(*faces(tmp_path / 'train', 128, 1), spec=SPEC, input_size=(64, 64), train=True)
    val_set = FaceLandmarks(*faces(tmp_path / 'val', 16, 2), spec=SPEC, input_size=(64, 64))
    torch.manual_seed(0)
    model = build_face_model(num_landmarks=5, arch='hrnet_w18_small', bn_momentum=0.1)
    untrained = evaluate_landmarks(model, val_set)['nme']
    cfg = TrainConfig(out_dir=str(tmp_path / 'run'), epochs=100, max_steps=STEPS, batch_size=8, optimizer='adam',
                      lr=2e-3, weight_decay=0.0, sched='constant', progress=False, device='cpu',
                      handle_signals=False, best_metric='nme', best_mode='min', log_every=50)
    metrics = fit_landmarks(model, train_set, cfg, val_set)['metrics']
    print(f"synthetic faces NME: untrained {untrained:.3f}, trained {metrics['nme']:.3f}, "
          f"FR@0.1 {metrics['fr']:.3f}, AUC@0.1 {metrics['auc']:.3f}")
    assert untrained > 0.3
    assert metrics['nme'] < 0.1 and metrics['auc'] > 0.2


@pytest.mark.parametrize('dataset,lr,sigma', [('wflw', 1e-4, 1.5), ('300w', 1e-4, 1.0), ('aflw', 2e-4, 1.5),
                                              ('cofw', 1e-4, 1.5)])
def test_official_recipes(dataset, lr, sigma):
    """experiments/<dataset>/face_alignment_<dataset>_hrnet_w18.yaml as recipe files."""
    from hrnet_zoo import get_model_spec
    from hrnet_zoo.tasks.landmarks.__main__ import COMMAND
    recipe_for = COMMAND.recipe_for  # the shared CLI's choice: the recipe of the model's dataset
    recipe = load_recipe(f'landmarks_{dataset}')
    cfg = recipe.train_config()
    assert recipe.task == 'landmarks' and recipe_for(f'hrnet_w18_face_{dataset}') == recipe.name
    assert (cfg.optimizer, cfg.batch_size, cfg.epochs, cfg.milestones, cfg.gamma, cfg.weight_decay) == (
        'adam', 16, 60, (30, 50), 0.1, 0.0)
    assert cfg.lr == pytest.approx(lr) and recipe.train_config(world_size=4, batch_size=16).lr == pytest.approx(4 * lr)
    assert (cfg.best_metric, cfg.best_mode) == ('nme', 'min')
    assert recipe.data['sigma'] == sigma and recipe.data['dataset'] == dataset
    assert recipe.augment == {'scale_factor': 0.25, 'rotation_factor': 30.0, 'rotation_prob': 0.6, 'flip_prob': 0.5}
    assert recipe.eval == {'batch_size': 8, 'flip_test': False, 'codec': None}  # the model's codec: face
    assert recipe.reproduces['nme'] == get_model_spec(f'hrnet_w18_face_{dataset}').metrics['nme']
