"""Outputs of a frame loop: an annotated video (PyAV), JSON lines, image files.

**Nothing is lost, nothing good is overwritten.** :class:`VideoWriter` and
:class:`JsonLinesWriter` write to a temporary file beside the target (``<stem>.tmp-XXXX<ext>``)
and move it into place with one ``os.replace`` when closed. If the run stops with an error or
Ctrl-C (the writer used as a context manager, or :meth:`~AtomicOutput.abort`), what was written so
far is finalised (the encoder flushed, the container closed: a readable file with the right frame
count) and lands as ``<stem>.partial<ext>`` beside the target, with a :class:`VideoWarning` naming
it; an earlier complete target is left as it was. A hard kill (SIGKILL, power loss) leaves at most
the temporary file, never a broken target.
"""
from __future__ import annotations

import json
import os
import signal
import threading
import warnings
from contextlib import contextmanager
from fractions import Fraction
from typing import Any, Dict, Optional, Sequence, Union

import numpy as np

from ..drawing import _publish, _temp_beside, as_uint8_image, save_png
from .sources import IMAGE_SUFFIXES, VIDEO_SUFFIXES, Frame, Source, VideoError, VideoWarning, _av

__all__ = ['AtomicOutput', 'VideoWriter', 'JsonLinesWriter', 'ImageWriter', 'open_sink', 'choose_codec',
           'partial_path', 'VIDEO_ENCODERS', 'DEFAULT_FPS']

# Encoders to try for each container, best first; the first one the installed FFmpeg has is used.
# H.264 (libx264: the PyAV wheels carry it) plays everywhere in mp4 / mov / mkv; MPEG-4 part 2
# is the fallback (VLC, FFmpeg, most players; not browsers) and the classic avi codec; webm is VP9.
VIDEO_ENCODERS = {
    '.mp4': ('libx264', 'libopenh264', 'mpeg4'),
    '.mov': ('libx264', 'libopenh264', 'mpeg4'),
    '.mkv': ('libx264', 'libopenh264', 'mpeg4'),
    '.avi': ('mpeg4', 'libx264'),
    '.webm': ('libvpx-vp9', 'libvpx'),
}
# Per-encoder options: x264 at its default quality (CRF 23) with the 'veryfast' preset (an
# annotated preview is not worth 'medium''s encoding time); VP9 in constant-quality real-time mode.
ENCODER_OPTIONS = {
    'libx264': {'crf': '23', 'preset': 'veryfast'},
    'libvpx-vp9': {'crf': '32', 'b': '0', 'deadline': 'realtime', 'cpu-used': '8'},
    'libvpx': {'crf': '10', 'b': '1M', 'deadline': 'realtime', 'cpu-used': '8'},
}
BITS_PER_PIXEL = 0.15  # bit rate of encoders without a quality mode: 960x540 at 30/s -> 2.3 Mbit/s
DEFAULT_FPS = 25.0  # for sources with no frame rate (a single image, some live streams)
TIME_BASE = Fraction(1, 90000)  # the MPEG clock: 30000/1001, 25, 24, 30 frames/s all land on whole ticks


def choose_codec(path: str) -> str:
    """The encoder for a video file by its suffix: the first of :data:`VIDEO_ENCODERS` that the
    installed FFmpeg has (libx264 with PyAV's wheels)."""
    av = _av(path, output=True)
    suffix = os.path.splitext(path)[1].lower()
    if suffix not in VIDEO_ENCODERS:
        raise VideoError(f'{path}: cannot write {suffix or "files without a suffix"}: use one of '
                         f'{", ".join(VIDEO_ENCODERS)}')
    for name in VIDEO_ENCODERS[suffix]:
        try:
            av.codec.Codec(name, 'w')
            return name
        except Exception:  # not in this FFmpeg build (UnknownCodecError / ValueError by version)
            continue
    raise VideoError(f'{path}: this FFmpeg (PyAV {av.__version__}) has none of the encoders '
                     f'{", ".join(VIDEO_ENCODERS[suffix])}; try another suffix')


def partial_path(path: str) -> str:
    """Where an interrupted run's output lands: ``result.mp4`` -> ``result.partial.mp4``."""
    stem, ext = os.path.splitext(path)
    return f'{stem}.partial{ext}'


@contextmanager
def _no_interrupt():
    """Ignore Ctrl-C while a file is finalised (main thread only; elsewhere signals cannot be set)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


class AtomicOutput:
    """An output file written through a temporary file: :meth:`close` moves it onto ``path``,
    :meth:`abort` onto :func:`partial_path`; a context manager closes on success and aborts on
    an exception (Ctrl-C included). ``count`` items written; nothing written: no file at all."""

    def __init__(self, path: str):
        self.path = os.fspath(path)
        self.count = 0
        self.result: Optional[str] = None  # the file written, once closed / aborted
        self._tmp: Optional[str] = None
        self._done = False

    def _finish(self) -> None:
        """Flush and close the temporary file (it must be complete and readable afterwards)."""
        raise NotImplementedError

    def _land(self, dest: str) -> Optional[str]:
        if self._done:
            return self.result
        self._done = True
        with _no_interrupt():
            try:
                self._finish()
            except BaseException:
                self._discard()
                raise
            if self._tmp is None or self.count == 0:
                self._discard()
                return None
            self.result, self._tmp = _publish(self._tmp, dest), None
        return self.result

    def _discard(self) -> None:
        if self._tmp is not None and os.path.exists(self._tmp):
            os.unlink(self._tmp)
        self._tmp = None

    def close(self) -> Optional[str]:
        """Finish and move onto ``path``; returns it (None if nothing was written)."""
        return self._land(self.path)

    def abort(self) -> Optional[str]:
        """Finish what was written and keep it as ``<stem>.partial<ext>`` (returned; None if
        nothing was written), with a :class:`VideoWarning`."""
        done = self._land(partial_path(self.path))
        if done is not None:
            warnings.warn(f'stopped early: the {self.count} {self.unit}s written so far are in {done}',
                          VideoWarning, stacklevel=2)
        return done

    unit = 'item'

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            try:
                self.abort()
            except Exception as e:  # keep the original error; say that the partial output is gone
                warnings.warn(f'{self.path}: the partial output could not be saved: {e}', VideoWarning)

    def __del__(self):
        if not getattr(self, '_done', True) and getattr(self, '_tmp', None):
            try:
                self.abort()
            except Exception:
                pass


class VideoWriter(AtomicOutput):
    """An H.264 (see :func:`choose_codec`) yuv420p video at ``fps``, written frame by frame.

    Frames are (3, H, W) uint8 tensors (or PIL images / (H, W, 3) arrays). The video takes the
    first frame's size rounded down to even numbers (yuv420p halves the chroma planes: a 961x541
    frame loses its last column and row); a later frame of another size is scaled to it. Frame
    ``n`` is shown at ``n / fps`` seconds, or at the ``time`` of the :class:`Frame` given with it
    (relative to the first one; variable frame rates and dropped frames keep their timing).
    """
    unit = 'frame'

    def __init__(self, path: str, fps: Union[float, Fraction], codec: Optional[str] = None,
                 options: Optional[Dict[str, str]] = None):
        super().__init__(path)
        if not fps or fps <= 0:
            raise VideoError(f'{path}: the frame rate must be positive, got {fps!r}')
        self.fps = Fraction(fps).limit_denominator(1001)  # 29.97002997 -> 30000/1001
        self.codec = codec or choose_codec(self.path)
        self.options = dict(ENCODER_OPTIONS.get(self.codec, {}) if options is None else options)
        self.size: Optional[tuple] = None  # (width, height), from the first frame
        self._container = self._stream = None
        self._origin: Optional[float] = None
        self._last_pts = -1

    def _open(self, width: int, height: int) -> None:
        av = _av(self.path, output=True)
        w, h = width - width % 2, height - height % 2
        if w < 2 or h < 2:
            raise VideoError(f'{self.path}: a {width}x{height} frame is too small for a video')
        self._tmp = _temp_beside(self.path, os.path.splitext(self.path)[1])
        self._container = av.open(self._tmp, 'w', format=_muxer(self.path))
        stream = self._container.add_stream(self.codec, rate=self.fps)
        stream.width, stream.height, stream.pix_fmt = w, h, 'yuv420p'
        stream.time_base = stream.codec_context.time_base = TIME_BASE
        if self.codec not in ENCODER_OPTIONS:
            stream.bit_rate = int(BITS_PER_PIXEL * w * h * float(self.fps))
        stream.options = self.options
        self._stream, self.size = stream, (w, h)

    def write(self, image, frame: Optional[Frame] = None) -> None:
        """Encode one frame (shown at ``frame.time`` when a :class:`Frame` is given)."""
        av = _av(self.path, output=True)
        if self._done:
            raise VideoError(f'{self.path}: the writer is closed')
        arr = as_uint8_image(image).permute(1, 2, 0).numpy()
        if self._container is None:
            self._open(arr.shape[1], arr.shape[0])
        w, h = self.size
        if arr.shape[0] in (h, h + 1) and arr.shape[1] in (w, w + 1):
            arr = arr[:h, :w]  # odd sizes: drop the last row / column rather than rescale
        video_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(arr), format='rgb24')
        video_frame.pts = self._pts(frame)
        video_frame.time_base = TIME_BASE
        for packet in self._stream.encode(video_frame):
            self._container.mux(packet)
        self.count += 1

    def _pts(self, frame: Optional[Frame]) -> int:
        if frame is None:
            pts = round(self.count / self.fps / TIME_BASE)
        else:
            self._origin = frame.time if self._origin is None else self._origin
            pts = round((frame.time - self._origin) / TIME_BASE)
        self._last_pts = pts = max(pts, self._last_pts + 1)  # strictly increasing
        return pts

    def _finish(self) -> None:
        if self._container is None:
            return
        try:
            for packet in self._stream.encode(None):  # flush the encoder's delayed frames
                self._container.mux(packet)
        finally:
            self._container.close()
            self._container = None


def _muxer(path: str) -> str:
    return {'.mkv': 'matroska', '.mov': 'mov', '.avi': 'avi', '.webm': 'webm'}.get(
        os.path.splitext(path)[1].lower(), 'mp4')


def _jsonable(value: Any) -> Any:
    if isinstance(value, (np.floating, np.integer, np.bool_)):
        return value.item()
    return value.tolist() if hasattr(value, 'tolist') else str(value)  # tensors, arrays


class JsonLinesWriter(AtomicOutput):
    """One JSON object per line (numpy arrays and tensors as lists), flushed after every line."""
    unit = 'line'

    def __init__(self, path: str):
        super().__init__(path)
        self._tmp = _temp_beside(self.path, '.jsonl')
        self._file = open(self._tmp, 'w', encoding='utf-8')

    def write(self, record: Dict[str, Any], frame: Optional[Frame] = None) -> None:
        if self._done:
            raise VideoError(f'{self.path}: the writer is closed')
        self._file.write(json.dumps(record, default=_jsonable) + '\n')
        self._file.flush()
        self.count += 1

    def _finish(self) -> None:
        if not self._file.closed:
            self._file.close()


class ImageWriter:
    """Drawings as PNG files, each written atomically: ``path`` itself for a single image, else
    one file per frame in the folder ``path`` named after the frame (``photo.jpg`` ->
    ``photo<suffix>.png``, ``clip.mp4#00007`` -> ``clip_00007<suffix>.png``)."""

    def __init__(self, path: str, single: bool = False, suffix: str = ''):
        self.path, self.single, self.suffix = os.fspath(path), single, suffix
        self.count, self.result, self.files = 0, None, []

    def write(self, image, frame: Optional[Frame] = None) -> str:
        target = self.path if self.single else os.path.join(self.path, self.file_name(frame) + self.suffix + '.png')
        self.files.append(save_png(image, target))
        self.count += 1
        return target

    @staticmethod
    def file_name(frame: Optional[Frame]) -> str:
        if frame is None:
            raise ValueError('an image folder needs the frame of each drawing (for its file name)')
        base = os.path.basename(frame.name)
        stem, _, index = base.partition('#')
        return f'{os.path.splitext(stem)[0]}_{index}' if index else os.path.splitext(base)[0]

    def close(self) -> Optional[str]:
        self.result = self.path if self.count else None
        return self.result

    abort = close

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_sink(path: str, source: Source, fps: Optional[float] = None, suffix: str = ''):
    """The drawing output for ``path`` and a source: a :class:`VideoWriter` for a video suffix
    (at ``fps``, default the source's, else :data:`DEFAULT_FPS`), a PNG for an image suffix (a
    one-frame source only), else a folder of PNGs (:class:`ImageWriter`)."""
    ext = os.path.splitext(path)[1].lower()
    if ext in VIDEO_SUFFIXES:
        return VideoWriter(path, fps or source.fps or DEFAULT_FPS)
    if ext in IMAGE_SUFFIXES + ('.gif',):
        if ext != '.png':
            raise VideoError(f'{path}: drawings are written as PNG; use a .png name, a folder or a video '
                             f'({", ".join(VIDEO_SUFFIXES)})')
        if source.num_frames != 1:
            raise VideoError(f'{path} is one image but {source.name} has '
                             f'{source.num_frames or "an unknown number of"} frames: give a folder or a video '
                             f'name ({", ".join(VIDEO_SUFFIXES)})')
        return ImageWriter(path, single=True)
    return ImageWriter(path, suffix=suffix)


def close_all(outputs: Sequence[Any], ok: bool) -> None:
    """Close (``ok``) or abort every output, all of them even when one fails; the first error is
    raised afterwards."""
    error = None
    for out in outputs:
        try:
            out.close() if ok else out.abort()
        except Exception as e:
            error = error or e
    if error is not None:
        raise error

