"""People across frames (hrnet_zoo.tasks.pose.tracking): boxes from keypoints, track ids, the
one-euro filter and the detect-every-N logic, on synthetic stick figures with worked numbers."""
from __future__ import annotations

import math

import numpy as np
import pytest

from hrnet_zoo.tasks.pose.tracking import DetectEvery, OneEuroFilter, PoseTracker, box_from_keypoints

# A COCO-17 stick figure about its centre (x right, y down), arms down: extent x -25..25 (the
# wrists), y -74..80 (eyes to ankles).
FIGURE = np.array([[0, -70], [4, -74], [-4, -74], [8, -72], [-8, -72], [15, -50], [-15, -50],
                   [22, -25], [-22, -25], [25, 0], [-25, 0], [10, 0], [-10, 0], [12, 40], [-12, 40],
                   [12, 80], [-12, 80]], dtype=np.float64)
ARMS_UP = FIGURE.copy()
ARMS_UP[7:11] = [[25, -75], [-25, -75], [28, -100], [-28, -100]]   # elbows and wrists raised
FPS = 30.0


def person(cx, cy, figure=FIGURE, score=0.9, scores=None):
    """A person dict as predict returns it: keypoints at (cx, cy), box = keypoint extent + 10 px."""
    pts = figure + [cx, cy]
    lo, hi = pts.min(0) - 10, pts.max(0) + 10
    conf = np.full(len(pts), score) if scores is None else np.asarray(scores, dtype=np.float64)
    return {'bbox': [*lo, *(hi - lo)], 'bbox_score': 0.8, 'keypoints': pts.astype(np.float32),
            'keypoint_scores': conf, 'score': float(conf.mean())}


def ids_of(out):
    return [p['track_id'] for p in out]


# ---------------------------------------------------------------- boxes from keypoints
def test_box_from_keypoints_worked_example():
    # confident keypoints span x 10..30, y 20..60: centre (20, 40), 20 x 40 -> x 1.25 = 25 x 50,
    # so [20 - 12.5, 40 - 25, 25, 50] = [7.5, 15, 25, 50]; the 0.1-scored point at (500, 500) is ignored
    pts = [[10, 20], [30, 20], [10, 60], [30, 60], [500, 500]]
    box = box_from_keypoints(pts, [0.9, 0.9, 0.3, 0.9, 0.1], image_size=(480, 640))
    np.testing.assert_allclose(box, [7.5, 15, 25, 50])
    # scale 1.5 (mmpose 0.x PoseTrackerNode): 30 x 60 about (20, 40) -> [5, 10, 30, 60]
    box = box_from_keypoints(pts, [0.9] * 4 + [0.1], (480, 640), scale=1.5)
    np.testing.assert_allclose(box, [5, 10, 30, 60])


def test_box_from_keypoints_is_clipped_to_the_image():
    # the same box in an image 50 high, 40 wide: y 15..65 is cut at the last pixel centre 49
    pts = [[10, 20], [30, 20], [10, 60], [30, 60]]
    np.testing.assert_allclose(box_from_keypoints(pts, [1.0] * 4, (50, 40)), [7.5, 15, 25, 34])
    assert box_from_keypoints(np.add(pts, 1000), [1.0] * 4, (50, 40)) is None   # wholly outside


def test_box_from_keypoints_needs_enough_confident_keypoints():
    pts = [[10, 20], [30, 20], [10, 60], [30, 60], [20, 40]]
    # default min_keypoints = ceil(5 / 2) = 3; scores at the threshold (0.3) count
    assert box_from_keypoints(pts, [0.9, 0.3, 0.29, 0.1, 0.0], (480, 640)) is None
    assert box_from_keypoints(pts, [0.9, 0.3, 0.3, 0.1, 0.0], (480, 640)) is not None
    assert box_from_keypoints(pts, [0.9, 0.1, 0.1, 0.3, 0.0], (480, 640), min_keypoints=2) is not None
    # two keypoints on one row span no height: no box
    assert box_from_keypoints(pts, [0.9, 0.3, 0.1, 0.1, 0.0], (480, 640), min_keypoints=2) is None
    with pytest.raises(ValueError, match='keypoint_scores'):
        box_from_keypoints(pts, [0.9] * 4, (480, 640))


# ---------------------------------------------------------------- track ids
@pytest.mark.parametrize('metric', ['oks', 'iou'])
def test_ids_stay_with_people_moving_in_shuffled_order(metric):
    rng = np.random.default_rng(0)
    tracker = PoseTracker(metric=metric)
    starts = {'a': (60, 100), 'b': (200, 110), 'c': (340, 90)}
    seen = {}
    for f in range(15):
        names = list(starts)
        rng.shuffle(names)
        people = [person(starts[n][0] + 4 * f + rng.normal(0, 1), starts[n][1] - 2 * f + rng.normal(0, 1))
                  for n in names]
        for name, tid in zip(names, ids_of(tracker.update(people, f / FPS))):
            assert seen.setdefault(name, tid) == tid
    assert sorted(seen.values()) == [0, 1, 2]


def test_two_crossing_people_keep_their_ids_by_oks():
    # a (arms up) walks right, b (arms down) walks left, 8 px a frame; at frame 10 both stand at x = 180
    tracker = PoseTracker(metric='oks')
    rng = np.random.default_rng(1)
    first = ids_of(tracker.update([person(100, 120, ARMS_UP), person(260, 120)], 0.0))
    assert first == [0, 1]
    for f in range(1, 21):
        a, b = person(100 + 8 * f, 120, ARMS_UP), person(260 - 8 * f, 120)
        order = [(0, a), (1, b)] if rng.random() < 0.5 else [(1, b), (0, a)]
        out = tracker.update([p for _, p in order], f / FPS)
        assert {want: got for (want, _), got in zip(order, ids_of(out))} == {0: 0, 1: 1}, f'frame {f}'


def test_a_person_leaving_and_a_new_one_entering_gets_a_new_id():
    tracker = PoseTracker()
    for f in range(5):
        assert ids_of(tracker.update([person(100 + 2 * f, 100)], f / FPS)) == [0]
    # frame 5: the first person is gone, someone enters on the far side: next id, never 0 again
    for f in range(5, 10):
        assert ids_of(tracker.update([person(500 - 2 * f, 100)], f / FPS)) == [1]
    assert tracker.next_id == 2


@pytest.mark.parametrize('max_missing, want', [(3, 0), (2, 1)])
def test_a_lost_track_is_refound_within_the_keep_window(max_missing, want):
    # seen on frames 0-2, missed on 3, 4, 5 (missing = 1, 2, 3 after them), back on 6 near where it was:
    # with max_missing 3 the track survives (3 <= 3) and keeps id 0; with 2 it was dropped after frame 5
    tracker = PoseTracker(max_missing=max_missing)
    for f in range(3):
        tracker.update([person(100 + f, 100)], f / FPS)
    for f in range(3, 6):
        assert tracker.update([], f / FPS) == []
    assert ids_of(tracker.update([person(104, 100)], 6 / FPS)) == [want]


def test_max_missing_zero_matches_the_previous_frame_only():
    # mmpose 0.x get_track_id: only the last frame's people are candidates
    tracker = PoseTracker(max_missing=0)
    tracker.update([person(100, 100)], 0.0)
    tracker.update([], 1 / FPS)
    assert ids_of(tracker.update([person(100, 100)], 2 / FPS)) == [1]


def test_visible_tracks_are_matched_before_lost_ones():
    # frame 0: people at x = 100 (id 0) and 116 (id 1); frame 1: only the one at 116 (track 0 is lost);
    # frame 2: one person at x = 104, 4 px from lost track 0 but 12 px from visible track 1
    # (OKS about 0.61 > 0.3): the visible track goes first, so the id is 1
    tracker = PoseTracker()
    assert ids_of(tracker.update([person(100, 100), person(116, 100)], 0.0)) == [0, 1]
    assert ids_of(tracker.update([person(116, 100)], 1 / FPS)) == [1]
    assert ids_of(tracker.update([person(104, 100)], 2 / FPS)) == [1]


def test_a_person_with_too_few_keypoints_gets_no_track():
    scores = [0.9, 0.9] + [0.1] * 15                     # 2 keypoints at or above 0.3 < min_keypoints 3
    tracker = PoseTracker()
    out = tracker.update([person(100, 100, scores=scores), person(300, 100)], 0.0)
    assert ids_of(out) == [-1, 0] and tracker.next_id == 1 and len(tracker.tracks) == 1


def test_update_returns_new_dicts_and_smooths_from_the_second_frame():
    one_euro = {'min_cutoff': 1.0, 'beta': 0.0, 'd_cutoff': 1.0}
    tracker = PoseTracker(smooth=True, one_euro=one_euro)
    p0, p1 = person(100, 100), person(101, 100)
    out0 = tracker.update([p0], 0.0)[0]
    assert out0 is not p0 and 'track_id' not in p0
    np.testing.assert_array_equal(out0['keypoints'], p0['keypoints'])   # the first sample passes
    out1 = tracker.update([p1], 1 / FPS)[0]
    # beta = 0: alpha = 1 / (1 + 30 / (2 pi)) = 0.1731707, so x moves 0.1731707 of the 1 px step
    np.testing.assert_allclose(out1['keypoints'][:, 0] - p0['keypoints'][:, 0], 0.1731707, atol=1e-5)
    np.testing.assert_array_equal(out1['keypoints'][:, 1], p1['keypoints'][:, 1])
    assert out1['keypoints'].dtype == np.float32
    np.testing.assert_array_equal(tracker.tracks[0].keypoints, p1['keypoints'])   # tracks keep raw poses


def test_tracker_rejects_bad_input():
    with pytest.raises(ValueError, match='metric'):
        PoseTracker(metric='cosine')
    with pytest.raises(ValueError, match='min_cutoff'):
        PoseTracker(smooth=True, one_euro={'min_cutoff': 0.0})
    tracker = PoseTracker()
    with pytest.raises(ValueError, match='bbox'):
        tracker.update([{'keypoints': FIGURE}])
    tracker.update([person(100, 100)], 1.0)
    with pytest.raises(ValueError, match='same number of keypoints'):
        tracker.update([{'bbox': [0, 0, 10, 10], 'keypoints': FIGURE[:5], 'keypoint_scores': np.ones(5)}], 2.0)


def test_frames_without_increasing_times_are_one_over_fps_apart():
    tracker = PoseTracker(fps=25.0)
    tracker.update([person(100, 100)])
    tracker.update([person(100, 100)])
    assert tracker.time == pytest.approx(0.04)
    # an image folder without a frame rate times every frame 0.0: warned once, 1/25 s steps
    with pytest.warns(RuntimeWarning, match='not after'):
        tracker.update([person(100, 100)], 0.0)
    tracker.update([person(100, 100)], 0.0)
    assert tracker.time == pytest.approx(0.12)


# ---------------------------------------------------------------- one-euro filter
ALPHA_1HZ_30FPS = 1 / (1 + 30 / (2 * math.pi))           # 0.1731707: Te = 1/30 s, tau = 1/(2 pi) s


def test_one_euro_keeps_a_constant_signal():
    f = OneEuroFilter(min_cutoff=1.0, beta=0.1)
    x = np.array([[3.5, -2.0], [100.25, 7.0]])
    for i in range(30):
        np.testing.assert_allclose(f(x, i / FPS), x, rtol=0, atol=1e-12)


def test_one_euro_step_worked_values_and_convergence():
    # beta = 0 is a 1 Hz low-pass: after n samples of the step 0 -> 1, 1 - (1 - 0.1731707)^n
    assert ALPHA_1HZ_30FPS == pytest.approx(0.1731707, abs=1e-7)
    f = OneEuroFilter(min_cutoff=1.0, beta=0.0, d_cutoff=1.0)
    f(np.zeros(1), 0.0)
    assert f(np.ones(1), 1 / FPS)[0] == pytest.approx(0.1731707, abs=1e-7)
    for i in range(2, 61):
        y = f(np.ones(1), i / FPS)[0]
    # after 60 samples 1 - y = 0.8268293^60 = 1.109e-5
    assert 1 - y == pytest.approx(0.8268293 ** 60, rel=1e-5) and 1 - y < 2e-5
    # beta = 1: dx = 1 / (1/30) = 30, dx_hat = 0.1731707 * 30 = 5.195122, fc = 1 + 5.195122 = 6.195122 Hz,
    # alpha = 1 / (1 + 30 / (2 pi 6.195122)) = 0.5647449: speed raises the cutoff, less lag
    g = OneEuroFilter(min_cutoff=1.0, beta=1.0, d_cutoff=1.0)
    g(np.zeros(1), 0.0)
    assert g(np.ones(1), 1 / FPS)[0] == pytest.approx(0.5647449, abs=1e-7)


def test_one_euro_uses_the_frame_times():
    # a 0.1 s gap: alpha = 1 / (1 + 10 / (2 pi)) = 0.3858695 (variable frame rate)
    f = OneEuroFilter(min_cutoff=1.0, beta=0.0)
    f(np.zeros(1), 5.0)
    assert f(np.ones(1), 5.1)[0] == pytest.approx(0.3858695, abs=1e-6)
    with pytest.raises(ValueError, match='increase'):
        f(np.ones(1), 5.1)
    f.reset()
    assert f(np.full(1, 7.0), 0.0)[0] == 7.0                 # after reset the next sample passes


def test_one_euro_reduces_noise_variance():
    # at beta = 0, white noise keeps alpha / (2 - alpha) = 0.0948 of its variance; beta 0.1 lets some through
    rng = np.random.default_rng(0)
    noise = rng.normal(0, 3.0, (2000, 2))
    for beta, bound in ((0.0, 0.15), (0.1, 0.6)):
        f = OneEuroFilter(min_cutoff=1.0, beta=beta)
        out = np.stack([f(x, i / FPS) for i, x in enumerate(noise)])
        assert out[100:].var() / noise[100:].var() < bound


def test_one_euro_rejects_bad_parameters():
    with pytest.raises(ValueError, match='beta'):
        OneEuroFilter(beta=-1.0)
    f = OneEuroFilter()
    f(np.zeros(2), 0.0)
    with pytest.raises(ValueError, match='shape'):
        f(np.zeros(3), 1.0)


# ---------------------------------------------------------------- detect every N frames
def test_detection_frames():
    assert [DetectEvery(3).due(i) for i in range(7)] == [True, False, False, True, False, False, True]
    with pytest.raises(ValueError, match='N >= 1'):
        DetectEvery(0)


def test_person_boxes_between_detections_come_from_the_last_keypoints():
    schedule, tracker, calls = DetectEvery(every=3), PoseTracker(), []

    def detect():
        calls.append(frame)
        return np.array([[68.0, 6.0, 62.0, 193.0, 0.95]])   # the same person as the tracker sees

    for frame in range(7):
        boxes = schedule.person_boxes(frame, tracker, (240, 320), detect)
        if frame == 0:
            np.testing.assert_allclose(boxes, [[68.0, 6.0, 62.0, 193.0, 0.95]])
        else:
            # figure at (100, 100): x -25..25 -> 50, y 26..180 -> 154, centre (100, 103); x 1.25 =
            # 62.5 x 192.5 -> [68.75, 6.75, 62.5, 192.5]; the detection duplicates it (IoU 0.98) and is
            # dropped; the score is the track's last bbox_score (0.8)
            np.testing.assert_allclose(boxes, [[68.75, 6.75, 62.5, 192.5, 0.8]])
        tracker.update([person(100, 100)], frame / FPS)
    assert calls == [0, 3, 6]


def test_merge_drops_detections_that_duplicate_tracked_boxes():
    tracked = np.array([[0.0, 0.0, 100.0, 200.0, 0.8]])
    # [10, 0, 100, 200]: 90 x 200 = 18000 shared of 2 x 20000 - 18000 = 22000 -> IoU 0.818 > 0.7: dropped
    # [50, 0, 100, 200]: 50 x 200 = 10000 of 30000 -> IoU 0.333: kept, with score 1.0 as none was given
    merged = DetectEvery(dedup_iou=0.7).merge(tracked, [[10, 0, 100, 200], [50, 0, 100, 200]])
    np.testing.assert_allclose(merged, [[0, 0, 100, 200, 0.8], [50, 0, 100, 200, 1.0]])
    assert DetectEvery().merge(np.zeros((0, 5)), []).shape == (0, 5)
    with pytest.raises(ValueError, match='boxes must be'):
        DetectEvery().merge(tracked, [[1, 2, 3]])


def test_nobody_tracked_runs_the_detector_unless_told_not_to():
    calls = []
    for redetect, want in ((True, [0, 1, 2]), (False, [0])):
        calls.clear()
        schedule, tracker = DetectEvery(every=5, redetect_when_empty=redetect), PoseTracker()
        for frame in range(3):
            boxes = schedule.person_boxes(frame, tracker, (240, 320), lambda: calls.append(frame) or [])
            assert boxes.shape == (0, 5)
        assert calls == want
