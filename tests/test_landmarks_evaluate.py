"""predict_face: one face in an image, cropped as the dataset crops it, decoded back to image pixels."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from hrnet_zoo.tasks.landmarks.data import FaceLandmarks
from hrnet_zoo.tasks.landmarks.evaluate import predict_face
from hrnet_zoo.tasks.pose.synthetic import write_synthetic_faces
from hrnet_zoo.tasks.topdown import load_image


class TargetModel(nn.Module):
    """Predicts the given heatmaps whatever the input (a stand-in for a perfect model)."""

    def __init__(self, heatmaps: torch.Tensor, input_size):
        super().__init__()
        self.register_buffer('heatmaps', heatmaps)
        self.weight = nn.Parameter(torch.zeros(()))
        self.input_size, self.flip_pairs = tuple(input_size), ()

    def forward(self, x):
        return self.heatmaps.expand(x.shape[0], -1, -1, -1)


def test_predict_face_in_the_csv_box_recovers_the_landmarks(tmp_path):
    csv_file, images = write_synthetic_faces(str(tmp_path), num_images=2, num_landmarks=68)
    ds = FaceLandmarks(csv_file, images, dataset='300w', input_size=(128, 128))
    for i, s in enumerate(ds.samples):
        size = s['scale'] * 200  # the CSV's face size: a square box of that side around its centre
        box = [s['center'][0] - size / 2, s['center'][1] - size / 2, size, size]
        pts, scores = predict_face(TargetModel(ds[i]['target'][None], (128, 128)),
                                   load_image(f'{images}/{s["name"]}'), box)
        px_per_input = s['scale'] * 1.25 * 200 / 128
        assert pts.shape == (68, 2) and scores.shape == (68,) and (scores > 0.5).all()
        assert np.abs(pts - s['points']).max() <= px_per_input + 1e-4
