"""Figures for reports, returned as RGB uint8 arrays (saved as PNG by the catalog).

Figures are drawn on matplotlib's Agg canvas directly, without pyplot: no display is needed and the
global backend is left alone (notebooks keep their inline plots).
"""

from __future__ import annotations

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

BOX_COLOUR = (0, 255, 0)
POLYGON_COLOUR = (255, 60, 60)
TRUTH_COLOUR = (60, 160, 255)


def new_figure(rows: int = 1, cols: int = 1, figsize=(6, 4), dpi: int = 100):
    fig = Figure(figsize=figsize, dpi=dpi)
    FigureCanvasAgg(fig)
    return fig, fig.subplots(rows, cols, squeeze=False)


def figure_to_array(fig) -> np.ndarray:
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()


def overlay(image: np.ndarray, mask: np.ndarray | None, colour, alpha: float = 0.45) -> np.ndarray:
    """Tint ``image`` where ``mask`` is set (soft masks tint in proportion to their value)."""
    out = image.astype(np.float32).copy()
    if mask is not None:
        weight = (mask.astype(np.float32) / 255.0)[..., None] * alpha
        out = out * (1 - weight) + np.array(colour, np.float32) * weight
    return out.clip(0, 255).astype(np.uint8)


def placeholder(text: str = "nothing to show") -> np.ndarray:
    fig, axes = new_figure(figsize=(4, 1))
    ax = axes[0][0]
    ax.axis("off")
    ax.text(0.5, 0.5, text, ha="center", va="center")
    return figure_to_array(fig)


def image_grid(rows: list[list[tuple[str, np.ndarray]]], title: str | None = None, cell: float = 2.6) -> np.ndarray:
    """A grid of titled panels: ``rows[r][c] = (caption, RGB or grey array)``."""
    if not rows or not any(rows):
        return placeholder()
    n_cols = max(len(r) for r in rows)
    fig, axes = new_figure(len(rows), n_cols, figsize=(cell * n_cols, cell * 0.8 * len(rows) + 0.4), dpi=90)
    for r, row in enumerate(rows):
        for c in range(n_cols):
            ax = axes[r][c]
            ax.axis("off")
            if c < len(row):
                caption, array = row[c]
                ax.imshow(array, cmap="gray" if array.ndim == 2 else None, vmin=0, vmax=255)
                ax.set_title(caption, fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.5 / fig.get_figheight()))  # leave room for the title
    return figure_to_array(fig)


def sample_gallery(samples) -> np.ndarray:
    """Per sample: the frame, its box mask, and its polygons / ground truth where they exist."""
    rows = []
    for image_id, split, image, box, polygon, truth in samples:
        row = [(f"{image_id} [{split}]", image), ("box mask", overlay(image, box, BOX_COLOUR))]
        if polygon is not None:
            row.append(("hand-drawn polygons", overlay(image, polygon, POLYGON_COLOUR)))
        if truth is not None:
            row.append(("ground truth", overlay(image, truth, TRUTH_COLOUR)))
        rows.append(row)
    return image_grid(rows, "Samples (green: boxes, red: polygons, blue: ground truth)")


def duplicate_cluster_gallery(clusters) -> np.ndarray:
    """One row per duplicate cluster, showing every member (at most 6)."""
    rows = [[(f"cluster {cid}: {name}", image) for name, image in members[:6]] for cid, members in clusters]
    if not rows:
        return placeholder("no duplicate clusters")
    return image_grid(rows, "Largest near-duplicate clusters (first member of each row is the one kept)")


def line_chart(series: dict[str, tuple[list, list]], title: str, xlabel: str, ylabel: str) -> np.ndarray:
    """Simple line chart: ``series[name] = (x values, y values)``."""
    fig, axes = new_figure(figsize=(6, 3.5))
    ax = axes[0][0]
    for name, (x, y) in series.items():
        ax.plot(x, y, marker="o" if len(x) < 30 else None, markersize=3, label=name)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if series:
        ax.legend(fontsize=8)
    fig.tight_layout()
    return figure_to_array(fig)
