"""Frame sources: one iterator of RGB frames over image files, image folders, animated GIFs, video
files, webcams and stream URLs.

Decoding goes through PyAV (``pip install 'hrnet-zoo[video]'``; its wheels carry FFmpeg), one
packet at a time: memory stays bounded whatever the length of the video. Still images and image
folders need only Pillow; animated GIFs fall back to ``torchvision.io.decode_gif`` (the whole GIF
in memory, no frame delays) when PyAV is missing, and for GIF87a files (they have no delays, and
FFmpeg reads only their first frame).

Every :class:`Frame` carries its ``index`` (0-based, in stream order; an undecodable frame that
was skipped still uses up its index) and its ``time`` in seconds: ``(pts - start) * time_base``
for videos and GIFs (``start`` = the stream's ``start_time``, so the first frame of an ordinary
file is at 0.0; a live source counts from its first frame), ``index / fps`` for image folders
(nominal 25 frames/s, FFmpeg's ``image2`` default, unless ``fps`` is given).
"""
from __future__ import annotations

import os
import re
import sys
import warnings
from dataclasses import dataclass
from typing import Dict, Iterator, List, Optional, Sequence, Union

import numpy as np
import torch

__all__ = ['VideoError', 'SourceNotFoundError', 'VideoWarning', 'Frame', 'Source', 'open_source', 'open_sources',
           'IMAGE_SUFFIXES', 'VIDEO_SUFFIXES', 'STREAM_SCHEMES', 'FOLDER_FPS']

IMAGE_SUFFIXES = ('.jpg', '.jpeg', '.png', '.bmp', '.webp', '.tif', '.tiff')
VIDEO_SUFFIXES = ('.mp4', '.mov', '.mkv', '.avi', '.webm')
STREAM_SCHEMES = ('rtsp://', 'rtsps://', 'rtmp://', 'rtmps://', 'http://', 'https://', 'udp://', 'tcp://', 'srt://')
FOLDER_FPS = 25.0  # nominal rate of an image folder: FFmpeg's image2 demuxer default (-framerate 25)
MAX_SKIP_WARNINGS = 5  # undecodable frames reported one by one; the rest only in the final count
INSTALL_HINT = "pip install 'hrnet-zoo[video]'"


class VideoError(ValueError):
    """Bad video input: a missing or unreadable file, no video stream, an unsupported codec, an
    absent webcam. The message is one line naming the source; print it without a traceback."""


class SourceNotFoundError(VideoError, FileNotFoundError):
    """The path, webcam or stream does not exist (also a ``FileNotFoundError``)."""


class VideoWarning(UserWarning):
    """A recoverable problem in a source (a skipped undecodable frame, a stream shorter than its
    header says)."""


@dataclass(frozen=True)
class Frame:
    """One decoded frame: ``image`` (3, H, W) uint8 RGB, its 0-based ``index``, its ``time`` in
    seconds and a ``name`` (the file for images, ``<source>#<index:05d>`` for video frames)."""
    image: torch.Tensor
    index: int
    time: float
    name: str


class Source:
    """An iterable of :class:`Frame` (a single pass), with what is known of the source:
    ``kind`` ('image', 'folder', 'gif', 'video' or 'live'), ``name``, ``fps`` (None when unknown),
    ``width`` / ``height`` (of the frames as yielded), ``num_frames`` (None when unknown: live
    sources, containers without a count) and ``skipped`` (undecodable frames skipped so far).
    Use it as a context manager, or call :meth:`close`."""
    kind: str = ''
    live: bool = False

    def __init__(self, name: str, fps: Optional[float], width: int, height: int, num_frames: Optional[int]):
        self.name, self.fps, self.width, self.height, self.num_frames = name, fps, width, height, num_frames
        self.skipped = 0
        self._used = False

    def __iter__(self) -> Iterator[Frame]:
        if self._used:
            raise VideoError(f'{self.name}: a source is read once; call open_source again to read it again')
        self._used = True
        return self._frames()

    def _frames(self) -> Iterator[Frame]:
        raise NotImplementedError

    def _skip(self, what: str, error: BaseException) -> None:
        self.skipped += 1
        if self.skipped <= MAX_SKIP_WARNINGS:
            more = ' (further skips are only counted)' if self.skipped == MAX_SKIP_WARNINGS else ''
            warnings.warn(f'{self.name}: skipped undecodable {what}: {_reason(error)}{more}', VideoWarning,
                          stacklevel=3)

    def close(self) -> None:
        pass

    def __enter__(self) -> 'Source':
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def info(self) -> dict:
        """The source's description as plain values (for a JSON header or a log)."""
        return {'source': self.name, 'kind': self.kind, 'fps': self.fps, 'width': self.width,
                'height': self.height, 'num_frames': self.num_frames}

    def __repr__(self) -> str:
        return f'{type(self).__name__}({", ".join(f"{k}={v!r}" for k, v in self.info().items())})'


def open_source(src: Union[str, int, os.PathLike], fps: Optional[float] = None, threads: Optional[int] = None,
                timeout: float = 10.0, options: Optional[Dict[str, str]] = None) -> Source:
    """Open a frame source:

    * an image file (``.jpg``, ``.png``, ...): one frame;
    * a folder: its images in natural order (``f2.png`` before ``f10.png``), at ``fps``
      (default :data:`FOLDER_FPS`); an unreadable image in it is skipped with a warning;
    * an animated ``.gif`` and any video FFmpeg reads (``.mp4``, ``.mov``, ``.mkv``, ``.avi``,
      ``.webm``, ...), by PyAV;
    * a webcam index (``0`` or ``'0'``: ``/dev/video0`` through FFmpeg's v4l2 input on Linux,
      avfoundation device 0 on macOS) or a stream URL (``rtsp://``, ``http(s)://``, ...; ``timeout``
      seconds to connect and between packets).

    ``threads``: decoder threads (None: FFmpeg's default; 0: one per core, frame and slice
    threading). ``options``: FFmpeg input options, e.g. ``{'video_size': '1280x720', 'framerate':
    '30', 'input_format': 'mjpeg'}`` for a webcam (``rtsp_transport`` is ``tcp`` unless given). Raises :class:`VideoError` (one line, naming the source) for anything it cannot
    read, before the first frame is requested: the first frame is decoded here.
    """
    if isinstance(src, bool):
        raise VideoError(f'{src!r} is not a source: give a path, a folder, a webcam index or a URL')
    if isinstance(src, int) or (isinstance(src, str) and src.isdigit() and not os.path.exists(src)):
        return _open_webcam(int(src), threads, options)
    path = os.fspath(src)
    if path.lower().startswith(STREAM_SCHEMES):
        return AVSource(path, path, 'live', threads=threads, timeout=timeout, options=options)
    if os.path.isdir(path):
        return ImageSource(path, _folder_images(path), fps or FOLDER_FPS, kind='folder')
    if not os.path.isfile(path):
        raise SourceNotFoundError(f'{path}: no such file or folder (expected an image, a folder of images, '
                                  'a GIF, a video, a webcam index or a stream URL)')
    suffix = os.path.splitext(path)[1].lower()
    if suffix in IMAGE_SUFFIXES:
        return ImageSource(path, [path], fps, kind='image')
    if suffix == '.gif' and (not _have_av() or _gif87a(path)):
        return GifSource(path)
    return AVSource(path, path, 'gif' if suffix == '.gif' else 'video', threads=threads, options=options)


def open_sources(sources: Sequence[Union[str, int, os.PathLike]], **kwargs) -> Source:
    """One source for a command line's list (``--image a.jpg b.jpg``): a single entry is
    :func:`open_source`'s (``kwargs`` go there); several must all be image files, read as one
    folder-like sequence in the order given."""
    sources = list(sources)
    if len(sources) == 1:
        return open_source(sources[0], **kwargs)
    if not sources:
        raise VideoError('no source given: pass an image, a folder, a GIF, a video, a webcam index or a stream URL')
    paths = [os.fspath(s) for s in sources]
    for path in paths:
        if not os.path.isfile(path):
            raise SourceNotFoundError(f'{path}: no such file (several sources must all be image files)')
        if not path.lower().endswith(IMAGE_SUFFIXES):
            raise VideoError(f'{path}: several sources must all be image files ({", ".join(IMAGE_SUFFIXES)}); '
                             'give one video, GIF, folder, webcam or stream at a time')
    return ImageSource(f'{len(paths)} images', paths, kwargs.get('fps'), kind='folder')


# ---------------------------------------------------------------------------------------------
# images and folders (Pillow)

def _natural_key(name: str):
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r'(\d+)', name)]


def _folder_images(folder: str) -> List[str]:
    names = sorted((f for f in os.listdir(folder) if f.lower().endswith(IMAGE_SUFFIXES)), key=_natural_key)
    if not names:
        raise VideoError(f'{folder}: the folder has no images ({", ".join(IMAGE_SUFFIXES)})')
    return [os.path.join(folder, f) for f in names]


def _read_image(path: str) -> torch.Tensor:
    """An image as displayed: RGB, turned by its EXIF orientation (phone photos), as (3, H, W) uint8."""
    from PIL import Image, ImageOps
    with Image.open(path) as im:
        arr = np.array(ImageOps.exif_transpose(im).convert('RGB'))
    return torch.from_numpy(arr).permute(2, 0, 1).contiguous()


class ImageSource(Source):
    """One image file, or the images of a folder as consecutive frames (the first readable one is
    read on opening, for the size)."""

    def __init__(self, name: str, files: List[str], fps: Optional[float], kind: str):
        super().__init__(name, fps, 0, 0, len(files))
        self.kind, self.files = kind, files
        self._first = None
        for index in range(len(files)):
            image = self._load(index)
            if image is not None:
                self._first = index, image
                break
        if self._first is None:
            raise VideoError(f'{name}: none of its {len(files)} images could be read')
        self.height, self.width = self._first[1].shape[-2:]

    def _load(self, index: int) -> Optional[torch.Tensor]:
        """Image ``index``; an unreadable one raises for a single image, is skipped in a folder."""
        from PIL import UnidentifiedImageError
        path = self.files[index]
        try:
            return _read_image(path)
        except (OSError, UnidentifiedImageError, SyntaxError) as e:
            if self.kind == 'image':
                raise VideoError(f'{path}: not a readable image ({_reason(e)})') from None
            self._skip(f'image {os.path.basename(path)}', e)
            return None

    def _frames(self) -> Iterator[Frame]:
        start, image = self._first
        self._first = None
        for index in range(start, len(self.files)):
            image = image if index == start else self._load(index)
            if image is not None:
                yield Frame(image, index, index / self.fps if self.fps else 0.0, self.files[index])


def _gif87a(path: str) -> bool:
    """Whether a GIF is of the 1987 format (Pillow writes one when no frame has a delay): no
    frame delays, and FFmpeg's GIF demuxer (PyAV 18) returns only its first frame."""
    with open(path, 'rb') as f:
        return f.read(6) == b'GIF87a'


class GifSource(Source):
    """An animated GIF by ``torchvision.io.decode_gif`` (when PyAV is missing, and for GIF87a
    files): every frame is decoded at once and timed at a nominal 10 frames/s (the delays are not
    read)."""
    kind = 'gif'

    def __init__(self, path: str):
        from torchvision.io import decode_gif, read_file
        try:
            frames = decode_gif(read_file(path))
        except RuntimeError as e:
            raise VideoError(f'{path}: not a readable GIF ({_reason(e)})') from None
        self._data = frames[None] if frames.dim() == 3 else frames  # (N, C, H, W) uint8
        super().__init__(path, 10.0, self._data.shape[-1], self._data.shape[-2], len(self._data))

    def _frames(self) -> Iterator[Frame]:
        for i, image in enumerate(self._data):
            yield Frame(image[:3].contiguous(), i, i / self.fps, f'{self.name}#{i:05d}')


# ---------------------------------------------------------------------------------------------
# videos, GIFs, webcams and streams (PyAV)

def _have_av() -> bool:
    import importlib.util
    return importlib.util.find_spec('av') is not None


def _av(name: str, output: bool = False):
    try:
        import av
    except ImportError:
        other = 'or write PNGs (a .png name or a folder)' if output else 'or pass a folder of images'
        raise VideoError(f'{name}: video {"output" if output else "input"} needs PyAV ({INSTALL_HINT}); '
                         f'{other}') from None
    return av


def _reason(error: BaseException) -> str:
    """An FFmpeg / OS error as a short phrase (without the repeated file name)."""
    text = getattr(error, 'strerror', None) or str(error) or type(error).__name__
    return text.strip().rstrip('.')


def _open_webcam(index: int, threads: Optional[int], options: Optional[Dict[str, str]]) -> 'AVSource':
    name = f'webcam {index}'
    if sys.platform.startswith('linux'):
        device = f'/dev/video{index}'
        if not os.path.exists(device):
            found = sorted((f'/dev/{d}' for d in os.listdir('/dev') if re.fullmatch(r'video\d+', d)),
                           key=_natural_key)
            raise SourceNotFoundError(f'{name}: {device} is not there (cameras here: '
                                      f'{", ".join(found) or "none"})')
        return AVSource(device, f'{name} ({device})', 'live', fmt='v4l2', threads=threads, options=options)
    if sys.platform == 'darwin':
        return AVSource(str(index), name, 'live', fmt='avfoundation', threads=threads, options=options)
    raise VideoError(f'{name}: webcam indices work on Linux (v4l2) and macOS (avfoundation); on '
                     f'{sys.platform} give the camera as a stream URL')


class AVSource(Source):
    """A container read by PyAV: its first video stream, decoded packet by packet. An undecodable
    packet is skipped with a :class:`VideoWarning` (counted in ``skipped``); a stream that ends
    before the frame count of its header gets a warning too (truncated file)."""

    def __init__(self, target: str, name: str, kind: str, fmt: Optional[str] = None,
                 threads: Optional[int] = None, timeout: Optional[float] = None,
                 options: Optional[Dict[str, str]] = None):
        av = _av(name)
        self.kind, self.live = kind, kind == 'live'
        self._container = _open_container(av, target, name, fmt, timeout if self.live else None, options)
        try:
            self._stream = stream = self._video_stream(av, name)
            if threads is not None:
                stream.codec_context.thread_count = threads
                stream.codec_context.thread_type = 'AUTO'
            rate = stream.average_rate or stream.guessed_rate or stream.base_rate
            super().__init__(name, float(rate) if rate else None, stream.codec_context.width,
                             stream.codec_context.height, None if self.live else (stream.frames or None))
            self._origin = None if self.live else stream.start_time
            self._decoded = self._decode(av)
            first = next(self._decoded, None)  # fail here, not in the middle of the caller's loop
            if first is None:
                raise VideoError(f'{name}: no frame could be decoded (a truncated or corrupt video)')
            self._first = first
            self.height, self.width = first.image.shape[-2:]  # after the display rotation
        except BaseException:
            self.close()
            raise

    def _video_stream(self, av, name: str):
        streams = self._container.streams
        if not streams.video:
            kinds = sorted({s.type for s in streams}) or ['none']
            raise VideoError(f'{name}: no video stream (it has {", ".join(kinds)} streams)')
        stream = streams.video[0]
        if stream.codec_context is None:
            raise VideoError(f'{name}: its video codec is not supported by the FFmpeg of PyAV {av.__version__}; '
                             f'convert it, e.g. ffmpeg -i {name} -c:v libx264 out.mp4')
        return stream

    def _frames(self) -> Iterator[Frame]:
        try:
            if self._first is not None:
                first, self._first = self._first, None
                yield first
            yield from self._decoded
        finally:
            self.close()

    def _decode(self, av) -> Iterator[Frame]:
        """Decoded frames, one packet at a time; undecodable packets skipped and counted."""
        count = 0
        try:
            for packet in self._container.demux(self._stream):
                try:
                    decoded = packet.decode()
                except av.error.DecoderNotFoundError as e:
                    raise VideoError(f'{self.name}: no decoder for its codec in PyAV {av.__version__} ({_reason(e)}); '
                                     f'convert it, e.g. ffmpeg -i {self.name} -c:v libx264 out.mp4') from None
                except av.error.FFmpegError as e:
                    self._skip(f'frame {count}', e)
                    count += 1
                    continue
                for frame in decoded:
                    yield self._frame(frame, count)
                    count += 1
        except av.error.FFmpegError as e:
            raise VideoError(f'{self.name}: read error after {count} frames: {_reason(e)}') from None
        if self.num_frames and count < self.num_frames:
            warnings.warn(f'{self.name}: the stream ended after {count} of its {self.num_frames} frames '
                          '(a truncated file?)', VideoWarning, stacklevel=2)

    def _frame(self, frame, index: int) -> Frame:
        image = torch.from_numpy(frame.to_ndarray(format='rgb24')).permute(2, 0, 1)
        turns = round(getattr(frame, 'rotation', 0) / 90) % 4  # display matrix, counter-clockwise degrees
        image = torch.rot90(image, turns, dims=(1, 2)) if turns else image
        return Frame(image.contiguous(), index, self._time(frame, index), f'{self.name}#{index:05d}')

    def _time(self, frame, index: int) -> float:
        if frame.pts is None or frame.time_base is None:
            return index / self.fps if self.fps else 0.0
        if self._origin is None:
            self._origin = frame.pts  # live: count from the first frame
        return float((frame.pts - self._origin) * frame.time_base)

    def close(self) -> None:
        container, self._container = getattr(self, '_container', None), None
        if container is not None:
            container.close()


def _open_container(av, target: str, name: str, fmt: Optional[str], timeout: Optional[float],
                    options: Optional[Dict[str, str]] = None):
    rtsp = target.lower().startswith(('rtsp://', 'rtsps://'))
    options = {**({'rtsp_transport': 'tcp'} if rtsp else {}), **(options or {})}
    try:
        return av.open(target, format=fmt, options=options, timeout=timeout, metadata_errors='ignore')
    except av.error.FileNotFoundError as e:
        raise SourceNotFoundError(f'{name}: not found ({_reason(e)})') from None
    except av.error.InvalidDataError as e:
        raise VideoError(f'{name}: not a readable video ({_reason(e)}: a truncated or corrupt file, '
                         'or not a video)') from None
    except (av.error.FFmpegError, OSError) as e:
        raise VideoError(f'{name}: cannot open ({_reason(e)})') from None

