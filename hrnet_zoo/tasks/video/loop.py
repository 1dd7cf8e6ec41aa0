"""The frame loop every task's ``predict`` shares: source -> the task's step -> drawing and JSON
outputs, with a progress bar and the nothing-lost rules of :mod:`.sinks`."""
from __future__ import annotations

import time
import warnings
from collections import defaultdict
from contextlib import contextmanager
from typing import Any, Callable, Dict, Iterator, Optional, Tuple

from .sinks import JsonLinesWriter, close_all, open_sink
from .sources import Frame, Source, VideoWarning

__all__ = ['process_frames', 'Step', 'StageTimer', 'no_timer']

# A task's work on one frame: (its outputs for the JSON line, the drawing or None).
Step = Callable[[Frame], Tuple[Dict[str, Any], Any]]


class StageTimer:
    """Wall seconds spent in named stages of a frame loop (``seconds[name]``, ``calls[name]``).

    ``with timer('detect'): ...`` adds the block's time to a stage; :meth:`add` adds a measured
    time. Stages may nest (``'pose'`` containing ``'pose.network'``): a name with a dot is a part
    of the stage before the dot, and :meth:`shares` reports it within that stage. ``sync`` (e.g.
    ``torch.cuda.synchronize``) is called at each boundary so that asynchronous GPU work is
    charged to the stage that queued it."""

    def __init__(self, sync: Optional[Callable[[], None]] = None):
        self.seconds: Dict[str, float] = defaultdict(float)
        self.calls: Dict[str, int] = defaultdict(int)
        self.sync = sync

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        if self.sync is not None:
            self.sync()
        start = time.perf_counter()
        try:
            yield
        finally:
            if self.sync is not None:
                self.sync()
            self.add(name, time.perf_counter() - start)

    def add(self, name: str, seconds: float) -> None:
        self.seconds[name] += seconds
        self.calls[name] += 1


def process_frames(source: Source, step: Step, out: Optional[str] = None, json_path: Optional[str] = None,
                   fps: Optional[float] = None, progress: bool = True, out_suffix: str = '',
                   on_record: Optional[Callable[[Dict[str, Any]], None]] = None,
                   stages: Optional[StageTimer] = None) -> Dict[str, Any]:
    """Run ``step`` on every frame of ``source``; write its drawings to ``out`` (a video at the
    source's frame rate, a PNG or a folder of PNGs: :func:`~.sinks.open_sink`) and one JSON line
    per frame to ``json_path`` (``{"frame": index, "time": seconds, **outputs}``, flushed each
    line; with PNG drawings also ``"out"``: the frame's PNG); show a progress bar with frames/s
    on stderr (tqdm). ``on_record`` gets each frame's line as a dict (e.g. to print it or keep
    it); ``stages`` times ``decode`` (waiting for the next frame), ``step``, ``encode`` (writing
    the drawing) and ``json``.

    If anything stops the loop (an error, Ctrl-C), the outputs keep what was written
    (``<stem>.partial<ext>``) and the exception goes on; on a live source (webcam, stream) Ctrl-C
    is the way to stop and ends the run normally. Returns ``frames`` (processed), ``skipped``
    (undecodable, by the source), ``seconds``, ``fps`` (frames processed per second) and
    ``outputs`` (the files written).
    """
    from tqdm.auto import tqdm
    outputs = []
    try:
        if out is not None:
            outputs.append(open_sink(out, source, fps, suffix=out_suffix))
        lines = JsonLinesWriter(json_path) if json_path else None
    except BaseException:
        close_all(outputs, ok=False)
        raise
    drawings = outputs[0] if outputs else None
    outputs += [lines] if lines is not None else []
    timer = stages if stages is not None else no_timer
    bar = tqdm(total=source.num_frames, unit='frame', desc=source.name, disable=not progress, dynamic_ncols=True)
    count, start, ok = 0, time.perf_counter(), False
    try:
        frames = iter(source)
        while True:
            with timer('decode'):
                frame = next(frames, None)
            if frame is None:
                break
            with timer('step'):
                record, drawing = step(frame)
            line = {'frame': frame.index, 'time': round(frame.time, 6), **record}
            if drawings is not None and drawing is not None:
                with timer('encode'):
                    written = drawings.write(drawing, frame)
                if isinstance(written, str):  # a PNG per frame: say which
                    line.setdefault('out', written)
            if lines is not None:
                with timer('json'):
                    lines.write(line)
            if on_record is not None:
                on_record(line)
            count += 1
            bar.update()
        ok = True
    except KeyboardInterrupt:
        if not source.live:
            raise
        ok = True  # Ctrl-C ends a webcam / stream run: finish the outputs normally
    finally:
        bar.close()
        source.close()
        if ok:
            with timer('encode'):  # the encoder's delayed frames are flushed here
                close_all(outputs, ok=True)
        else:  # an exception is on its way: save what can be saved, without masking it
            try:
                close_all(outputs, ok=False)
            except Exception as e:
                warnings.warn(f'the partial outputs could not all be saved: {e}', VideoWarning)
    seconds = time.perf_counter() - start
    return {'frames': count, 'skipped': source.skipped, 'seconds': round(seconds, 3),
            'fps': round(count / seconds, 2) if seconds > 0 else None,
            'outputs': [o.result for o in outputs if o.result is not None]}


@contextmanager
def no_timer(name: str) -> Iterator[None]:
    """A stage timer that times nothing (no :class:`StageTimer` asked for)."""
    yield
