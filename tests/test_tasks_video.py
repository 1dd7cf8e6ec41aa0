"""hrnet_zoo.tasks.video: sources (videos, GIFs, folders, images, webcams, URLs), the annotated-video
and JSON-lines outputs, the frame loop, and every kind of bad input. Every clip is made here with
PyAV (a few 64x48 frames), so the module runs in seconds."""
from __future__ import annotations

import json
import os
import sys
import warnings
from fractions import Fraction

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import needs
from hrnet_zoo.tasks import video as V
from hrnet_zoo.tasks.video import (Frame, Source, SourceNotFoundError, VideoError, VideoWarning, VideoWriter,
                                   open_source, process_frames)

needs_av = needs('av')
W, H = 64, 48


def pattern(i: int, w: int = W, h: int = H) -> np.ndarray:
    """Frame ``i``: grey level 20 + 30 i with a white bar over the first 4 (i + 1) columns, so the
    order of frames can be read back from their means (a lossy codec keeps them apart)."""
    a = np.full((h, w, 3), 20 + 30 * i, np.uint8)
    a[:, :4 * (i + 1)] = 255
    return a


def make_video(path, n=6, fps=5, codec='libx264', w=W, h=H, rotation=None):
    import av
    with av.open(str(path), 'w') as c:
        s = c.add_stream(codec, rate=Fraction(fps))
        s.width, s.height, s.pix_fmt = w, h, 'yuvj420p' if codec == 'mjpeg' else 'yuv420p'
        if rotation is not None:
            s.set_display_rotation(rotation)
        for i in range(n):
            for p in s.encode(av.VideoFrame.from_ndarray(pattern(i, w, h), format='rgb24')):
                c.mux(p)
        for p in s.encode(None):
            c.mux(p)
    return str(path)


def bar_width(image: torch.Tensor) -> int:
    """Columns of the white bar in the middle row (after lossy coding: > 200)."""
    return int((image[:, image.shape[1] // 2].float().mean(0) > 200).sum())


def read_all(path):
    with open_source(path) as s:
        return s, list(s)


# ---------------------------------------------------------------------------------------------
# sources

@needs_av
def test_video_file_frames_carry_index_time_and_the_stream_facts(tmp_path):
    src, frames = read_all(make_video(tmp_path / 'clip.mp4', n=6, fps=5))
    assert (src.kind, src.fps, src.width, src.height, src.num_frames, src.skipped) == ('video', 5.0, W, H, 6, 0)
    assert [f.index for f in frames] == list(range(6))
    assert [f.time for f in frames] == pytest.approx([i / 5 for i in range(6)])  # pts * time_base, 0.2 s apart
    assert frames[3].name == f'{tmp_path / "clip.mp4"}#00003'
    assert all(f.image.dtype == torch.uint8 and f.image.shape == (3, H, W) for f in frames)
    assert [bar_width(f.image) for f in frames] == [4 * (i + 1) for i in range(6)]  # in order, none lost


@needs_av
@pytest.mark.parametrize('suffix, codec, count', [('.mkv', 'libx264', None), ('.mov', 'libx264', 4),
                                                  ('.avi', 'mpeg4', 4), ('.webm', 'libvpx-vp9', None)])
def test_every_container_reads(tmp_path, suffix, codec, count):
    src, frames = read_all(make_video(tmp_path / f'clip{suffix}', n=4, codec=codec))
    assert len(frames) == 4 and src.num_frames == count  # mkv / webm headers carry no frame count
    assert [f.time for f in frames] == pytest.approx([0, 0.2, 0.4, 0.6])


@needs_av
def test_display_rotation_is_applied(tmp_path):
    import av
    if not hasattr(av.video.stream.VideoStream, 'set_display_rotation'):
        pytest.skip(f'PyAV {av.__version__} cannot write a display rotation')
    # rotation 90 = 90 degrees counter-clockwise (FFmpeg's display matrix): the bar on the left of
    # the 64x48 frame ends up along the bottom of a 48x64 frame
    src, frames = read_all(make_video(tmp_path / 'rot.mp4', n=2, rotation=90))
    img = frames[1].image
    assert (src.width, src.height) == (H, W) and img.shape == (3, W, H)
    assert img[:, -4:].float().mean() > 200 and img[:, :4].float().mean() < 100


def test_folder_in_natural_order_at_a_nominal_rate(tmp_path):
    for i in (10, 2, 1):
        Image.fromarray(pattern(i % 7)).save(tmp_path / f'f{i}.png')
    (tmp_path / 'notes.txt').write_text('not an image')
    src, frames = read_all(str(tmp_path))
    assert [os.path.basename(f.name) for f in frames] == ['f1.png', 'f2.png', 'f10.png']
    assert (src.kind, src.fps, src.num_frames, src.width, src.height) == ('folder', V.FOLDER_FPS, 3, W, H)
    assert [f.time for f in frames] == pytest.approx([0, 1 / 25, 2 / 25])  # index / 25
    assert torch.equal(frames[0].image, torch.from_numpy(pattern(1)).permute(2, 0, 1))
    with open_source(str(tmp_path), fps=10) as s:
        assert [f.time for f in s] == pytest.approx([0, 0.1, 0.2])


def test_single_image_turned_by_its_exif_orientation(tmp_path):
    Image.fromarray(pattern(2)).save(tmp_path / 'photo.png')
    src, frames = read_all(str(tmp_path / 'photo.png'))
    assert (src.kind, src.num_frames, len(frames), frames[0].name) == ('image', 1, 1, str(tmp_path / 'photo.png'))
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation 6: shown turned 90 degrees clockwise (a phone held upright)
    Image.fromarray(pattern(2)).save(tmp_path / 'phone.jpg', exif=exif, quality=95)
    src, frames = read_all(str(tmp_path / 'phone.jpg'))
    img = frames[0].image  # 48x64 as shown; the bar on the left of the stored image is now on top
    assert (src.width, src.height) == (H, W) and img.shape == (3, W, H)
    assert img[:, :8].float().mean() > 200 and img[:, -8:].float().mean() < 120


def make_gif(path):
    ims = [Image.fromarray(pattern(i)) for i in range(4)]
    ims[0].save(path, save_all=True, append_images=ims[1:], duration=[100, 200, 100, 50], loop=0)
    return str(path)


@needs_av
def test_gif_frames_keep_their_delays(tmp_path):
    src, frames = read_all(make_gif(tmp_path / 'anim.gif'))
    assert src.kind == 'gif' and len(frames) == 4
    assert [f.time for f in frames] == pytest.approx([0, 0.1, 0.3, 0.4])  # delays 100, 200, 100 ms
    assert [bar_width(f.image) for f in frames] == [4, 8, 12, 16]


def test_gif_without_pyav_falls_back_to_torchvision(tmp_path, monkeypatch):
    from hrnet_zoo.tasks.video import sources
    monkeypatch.setattr(sources, '_have_av', lambda: False)
    src, frames = read_all(make_gif(tmp_path / 'anim.gif'))
    assert type(src).__name__ == 'GifSource' and len(frames) == 4
    assert [f.time for f in frames] == pytest.approx([0, 0.1, 0.2, 0.3])  # nominal 10 frames/s
    assert [bar_width(f.image) for f in frames] == [4, 8, 12, 16]


@needs_av
def test_a_source_is_read_once(tmp_path):
    with open_source(make_video(tmp_path / 'clip.mp4', n=2)) as s:
        assert len(list(s)) == 2
        with pytest.raises(VideoError, match='read once'):
            iter(s)


# ---------------------------------------------------------------------------------------------
# bad input: one-line VideoError naming the source, or a skipped frame with a warning

def one_line(error: pytest.ExceptionInfo, name: str) -> str:
    msg = str(error.value)
    assert '\n' not in msg and name in msg, msg
    return msg


def test_missing_path_and_empty_folder(tmp_path):
    with pytest.raises(SourceNotFoundError) as e:
        open_source(tmp_path / 'nope.mp4')
    assert isinstance(e.value, FileNotFoundError) and isinstance(e.value, VideoError)
    one_line(e, 'nope.mp4')
    (tmp_path / 'empty').mkdir()
    with pytest.raises(VideoError, match='no images') as e:
        open_source(tmp_path / 'empty')
    one_line(e, 'empty')


def test_unreadable_images(tmp_path):
    (tmp_path / 'bad.png').write_bytes(b'not a png at all')
    with pytest.raises(VideoError, match='not a readable image') as e:
        list(open_source(tmp_path / 'bad.png'))
    one_line(e, 'bad.png')
    folder = tmp_path / 'frames'
    folder.mkdir()
    for i in range(3):
        Image.fromarray(pattern(i)).save(folder / f'{i}.png')
    (folder / '1.png').write_bytes(b'garbage')  # the middle frame
    with pytest.warns(VideoWarning, match='1.png'):
        src, frames = read_all(str(folder))
    assert [f.index for f in frames] == [0, 2] and src.skipped == 1  # the index still counts it
    (folder / '0.png').write_bytes(b'garbage')  # the first one too: the size comes from 2.png
    with pytest.warns(VideoWarning) as caught:
        src, frames = read_all(str(folder))
    assert [str(w.message).split(': ')[1] for w in caught] == ['skipped undecodable image 0.png',
                                                               'skipped undecodable image 1.png']
    assert [f.index for f in frames] == [2] and src.skipped == 2 and (src.width, src.height) == (W, H)
    (folder / '2.png').write_bytes(b'garbage')
    with pytest.warns(VideoWarning), pytest.raises(VideoError, match='none of its 3 images could be read'):
        open_source(folder)


@needs_av
def test_truncated_and_junk_files(tmp_path):
    data = open(make_video(tmp_path / 'clip.mp4', n=6), 'rb').read()
    (tmp_path / 'cut.mp4').write_bytes(data[:len(data) // 2])  # moov (the index) is at the end: gone
    with pytest.raises(VideoError, match='truncated or corrupt') as e:
        open_source(tmp_path / 'cut.mp4')
    one_line(e, 'cut.mp4')
    (tmp_path / 'notes.mp4').write_text('hello ' * 100)
    with pytest.raises(VideoError) as e:
        open_source(tmp_path / 'notes.mp4')
    one_line(e, 'notes.mp4')


@needs_av
def test_truncated_file_with_its_index_first(tmp_path):
    import av
    path = tmp_path / 'fast.mp4'
    with av.open(str(path), 'w', options={'movflags': 'faststart'}) as c:  # moov first: the data is cut
        s = c.add_stream('mjpeg', rate=5)
        s.width, s.height, s.pix_fmt = W, H, 'yuvj420p'
        for i in range(10):
            for p in s.encode(av.VideoFrame.from_ndarray(pattern(i % 7), format='rgb24')):
                c.mux(p)
        for p in s.encode(None):
            c.mux(p)
    data = path.read_bytes()
    (tmp_path / 'cut.mp4').write_bytes(data[:len(data) * 6 // 10])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        src, frames = read_all(str(tmp_path / 'cut.mp4'))
    assert src.num_frames == 10 and 0 < len(frames) + src.skipped < 10
    assert any('truncated' in str(w.message) and 'cut.mp4' in str(w.message) for w in caught)


@needs_av
def test_file_with_no_video_stream(tmp_path):
    import av
    path = tmp_path / 'speech.mp4'
    with av.open(str(path), 'w') as c:
        s = c.add_stream('aac', rate=8000)
        s.layout = 'mono'
        for i in range(4):
            f = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format='fltp', layout='mono')
            f.sample_rate, f.pts = 8000, i * 1024
            for p in s.encode(f):
                c.mux(p)
        for p in s.encode(None):
            c.mux(p)
    with pytest.raises(VideoError, match='no video stream.*audio') as e:
        open_source(path)
    one_line(e, 'speech.mp4')


@needs_av
def test_undecodable_frame_is_skipped_with_a_warning(tmp_path):
    import av
    path = make_video(tmp_path / 'clip.mkv', n=6, codec='mjpeg')  # intra-only: one packet per frame
    with av.open(path) as c:
        where = [(p.pos, p.size) for p in c.demux(video=0) if p.size]
    pos, size = where[2]
    data = bytearray(open(path, 'rb').read())
    data[pos + size // 4:pos + 3 * size // 4] = b'\x5a' * (3 * size // 4 - size // 4)  # garble frame 2's JPEG
    (tmp_path / 'bad.mkv').write_bytes(bytes(data))
    with pytest.warns(VideoWarning, match=r'bad.mkv: skipped undecodable frame 2'):
        src, frames = read_all(str(tmp_path / 'bad.mkv'))
    assert [f.index for f in frames] == [0, 1, 3, 4, 5] and src.skipped == 1
    assert [bar_width(f.image) for f in frames] == [4, 8, 16, 20, 24]  # the others are intact


@needs_av
def test_unsupported_codec(tmp_path):
    data = open(make_video(tmp_path / 'clip.avi', n=3, codec='mpeg4'), 'rb').read()
    assert data.count(b'FMP4') == 2  # the avi fourcc of FFmpeg's MPEG-4 part 2
    (tmp_path / 'odd.avi').write_bytes(data.replace(b'FMP4', b'ZZZZ'))  # a codec no FFmpeg knows
    with pytest.raises(VideoError, match='not supported') as e:
        open_source(tmp_path / 'odd.avi')
    one_line(e, 'odd.avi')


@needs_av
@pytest.mark.skipif(not sys.platform.startswith('linux'), reason='webcam indices map to /dev/videoN on Linux')
def test_webcam_that_is_not_there():
    with pytest.raises(SourceNotFoundError, match=r'webcam 99: /dev/video99 is not there') as e:
        open_source(99)
    one_line(e, 'webcam 99')
    with pytest.raises(SourceNotFoundError, match='webcam 99'):
        open_source('99')


@needs_av
def test_stream_url_that_refuses():
    import socket
    with socket.socket() as s:  # a port nothing listens on
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    url = f'http://127.0.0.1:{port}/live.mp4'
    with pytest.raises(VideoError, match='cannot open') as e:
        open_source(url, timeout=5)
    one_line(e, url)


def test_without_pyav_a_video_says_what_to_install(tmp_path, monkeypatch):
    from hrnet_zoo.tasks.video import sources
    monkeypatch.setitem(sys.modules, 'av', None)  # import av -> ImportError
    (tmp_path / 'clip.mp4').write_bytes(b'\0' * 100)
    with pytest.raises(VideoError, match=r"clip.mp4: video input needs PyAV \(pip install 'hrnet-zoo\[video\]'\)"):
        sources.open_source(tmp_path / 'clip.mp4')
    with pytest.raises(VideoError, match=r"out.mp4: video output needs PyAV .* or write PNGs"):
        V.VideoWriter(str(tmp_path / 'out.mp4'), 25)


# ---------------------------------------------------------------------------------------------
# outputs

@needs_av
def test_round_trip_frame_count_rate_and_timestamps(tmp_path):
    fps = Fraction(30000, 1001)  # NTSC: 1001 / 30000 s per frame = 3003 ticks of the 90 kHz clock
    with VideoWriter(str(tmp_path / 'out.mp4'), fps) as w:
        for i in range(7):
            w.write(torch.from_numpy(pattern(i)).permute(2, 0, 1))
    assert w.result == str(tmp_path / 'out.mp4') and w.codec == V.choose_codec('x.mp4')
    src, frames = read_all(w.result)
    assert (src.num_frames, len(frames), src.width, src.height) == (7, 7, W, H)
    assert src.fps == pytest.approx(30000 / 1001)
    assert [f.time for f in frames] == pytest.approx([i * 1001 / 30000 for i in range(7)], abs=1e-4)
    assert [bar_width(f.image) for f in frames] == [4 * (i + 1) for i in range(7)]
    assert [p.name for p in tmp_path.iterdir()] == ['out.mp4']  # no temporary file left


def test_h264_is_chosen_when_the_wheel_has_it():
    av = pytest.importorskip('av')
    if 'libx264' in av.codecs_available:  # PyAV's wheels carry it
        assert V.choose_codec('a.mp4') == V.choose_codec('a.mkv') == V.choose_codec('a.mov') == 'libx264'
    assert V.choose_codec('a.avi') in V.VIDEO_ENCODERS['.avi']
    assert V.choose_codec('a.webm') in V.VIDEO_ENCODERS['.webm']
    with pytest.raises(VideoError, match='cannot write .xyz'):
        V.choose_codec('a.xyz')


@needs_av
def test_writer_keeps_source_timing_and_even_sizes(tmp_path):
    times = [0.0, 0.1, 0.3, 0.4]  # a variable-rate source (a GIF, a slow webcam)
    with VideoWriter(str(tmp_path / 'vfr.mkv'), 10) as w:
        for i, t in enumerate(times):
            w.write(torch.from_numpy(pattern(i, 65, 49)).permute(2, 0, 1), Frame(torch.zeros(0), i, 5.0 + t, 'x'))
    assert w.size == (64, 48)  # 65x49 -> even sizes for yuv420p, by dropping the last column / row
    src, frames = read_all(w.result)
    assert (src.width, src.height) == (64, 48)
    assert [f.time for f in frames] == pytest.approx(times, abs=1e-3)  # relative to the first frame
    with VideoWriter(str(tmp_path / 'sizes.mp4'), 5) as w:
        w.write(pattern(0))
        w.write(np.full((24, 32, 3), 200, np.uint8))  # another size: scaled to the first frame's 64x48
    frames = read_all(w.result)[1]
    assert frames[1].image.shape == (3, H, W) and abs(frames[1].image.float().mean() - 200) < 3


@needs_av
def test_process_frames_writes_video_and_json_lines(tmp_path):
    src = open_source(make_video(tmp_path / 'in.mp4', n=5, fps=5))

    def step(frame):
        return {'bar': bar_width(frame.image), 'score': np.float32(0.5)}, frame.image

    summary = process_frames(src, step, out=str(tmp_path / 'out.mp4'), json_path=str(tmp_path / 'out.jsonl'),
                             progress=False)
    assert summary['frames'] == 5 and summary['skipped'] == 0
    assert summary['outputs'] == [str(tmp_path / 'out.mp4'), str(tmp_path / 'out.jsonl')]
    lines = [json.loads(line) for line in open(tmp_path / 'out.jsonl')]
    assert lines[2] == {'frame': 2, 'time': 0.4, 'bar': 12, 'score': 0.5}
    back, frames = read_all(str(tmp_path / 'out.mp4'))
    assert len(frames) == 5 and back.fps == 5.0  # the source's rate


def test_image_outputs_for_image_inputs(tmp_path):
    Image.fromarray(pattern(1)).save(tmp_path / 'photo.jpg')
    summary = process_frames(open_source(tmp_path / 'photo.jpg'), lambda f: ({}, f.image),
                             out=str(tmp_path / 'drawn.png'), progress=False)
    assert summary['outputs'] == [str(tmp_path / 'drawn.png')] and Image.open(tmp_path / 'drawn.png').size == (W, H)
    folder = tmp_path / 'frames'
    folder.mkdir()
    for i in range(2):
        Image.fromarray(pattern(i)).save(folder / f'{i}.png')
    process_frames(open_source(folder), lambda f: ({}, f.image), out=str(tmp_path / 'drawn'), out_suffix='_pose',
                   progress=False)
    assert sorted(os.listdir(tmp_path / 'drawn')) == ['0_pose.png', '1_pose.png']
    with pytest.raises(VideoError, match='is one image but'):
        V.open_sink(str(tmp_path / 'one.png'), open_source(folder))
    assert V.ImageWriter.file_name(Frame(torch.zeros(0), 7, 0.0, '/a/clip.mp4#00007')) == 'clip_00007'


@needs_av
def test_interrupted_writer_keeps_the_frames_and_the_good_target(tmp_path):
    target = str(tmp_path / 'result.mp4')
    with VideoWriter(target, 5) as w:  # an earlier complete run: 5 frames
        for i in range(5):
            w.write(pattern(i))
    with pytest.warns(VideoWarning, match=r'3 frames written so far are in .*result.partial.mp4'):
        with pytest.raises(RuntimeError, match='boom'):
            with VideoWriter(target, 5) as w:
                for i in range(5):
                    if i == 3:
                        raise RuntimeError('boom')
                    w.write(pattern(i))
    assert len(read_all(target)[1]) == 5  # the good target is untouched
    src, frames = read_all(str(tmp_path / 'result.partial.mp4'))
    assert src.num_frames == 3 and len(frames) == 3  # closed and readable, the right count
    assert sorted(p.name for p in tmp_path.iterdir()) == ['result.mp4', 'result.partial.mp4']


@needs_av
@pytest.mark.parametrize('stop', [RuntimeError, KeyboardInterrupt])
def test_process_frames_stopped_midway(tmp_path, stop):
    src = open_source(make_video(tmp_path / 'in.mp4', n=6))

    def step(frame):
        if frame.index == 4:
            raise stop('stop')
        return {'i': frame.index}, frame.image

    with pytest.warns(VideoWarning, match='partial'), pytest.raises(stop):
        process_frames(src, step, out=str(tmp_path / 'out.mp4'), json_path=str(tmp_path / 'out.jsonl'),
                       progress=False)
    assert not (tmp_path / 'out.mp4').exists() and not (tmp_path / 'out.jsonl').exists()
    assert len(read_all(str(tmp_path / 'out.partial.mp4'))[1]) == 4
    assert [json.loads(x)['frame'] for x in open(tmp_path / 'out.partial.jsonl')] == [0, 1, 2, 3]
    assert not [p for p in tmp_path.iterdir() if '.tmp-' in p.name]


class FakeCamera(Source):
    """A live source that yields 3 frames and then gets Ctrl-C."""
    kind, live = 'live', True

    def __init__(self):
        super().__init__('webcam 0', 30.0, W, H, None)

    def _frames(self):
        for i in range(3):
            yield Frame(torch.from_numpy(pattern(i)).permute(2, 0, 1), i, i / 30, f'webcam 0#{i:05d}')
        raise KeyboardInterrupt


@needs_av
def test_ctrl_c_ends_a_live_run_normally(tmp_path):
    summary = process_frames(FakeCamera(), lambda f: ({}, f.image), out=str(tmp_path / 'cam.mp4'), progress=False)
    assert summary['frames'] == 3 and summary['outputs'] == [str(tmp_path / 'cam.mp4')]
    assert len(read_all(str(tmp_path / 'cam.mp4'))[1]) == 3


def test_json_lines_are_flushed_line_by_line(tmp_path):
    w = V.JsonLinesWriter(str(tmp_path / 'a.jsonl'))
    w.write({'frame': 0, 'xy': np.array([1.5, 2.0]), 't': torch.tensor([3])})
    tmp = list(tmp_path.iterdir())  # the temporary file beside the target
    assert len(tmp) == 1 and tmp[0].read_text() == '{"frame": 0, "xy": [1.5, 2.0], "t": [3]}\n'  # on disk now
    assert w.close() == str(tmp_path / 'a.jsonl') and [p.name for p in tmp_path.iterdir()] == ['a.jsonl']


@needs_av
@pytest.mark.skipif(not hasattr(os, 'fork'), reason='needs fork')
def test_hard_kill_leaves_no_broken_target(tmp_path):
    import signal
    target = tmp_path / 'result.mp4'
    pid = os.fork()
    if pid == 0:  # the child writes 3 frames and is killed before it closes the writer
        try:
            w = VideoWriter(str(target), 5)
            for i in range(3):
                w.write(pattern(i))
            os.kill(os.getpid(), signal.SIGKILL)
        finally:
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    names = [p.name for p in tmp_path.iterdir()]
    assert not target.exists() and len(names) == 1 and names[0].startswith('result.tmp-'), names
