"""Video in and out for every task: frame sources (video files, image folders, GIFs, webcams,
stream URLs) decoded by PyAV with bounded memory, and outputs (an annotated video, JSON lines,
PNGs) that never leave a broken file in place of a good one.

A task's ``predict`` is a ``step`` on one :class:`Frame` run by :func:`process_frames`::

    from hrnet_zoo.tasks.video import open_source, process_frames
    from hrnet_zoo.tasks.drawing import draw_people

    def step(frame):
        people = predict(model, frame.image, boxes=...)        # frame.image: (3, H, W) uint8
        drawing = draw_people(frame.image, keypoints, scores, COCO_SKELETON)
        return {'people': people}, drawing

    with open_source('clip.mp4') as source:                     # or 0 (webcam), 'rtsp://...', a folder
        process_frames(source, step, out='clip_pose.mp4', json_path='clip_pose.jsonl')

Bad input raises :class:`VideoError` (a ``ValueError``) with a one-line message naming the
source, for a CLI to print without a traceback; a single undecodable frame is skipped with a
:class:`VideoWarning` and counted in ``source.skipped``.
"""
from .loop import StageTimer, Step, no_timer, process_frames
from .sinks import (DEFAULT_FPS, VIDEO_ENCODERS, AtomicOutput, ImageWriter, JsonLinesWriter, VideoWriter,
                    choose_codec, open_sink, partial_path)
from .sources import (FOLDER_FPS, IMAGE_SUFFIXES, STREAM_SCHEMES, VIDEO_SUFFIXES, Frame, Source,
                      SourceNotFoundError, VideoError, VideoWarning, open_source, open_sources)

__all__ = ['open_source', 'open_sources', 'Source', 'Frame', 'process_frames', 'Step', 'StageTimer', 'no_timer', 'VideoWriter',
           'JsonLinesWriter', 'ImageWriter', 'AtomicOutput', 'open_sink', 'choose_codec', 'partial_path', 'VideoError',
           'SourceNotFoundError', 'VideoWarning', 'IMAGE_SUFFIXES', 'VIDEO_SUFFIXES', 'STREAM_SCHEMES',
           'FOLDER_FPS', 'DEFAULT_FPS', 'VIDEO_ENCODERS']
