"""Near-duplicates that survive a mirror, a crop or zoom of up to 15 %, a shift and an exposure change.

A camera moving through a pipe films the same joint again a little closer a second later, and datasets
hold mirrored or re-cropped copies of frames. Perceptual hashes of whole frames miss all of these. Here
two frames are near-duplicates when one can be **aligned** onto the other: after the best mirror, scale
(0.85 to 1.18) and shift (up to about 8 % of the frame), the band-passed central windows of the two
correlate at ``min_similarity`` or more. Normalized cross-correlation cancels brightness, contrast and
exposure changes; the band-pass (a difference of Gaussians) drops the dark far end and the lamp's
fall-off that every pipe frame shares, so only the frame's own structure counts.

Cost. Every frame is reduced once to a 64x64 grey thumbnail (``thumbnail``, 4 KB kept per frame).
Aligning every pair would cost N^2; instead a nearest-neighbour index (faiss) holds a coarse key (8x8) of
every frame's central window and of its mirror, each frame asks it with the keys of the 45 windows where
a duplicate's centre could lie (``WINDOWS``), and only its ``candidates`` nearest frames are aligned and
scored. The index is exact up to ``EXACT_UP_TO`` frames and a graph index (HNSW) beyond, so the whole
search grows as about N log N.

Measured on synthetic frames, including frames of one pipe run a metre apart as the look-alikes that
must stay apart: ``bench/dedupe.py`` (docs/data.md).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np

#: Side of the grey thumbnail every frame is reduced to.
THUMB = 64
#: Share of a frame's width and height its central window covers: a crop of up to 15 % keeps it whole.
CENTRAL = 0.7
#: Where a duplicate's central window may lie in a frame: scales (a crop or zoom of this frame, or this
#: frame a crop of the other) times offsets of its centre, as shares of the frame.
WINDOW_SCALES = (0.85, 0.92, 1.0, 1.09, 1.18)
WINDOW_OFFSETS = (-0.06, 0.0, 0.06)
WINDOWS = tuple((CENTRAL * s, dx, dy) for s in WINDOW_SCALES for dx in WINDOW_OFFSETS for dy in WINDOW_OFFSETS)
#: Coarse keys (the index) and fine windows (the alignment score), in samples per side.
KEY_SIDE, FINE_SIDE = 8, 16
#: Band-pass of the thumbnails (Gaussian sigmas in thumbnail pixels) for the keys and for the score.
KEY_BAND, FINE_BAND = (2.0, 6.0), (1.0, 4.0)
#: Refinement of the alignment around the window the index matched: two passes, each a 3x3x3 grid of
#: scale factors and centre shifts (shares of the frame), the second around the first's best.
REFINE_STEPS = ((0.04, 0.02), (0.02, 0.01))
#: The default ``min_similarity``: true copies score 0.93 or more, distinct frames of look-alike pipes
#: (rings in the same place) up to 0.83 (``bench/dedupe.py``, docs/data.md).
MIN_SIMILARITY = 0.88
#: Up to this many frames the index is exact (brute force); beyond, a graph index (HNSW).
EXACT_UP_TO = 4096


def thumbnail(image: np.ndarray) -> np.ndarray:
    """The ``THUMB`` x ``THUMB`` grey thumbnail (uint8) of an RGB or grey uint8 frame of any size."""
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image
    return cv2.resize(grey, (THUMB, THUMB), interpolation=cv2.INTER_AREA)


def _band(thumb: np.ndarray, sigmas: tuple[float, float], mirror: bool = False) -> np.ndarray:
    t = thumb.astype(np.float32)
    if mirror:
        t = np.ascontiguousarray(t[:, ::-1])
    return cv2.GaussianBlur(t, (0, 0), sigmas[0]) - cv2.GaussianBlur(t, (0, 0), sigmas[1])


def _window_maps(windows: Sequence[tuple[float, float, float]] | np.ndarray, side: int) -> tuple[np.ndarray, np.ndarray]:
    """``cv2.remap`` coordinates that sample each window (size as a share of the frame, centre offset) on a
    ``side`` x ``side`` grid, stacked: one remap call samples every window of a frame."""
    windows = np.asarray(windows, np.float32).reshape(-1, 3)
    grid = (np.arange(side, dtype=np.float32) + 0.5) / side - 0.5  # -0.5 .. 0.5 across a window
    size, dx, dy = (windows[:, k, None] for k in range(3))
    x = (0.5 + dx + size * grid[None, :]) * THUMB - 0.5  # windows x side
    y = (0.5 + dy + size * grid[None, :]) * THUMB - 0.5
    map_x = np.broadcast_to(x[:, None, :], (len(windows), side, side)).reshape(-1, side)
    map_y = np.broadcast_to(y[:, :, None], (len(windows), side, side)).reshape(-1, side)
    return np.ascontiguousarray(map_x), np.ascontiguousarray(map_y)


def _sample(band: np.ndarray, maps: tuple[np.ndarray, np.ndarray], side: int) -> np.ndarray:
    """Windows of a band-passed thumbnail as rows of zero mean and unit length (``windows x side**2``)."""
    rows = cv2.remap(band, maps[0], maps[1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT).reshape(-1, side * side)
    rows = rows - rows.mean(axis=1, keepdims=True)
    return rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-6)


_CENTRAL_KEY = _window_maps([(CENTRAL, 0.0, 0.0)], KEY_SIDE)
_WINDOW_KEYS = _window_maps(WINDOWS, KEY_SIDE)
_CENTRAL_FINE = _window_maps([(CENTRAL, 0.0, 0.0)], FINE_SIDE)


def _index(keys: np.ndarray):
    """A nearest-neighbour index of unit rows (L2 distance): exact for small sets, HNSW for large ones."""
    import faiss  # noqa: PLC0415 - loaded only when frames are deduplicated

    if len(keys) <= EXACT_UP_TO:
        index = faiss.IndexFlatL2(keys.shape[1])
    else:
        index = faiss.IndexHNSWFlat(keys.shape[1], 32)
        index.hnsw.efConstruction, index.hnsw.efSearch = 80, 64
    index.add(np.ascontiguousarray(keys, np.float32))
    return index


def candidate_pairs(thumbnails: Sequence[np.ndarray], candidates: int = 3, batch: int = 2048) -> list[tuple[int, int, int, bool]]:
    """For every frame ``a``, its ``candidates`` nearest other frames ``b`` by the coarse keys: ``(a, b,
    window, mirrored)``, where ``window`` (an index of ``WINDOWS``) of ``a`` matched the central window of
    ``b`` (mirrored or not)."""
    n = len(thumbnails)
    if n < 2:
        return []
    central = np.stack([_sample(_band(t, KEY_BAND), _CENTRAL_KEY, KEY_SIDE)[0] for t in thumbnails])
    mirrored = np.stack([_sample(_band(t, KEY_BAND, mirror=True), _CENTRAL_KEY, KEY_SIDE)[0] for t in thumbnails])
    index = _index(np.concatenate([central, mirrored]))
    found = []
    for start in range(0, n, batch):
        frames = range(start, min(n, start + batch))
        queries = np.concatenate([_sample(_band(thumbnails[a], KEY_BAND), _WINDOW_KEYS, KEY_SIDE) for a in frames])
        distances, hits = index.search(queries, 2)
        per_frame = len(WINDOWS) * 2
        distances, hits = distances.reshape(len(frames), per_frame), hits.reshape(len(frames), per_frame)
        for row, a in enumerate(frames):
            order = np.argsort(distances[row], kind="stable")
            chosen = {}
            for k in order:
                hit = int(hits[row, k])
                b = hit % n
                if hit < 0 or b == a or b in chosen:
                    continue
                chosen[b] = (k // 2, hit >= n)
                if len(chosen) == candidates:
                    break
            found += [(a, b, window, flip) for b, (window, flip) in chosen.items()]
    return found


#: The 27 relative steps of one refinement pass: scale factor and centre shift in x and y.
_STEPS = np.array([(ds, sx, sy) for ds in (-1, 0, 1) for sx in (-1, 0, 1) for sy in (-1, 0, 1)], np.float32)


def _targets(thumb: np.ndarray) -> np.ndarray:
    """The band-passed central window of a frame and of its mirror (2 x ``FINE_SIDE**2``): what the other
    frame of a pair is aligned to."""
    return np.concatenate([_sample(_band(thumb, FINE_BAND, mirror=m), _CENTRAL_FINE, FINE_SIDE) for m in (False, True)])


def _aligned_score(band_a: np.ndarray, target: np.ndarray, window: tuple[float, float, float]) -> float:
    """Best correlation of ``target`` with the windows of ``band_a`` near ``window``, refined in passes."""
    best_window, best = np.asarray(window, np.float32), -1.0
    for scale_step, shift_step in REFINE_STEPS:
        tried = np.stack([best_window[0] * (1 + _STEPS[:, 0] * scale_step), best_window[1] + _STEPS[:, 1] * shift_step,
                          best_window[2] + _STEPS[:, 2] * shift_step], axis=1)  # fmt: skip
        scores = _sample(band_a, _window_maps(tried, FINE_SIDE), FINE_SIDE) @ target
        k = int(np.argmax(scores))
        if scores[k] > best:
            best_window, best = tried[k], float(scores[k])
    return best


def alignment_score(thumb_a: np.ndarray, thumb_b: np.ndarray, window: tuple[float, float, float], mirrored: bool) -> float:
    """Normalized cross-correlation of the band-passed central window of ``b`` (mirrored or not) with the
    best-aligned window of ``a`` near ``window`` (size, centre offset): 1 for the same scene."""
    return _aligned_score(_band(thumb_a, FINE_BAND), _targets(thumb_b)[int(mirrored)], window)


def near_duplicate_pairs(thumbnails: Sequence[np.ndarray], min_similarity: float = MIN_SIMILARITY, candidates: int = 3,
                         n_jobs: int = 1) -> list[tuple[int, int, float]]:  # fmt: skip
    """``(i, j, score)`` with ``i < j`` for every pair of frames whose alignment score is at least
    ``min_similarity`` (each pair once, with its best score over the two directions it was found in)."""
    by_frame: dict[int, list[tuple[int, int, bool]]] = {}
    for a, b, window, mirrored in candidate_pairs(thumbnails, candidates):
        by_frame.setdefault(a, []).append((b, window, mirrored))
    with ThreadPoolExecutor(max_workers=max(1, n_jobs)) as pool:  # OpenCV and numpy release the GIL
        targets = list(pool.map(_targets, thumbnails, chunksize=256))

        def scores_of(a):
            band_a = _band(thumbnails[a], FINE_BAND)
            return [((min(a, b), max(a, b)), _aligned_score(band_a, targets[b][int(m)], WINDOWS[w])) for b, w, m in by_frame[a]]

        best: dict[tuple[int, int], float] = {}
        for results in pool.map(scores_of, sorted(by_frame), chunksize=64):
            for key, value in results:
                best[key] = max(best.get(key, -math.inf), value)
    return sorted((i, j, s) for (i, j), s in best.items() if s >= min_similarity)
