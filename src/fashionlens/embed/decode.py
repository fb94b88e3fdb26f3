"""Photos decoded by a small thread pool while the encoder runs: PIL releases the GIL in JPEG
decoding and resizing, so on 2 cores the next photos are ready when the current batch is done."""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from fashionlens.catalog.images import ImageError, open_image

# 2 threads kept the encoder fed on 2 cores; more only queue behind it (docs/benchmarks.md, CPU speed)
WORKERS = min(2, os.cpu_count() or 1)
GROUP = 256  # photos per encoder call: large enough to calibrate an int8 encoder on the first group
MIN_GROUP = 32  # the fewest photos int8 calibration takes (encoders.onnx_runtime.MIN_CALIBRATION)


def _load(load: Callable[[Any], Any], src: Any) -> Any:
    try:
        return load(src)
    except ImageError as e:  # reported by the consumer, in item order, like a sequential decode
        return e


def decoded(sources: Sequence[Any], load: Callable[[Any], Any] = open_image, workers: int = WORKERS,
            ahead: int = 2 * GROUP) -> Iterator[Any]:
    """`load(src)` of each source, in order, computed up to `ahead` items ahead by `workers` threads.
    A source that fails with `ImageError` yields that error instead (other errors propagate)."""
    if workers <= 1 or len(sources) <= 1:
        yield from (_load(load, s) for s in sources)
        return
    with ThreadPoolExecutor(workers, thread_name_prefix="fashionlens-decode") as pool:
        pending: deque[Future[Any]] = deque()
        it = iter(sources)
        try:
            for s in it:
                pending.append(pool.submit(_load, load, s))
                if len(pending) >= ahead:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:  # the consumer stopped early (or failed): drop what is queued, do not decode it
            for f in pending:
                f.cancel()


def decoded_groups(sources: Sequence[Any], load: Callable[[Any], Any] = open_image, group: int = GROUP,
                   workers: int = WORKERS) -> Iterator[tuple[list[int], list[Any], dict[int, ImageError]]]:
    """Consecutive groups of up to `group` sources as (positions decoded, their images,
    {position: error} of those that failed), positions counted from 0 over all `sources`; the pool
    decodes the next group while the caller encodes this one."""
    rows: list[int] = []
    images: list[Any] = []
    errors: dict[int, ImageError] = {}
    for i, out in enumerate(decoded(sources, load, workers)):
        if isinstance(out, ImageError):
            errors[i] = out
        else:
            rows.append(i)
            images.append(out)
        if (i + 1) % group == 0 or i + 1 == len(sources):
            yield rows, images, errors
            rows, images, errors = [], [], {}
