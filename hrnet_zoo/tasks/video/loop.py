"""The frame loop every task's ``predict`` shares: source -> the task's step -> drawing and JSON
outputs, with a progress bar and the nothing-lost rules of :mod:`.sinks`."""
from __future__ import annotations

import time
import warnings
from typing import Any, Callable, Dict, Optional, Tuple

from .sinks import JsonLinesWriter, close_all, open_sink
from .sources import Frame, Source, VideoWarning

__all__ = ['process_frames', 'Step']

# A task's work on one frame: (its outputs for the JSON line, the drawing or None).
Step = Callable[[Frame], Tuple[Dict[str, Any], Any]]


def process_frames(source: Source, step: Step, out: Optional[str] = None, json_path: Optional[str] = None,
                   fps: Optional[float] = None, progress: bool = True, out_suffix: str = '') -> Dict[str, Any]:
    """Run ``step`` on every frame of ``source``; write its drawings to ``out`` (a video at the
    source's frame rate, a PNG or a folder of PNGs: :func:`~.sinks.open_sink`) and one JSON line
    per frame to ``json_path`` (``{"frame": index, "time": seconds, **outputs}``, flushed each
    line); show a progress bar with frames/s on stderr (tqdm).

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
    bar = tqdm(total=source.num_frames, unit='frame', desc=source.name, disable=not progress, dynamic_ncols=True)
    count, start, ok = 0, time.perf_counter(), False
    try:
        for frame in source:
            record, drawing = step(frame)
            if drawings is not None and drawing is not None:
                drawings.write(drawing, frame)
            if lines is not None:
                lines.write({'frame': frame.index, 'time': round(frame.time, 6), **record})
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
