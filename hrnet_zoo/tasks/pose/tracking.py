"""People across video frames: a track id per person, keypoint smoothing, and boxes from keypoints
so that the person detector need not run on every frame.

Per frame, with ``predict`` (:func:`~hrnet_zoo.tasks.pose.evaluate.predict`) and a detector::

    schedule, tracker = DetectEvery(every=5), PoseTracker(smooth=True)
    for index, time, image in frames:
        boxes = schedule.person_boxes(index, tracker, image.shape[-2:],
                                      detect=lambda: detect_people(detector, image, 0.3))
        people = predict(model, image, boxes=boxes) if len(boxes) else []
        people = tracker.update(people, time)          # each dict gains 'track_id'

The rules, with their sources (mmpose 0.x ``mmpose/apis/inference_tracking.py``: ``get_track_id``,
``_track_by_iou``, ``_track_by_oks``; mmpose 0.x ``mmpose/apis/webcam/nodes/model_nodes/
pose_tracker_node.py``: ``PoseTrackerNode``; mmdeploy's RTMPose tracker ``csrc/mmdeploy/codebase/
mmpose/pose_tracker/``: ``pose_tracker.cpp``, ``utils.cpp``; mmpose 1.x ``Pose3DInferencer`` uses
the 0.x matching unchanged):

- **Box from keypoints** (:func:`box_from_keypoints`): the extent of the keypoints scoring at least
  ``kpt_thresh`` (0.3, mmpose 0.x ``kpt2bbox_cfg``), grown about its centre by ``scale`` (1.25,
  mmdeploy ``pose_bbox_scale``; mmpose 0.x uses 1.5), clipped to the image's pixel centres
  ``[0, W-1] x [0, H-1]``; None with fewer than ``min_keypoints`` such keypoints (default
  ``ceil(K/2)``, mmdeploy ``pose_min_keypoints=-1``; 9 of COCO's 17). The crop's own 1.25 padding
  (:func:`~hrnet_zoo.tasks.topdown.box_to_center_scale`) comes on top, as in both references.
- **Similarity**: box IoU of the ``bbox`` entries (``metric='iou'``) or OKS of the keypoints
  (``metric='oks'``, :func:`~hrnet_zoo.tasks.pose.nms.oks_iou`, area = ``bbox`` w x h, every
  keypoint counted, as ``_track_by_oks``). A pair matches when its similarity is **above**
  ``thresh`` (0.3, mmpose's ``tracking_thr`` for both metrics).
- **Greedy order**: the most similar (person, track) pair is taken first, then the next among
  those left (mmdeploy ``greedy_assignment``); ties go to the earlier person, then the earlier
  track. mmpose 0.x instead walks the people in input order and each takes its best remaining
  track; the two agree unless a later person is closer to a track than an earlier one is.
  Tracks seen in the previous frame are matched first, lost ones only with the people left
  (mmdeploy's two rounds, with one metric and threshold here).
- **New ids**: an unmatched person with at least ``min_keypoints`` (3, mmpose ``get_track_id``)
  keypoints scoring ``kpt_thresh`` or more starts a track with the next id (0, 1, 2, ...: never
  reused); one with fewer gets ``track_id = -1`` and no track (mmpose gives -1 too).
- **Lost tracks** are kept for ``max_missing`` frames without a match (10, mmdeploy
  ``track_max_missing``) and may be re-found with their id; ``max_missing=0`` is mmpose 0.x, which
  matches against the previous frame's people only.
- **Smoothing** (``smooth=True``): a :class:`OneEuroFilter` per track on the keypoint coordinates,
  new with the track; the tracks keep the raw keypoints for matching and boxes (mmpose 0.x smooths
  after ``get_track_id`` too).
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch
from torchvision.ops import box_convert, box_iou

from ..topdown import clip_box
from .evaluate import _boxes_array
from .metrics import COCO_OKS_SIGMAS
from .nms import oks_iou

__all__ = ['box_from_keypoints', 'OneEuroFilter', 'PoseTracker', 'DetectEvery']

METRICS = ('iou', 'oks')
# min_cutoff and d_cutoff: the paper's 1 Hz (Casiez et al. 2012, "Parameter tuning", which starts
# from beta = 0). beta (per px/s) was chosen on synthetic clips of COCO people (3 px noise at 30 fps):
# 0.1 cut the keypoint error by 39 % standing and 22 % moving where beta = 0 more than doubled it
# by lag. Lower min_cutoff for less jitter, raise beta for less lag.
ONE_EURO_DEFAULTS = {'min_cutoff': 1.0, 'beta': 0.1, 'd_cutoff': 1.0}


def box_from_keypoints(keypoints, keypoint_scores, image_size: Tuple[int, int], kpt_thresh: float = 0.3,
                       min_keypoints: Optional[int] = None, scale: float = 1.25) -> Optional[np.ndarray]:
    """The person box ``[x, y, w, h]`` (float64) for the next frame from this frame's keypoints.

    The keypoints scoring at least ``kpt_thresh`` span ``[x1, x2] x [y1, y2]``; the box is that
    extent times ``scale`` about its centre, clipped to ``image_size = (H, W)`` (pixel centres,
    :func:`~hrnet_zoo.tasks.topdown.clip_box`). E.g. keypoints spanning x 10..30, y 20..60 give the
    centre (20, 40) and 25 x 50 -> ``[7.5, 15, 25, 50]``. Returns None when fewer than
    ``min_keypoints`` (default ``ceil(K / 2)``) keypoints score ``kpt_thresh`` or more, or when
    the box has no area inside the image.
    """
    pts = np.asarray(keypoints, dtype=np.float64)
    conf = np.asarray(keypoint_scores, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] < 2 or conf.shape != (pts.shape[0],):
        raise ValueError(f'keypoints must be (K, 2) and keypoint_scores (K,), got {pts.shape} and {conf.shape}')
    need = math.ceil(len(conf) / 2) if min_keypoints is None else min_keypoints
    good = conf >= kpt_thresh
    if good.sum() < max(need, 1):
        return None
    lo, hi = pts[good, :2].min(0), pts[good, :2].max(0)
    center, size = (lo + hi) / 2, (hi - lo) * scale
    height, width = image_size
    box = clip_box([*(center - size / 2), *size], width, height)
    return None if box is None else np.asarray(box, dtype=np.float64)


class OneEuroFilter:
    """The 1-euro filter (Casiez, Roussel & Vogel, CHI 2012, Algorithm 1) on arrays, elementwise.

    A first-order low-pass filter whose cutoff rises with the signal's speed: per sample at time
    ``t`` (seconds), with ``Te = t - t_prev`` and ``alpha(fc) = 1 / (1 + tau / Te)``,
    ``tau = 1 / (2 pi fc)``:

    - ``dx = (x - x_hat_prev) / Te``, ``dx_hat = alpha(d_cutoff) dx + (1 - alpha(d_cutoff)) dx_hat_prev``
    - ``fc = min_cutoff + beta |dx_hat|``, ``x_hat = alpha(fc) x + (1 - alpha(fc)) x_hat_prev``.

    The first sample passes unchanged (``dx_hat = 0``). ``min_cutoff`` and ``d_cutoff`` are in Hz,
    ``beta`` in 1 / (signal unit): for pixels, 0.01 raises the cutoff by 1 Hz at 100 px/s. The
    derivative is taken against the previous *filtered* value (the paper's ``hatxprev``; mmpose
    0.x's ``OneEuro`` does the same). Times come from the frames, so a variable frame rate is
    filtered correctly; they must increase.
    """

    def __init__(self, min_cutoff: float = ONE_EURO_DEFAULTS['min_cutoff'],
                 beta: float = ONE_EURO_DEFAULTS['beta'], d_cutoff: float = ONE_EURO_DEFAULTS['d_cutoff']):
        if not (min_cutoff > 0 and d_cutoff > 0 and beta >= 0):
            raise ValueError(f'one-euro filter needs min_cutoff > 0, d_cutoff > 0 (Hz) and beta >= 0, '
                             f'got min_cutoff={min_cutoff}, beta={beta}, d_cutoff={d_cutoff}')
        self.min_cutoff, self.beta, self.d_cutoff = float(min_cutoff), float(beta), float(d_cutoff)
        self.reset()

    def reset(self) -> None:
        """Forget the past: the next sample passes unchanged."""
        self.x_hat: Optional[np.ndarray] = None
        self.dx_hat: Optional[np.ndarray] = None
        self.t_prev: Optional[float] = None

    @staticmethod
    def alpha(te: float, cutoff):
        """Smoothing factor ``1 / (1 + tau / Te)`` with ``tau = 1 / (2 pi cutoff)``."""
        return 1.0 / (1.0 + 1.0 / (2 * math.pi * np.asarray(cutoff, dtype=np.float64) * te))

    def __call__(self, x, t: float) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if self.x_hat is None:
            self.x_hat, self.dx_hat, self.t_prev = x.copy(), np.zeros_like(x), float(t)
            return x.copy()
        if x.shape != self.x_hat.shape:
            raise ValueError(f'one-euro filter got a signal of shape {x.shape} after {self.x_hat.shape}; '
                             'call reset() before changing the shape')
        te = float(t) - self.t_prev
        if not te > 0:
            raise ValueError(f'one-euro filter times must increase: got t={t} after t={self.t_prev} (seconds)')
        dx = (x - self.x_hat) / te
        a_d = self.alpha(te, self.d_cutoff)
        self.dx_hat = a_d * dx + (1 - a_d) * self.dx_hat
        a = self.alpha(te, self.min_cutoff + self.beta * np.abs(self.dx_hat))
        self.x_hat = a * x + (1 - a) * self.x_hat
        self.t_prev = float(t)
        return self.x_hat.copy()


@dataclass
class _Track:
    """One person's state: the last matched pose (raw), frames since, and its smoother."""
    track_id: int
    bbox: np.ndarray              # (4,) x, y, w, h
    keypoints: np.ndarray         # (K, 2) raw, not smoothed
    keypoint_scores: np.ndarray   # (K,)
    bbox_score: float
    missing: int = 0
    smoother: Optional[OneEuroFilter] = field(default=None, repr=False)


def _person_arrays(person: Mapping[str, Any], index: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    try:
        bbox = np.asarray(person['bbox'], dtype=np.float64)[:4]
        pts = np.asarray(person['keypoints'], dtype=np.float64)[:, :2]
        conf = np.asarray(person['keypoint_scores'], dtype=np.float64)
    except (KeyError, IndexError, TypeError, ValueError) as e:
        raise ValueError(f'person {index} must be a dict with bbox [x, y, w, h], keypoints (K, 2) and '
                         'keypoint_scores (K,) as hrnet_zoo.tasks.pose.predict returns '
                         f'({type(e).__name__}: {e})') from None
    if bbox.shape != (4,) or conf.shape != (len(pts),):
        raise ValueError(f'person {index}: bbox must have 4 numbers and keypoint_scores one per keypoint, '
                         f'got bbox {bbox.shape}, keypoints {pts.shape}, keypoint_scores {conf.shape}')
    return bbox, pts, conf


def _like(smoothed: np.ndarray, keypoints) -> np.ndarray:
    """Smoothed (K, 2) coordinates in the input's float dtype (float64 for integer input), with
    any further columns of the input (e.g. a score column of (K, 3)) kept."""
    src = np.asarray(keypoints)
    out = src.astype(src.dtype if np.issubdtype(src.dtype, np.floating) else np.float64, copy=True)
    out[:, :2] = smoothed
    return out


def _iou_xywh(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, M) IoU of [x, y, w, h] boxes (torchvision's ``box_iou``)."""
    xyxy = [box_convert(torch.as_tensor(v, dtype=torch.float64).reshape(-1, 4), 'xywh', 'xyxy') for v in (a, b)]
    return box_iou(*xyxy).numpy()


def _greedy_pairs(similarity: np.ndarray, thresh: float) -> List[Tuple[int, int]]:
    """(row, col) pairs, most similar first, each row and column once, similarity above ``thresh``."""
    pairs, rows, cols = [], set(), set()
    for flat in np.argsort(-similarity, axis=None, kind='stable'):
        r, c = divmod(int(flat), similarity.shape[1])
        if not similarity[r, c] > thresh:
            break
        if r not in rows and c not in cols:
            pairs.append((r, c))
            rows.add(r)
            cols.add(c)
    return pairs


class PoseTracker:
    """A track id per person across frames (rules and sources in the module docstring).

    Args:
        metric: ``'oks'`` (keypoint similarity, robust when people cross) or ``'iou'`` (boxes;
            mmpose's default; needs no sigmas).
        thresh: a person takes a track's id when their similarity is above it (0.3).
        max_missing: frames a track is kept without a match and may still be re-found (10).
        sigmas: (K,) OKS constants of the keypoint set; None: COCO's for 17 keypoints, else their
            mean for every keypoint (as :func:`~hrnet_zoo.tasks.pose.evaluate.select_people`).
        kpt_thresh, min_keypoints: a new track needs ``min_keypoints`` keypoints scoring at least
            ``kpt_thresh`` (0.3, 3).
        smooth: smooth each track's keypoints with a :class:`OneEuroFilter` built from
            ``one_euro`` (keys ``min_cutoff``, ``beta``, ``d_cutoff``; defaults
            :data:`ONE_EURO_DEFAULTS`).
        fps: the frame rate assumed when :meth:`update` gets no time (30).
    """

    def __init__(self, metric: str = 'oks', thresh: float = 0.3, max_missing: int = 10,
                 sigmas: Optional[Sequence[float]] = None, kpt_thresh: float = 0.3, min_keypoints: int = 3,
                 smooth: bool = False, one_euro: Optional[Mapping[str, float]] = None, fps: float = 30.0):
        if metric not in METRICS:
            raise ValueError(f'tracking metric must be one of {METRICS}, got {metric!r}')
        if max_missing < 0 or not fps > 0:
            raise ValueError(f'max_missing must be >= 0 and fps > 0, got {max_missing} and {fps}')
        self.metric, self.thresh, self.max_missing = metric, float(thresh), int(max_missing)
        self.sigmas = None if sigmas is None else np.asarray(sigmas, dtype=np.float64)
        self.kpt_thresh, self.min_keypoints = float(kpt_thresh), int(min_keypoints)
        self.one_euro = {**ONE_EURO_DEFAULTS, **(one_euro or {})} if smooth else None
        if self.one_euro is not None:
            OneEuroFilter(**self.one_euro)  # a bad parameter fails here, not on the first frame
        self.fps = float(fps)
        self.reset()

    def reset(self) -> None:
        """Forget every track; ids start again at 0."""
        self.tracks: List[_Track] = []
        self.next_id = 0
        self.time: Optional[float] = None
        self._warned = False

    @property
    def visible(self) -> List[_Track]:
        """The tracks matched in the last frame (their poses give the next frame's boxes)."""
        return [t for t in self.tracks if t.missing == 0]

    def _similarity(self, people, tracks: Sequence[_Track]) -> np.ndarray:
        if not people or not tracks:
            return np.zeros((len(people), len(tracks)))
        boxes = np.stack([t.bbox for t in tracks])
        if self.metric == 'iou':
            return _iou_xywh(np.stack([p[0] for p in people]), boxes)
        k = len(tracks[0].keypoints)
        sigmas = self.sigmas if self.sigmas is not None else (
            COCO_OKS_SIGMAS if k == len(COCO_OKS_SIGMAS) else np.full(k, COCO_OKS_SIGMAS.mean()))
        poses = np.stack([np.concatenate([t.keypoints, t.keypoint_scores[:, None]], 1) for t in tracks])
        areas = boxes[:, 2] * boxes[:, 3]
        return np.stack([oks_iou(np.concatenate([pts, conf[:, None]], 1), poses, box[2] * box[3], areas, sigmas)
                         for box, pts, conf in people])

    def _match(self, people) -> Dict[int, _Track]:
        """Person index -> matched track: previous-frame tracks first, then lost ones."""
        matched: Dict[int, _Track] = {}
        for group in (self.visible, [t for t in self.tracks if t.missing > 0]):
            rest = [i for i in range(len(people)) if i not in matched]
            sim = self._similarity([people[i] for i in rest], group)
            for r, c in _greedy_pairs(sim, self.thresh):
                matched[rest[r]] = group[c]
        return matched

    def _next_time(self, time: Optional[float]) -> float:
        """This frame's time: ``time``, or the last + 1 / ``fps`` when there is none or it is not
        after the last (a still-image folder at 0.0 throughout, repeated timestamps; warned once)."""
        if time is not None and (self.time is None or float(time) > self.time):
            return float(time)
        if time is not None and not self._warned:
            warnings.warn(f'pose tracking: frame time {time} s is not after the last one ({self.time} s); '
                          f'taking frames as 1/{self.fps:g} s apart where that happens', RuntimeWarning, stacklevel=3)
            self._warned = True
        return 0.0 if self.time is None else self.time + 1.0 / self.fps

    def update(self, people: Sequence[Mapping[str, Any]], time: Optional[float] = None) -> List[Dict[str, Any]]:
        """Give this frame's people their track ids.

        Args:
            people: person dicts as :func:`~hrnet_zoo.tasks.pose.evaluate.predict` returns them
                (``bbox`` [x, y, w, h], ``keypoints`` (K, 2), ``keypoint_scores`` (K,); optional
                ``bbox_score``), best first.
            time: the frame's time in seconds (None, or not after the last one: the last time +
                1 / ``fps``).

        Returns:
            New dicts, in the input's order, each with ``track_id`` (int; -1 for a new person
            with too few confident keypoints); with ``smooth``, ``keypoints`` are smoothed.
        """
        now = self._next_time(time)
        arrays = [_person_arrays(p, i) for i, p in enumerate(people)]
        ks = {len(a[1]) for a in arrays} | {len(t.keypoints) for t in self.tracks[:1]}
        if len(ks) > 1:
            raise ValueError(f'every person must have the same number of keypoints, got {sorted(ks)}; '
                             'use one PoseTracker per keypoint set (or reset() it)')
        self.time = now
        matched = self._match(arrays)
        out, seen = [], set()
        for i, (person, (bbox, pts, conf)) in enumerate(zip(people, arrays)):
            track = matched.get(i) or self._new_track(bbox, pts, conf)
            result = dict(person)
            result['track_id'] = -1 if track is None else track.track_id
            if track is not None:
                seen.add(track.track_id)
                track.bbox, track.keypoints, track.keypoint_scores = bbox, pts, conf
                track.bbox_score, track.missing = float(person.get('bbox_score', 1.0)), 0
                if track.smoother is not None:
                    result['keypoints'] = _like(track.smoother(pts, self.time), person['keypoints'])
            out.append(result)
        for t in self.tracks:
            t.missing += t.track_id not in seen
        self.tracks = [t for t in self.tracks if t.missing <= self.max_missing]
        return out

    def _new_track(self, bbox: np.ndarray, pts: np.ndarray, conf: np.ndarray) -> Optional[_Track]:
        """A track with the next id, or None with fewer than ``min_keypoints`` confident keypoints."""
        if (conf >= self.kpt_thresh).sum() < self.min_keypoints:
            return None
        smoother = None if self.one_euro is None else OneEuroFilter(**self.one_euro)
        track = _Track(self.next_id, bbox, pts, conf, 1.0, smoother=smoother)
        self.next_id += 1
        self.tracks.append(track)
        return track


class DetectEvery:
    """The "detect every N frames" loop logic, independent of I/O.

    On frame ``index`` the detector runs when ``index % every == 0`` (frame 0, N, 2N, ...), and,
    with ``redetect_when_empty``, whenever no tracked person yields a box (so a person entering
    an empty scene is found at once). The person boxes of a frame are each previous-frame track's
    :func:`box_from_keypoints` (score: the track's last ``bbox_score``, as mmpose 0.x's
    ``PoseTrackerNode`` keeps it), plus on detection frames the detector's boxes that do not
    duplicate a tracked one (IoU above ``dedup_iou``, 0.7: mmdeploy ``det_nms_thr``, where tracked
    boxes outrank detections). Duplicates that survive are removed after pose estimation by
    ``predict``'s OKS-NMS.
    """

    def __init__(self, every: int = 1, dedup_iou: float = 0.7, kpt_thresh: float = 0.3,
                 min_keypoints: Optional[int] = None, scale: float = 1.25, redetect_when_empty: bool = True):
        if int(every) != every or every < 1:
            raise ValueError(f'detect every N frames needs an integer N >= 1, got {every!r}')
        self.every, self.dedup_iou = int(every), float(dedup_iou)
        self.kpt_thresh, self.min_keypoints, self.scale = float(kpt_thresh), min_keypoints, float(scale)
        self.redetect_when_empty = redetect_when_empty

    def due(self, index: int) -> bool:
        """Whether frame ``index`` is a scheduled detection frame."""
        return index % self.every == 0

    def tracked_boxes(self, tracker: PoseTracker, image_size: Tuple[int, int]) -> np.ndarray:
        """(N, 5) [x, y, w, h, score]: each previous-frame track's box from its keypoints."""
        rows = []
        for t in tracker.visible:
            box = box_from_keypoints(t.keypoints, t.keypoint_scores, image_size, self.kpt_thresh,
                                     self.min_keypoints, self.scale)
            if box is not None:
                rows.append([*box, t.bbox_score])
        return np.asarray(rows, dtype=np.float64).reshape(-1, 5)

    def merge(self, tracked: np.ndarray, detected) -> np.ndarray:
        """Tracked boxes, then the detected boxes ((M, 4|5) or COCO detection dicts, as ``predict``
        takes them; no score: 1.0) whose IoU with every tracked box is at most ``dedup_iou``."""
        xywh, scores = _boxes_array(detected)
        det = np.concatenate([xywh, scores[:, None]], 1)
        if len(tracked) and len(det):
            det = det[~(_iou_xywh(det[:, :4], tracked[:, :4]) > self.dedup_iou).any(1)]
        return np.concatenate([np.asarray(tracked, dtype=np.float64).reshape(-1, 5), det])

    def person_boxes(self, index: int, tracker: PoseTracker, image_size: Tuple[int, int],
                     detect: Callable[[], Any]) -> np.ndarray:
        """The (N, 5) person boxes of frame ``index`` (``image_size`` (H, W)); ``detect()``
        returns the detector's (M, 4|5) boxes and is called only on detection frames."""
        tracked = self.tracked_boxes(tracker, image_size)
        if self.due(index) or (self.redetect_when_empty and not len(tracked)):
            return self.merge(tracked, detect())
        return tracked
