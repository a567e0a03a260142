"""Which frames to hand-label next: each ranking of ``modelling/acquisition.py`` against random frames.

    python bench/active_learning.py                 # crack and hard, seeds 1-5, every ranking (about 2 hours on 2 cores)
    python bench/active_learning.py --quick         # one seed, fewer steps: for development
    python bench/active_learning.py --methods typical random --seeds 4   # some rankings only
    python bench/active_learning.py --supervision boxes --methods random uncertain_pixels   # models also train on the pool's boxes
    python bench/active_learning.py --summarize bench/results/active_learning.jsonl
    python bench/active_learning.py --summarize bench/results/active_learning_last_weights*.jsonl   # several files, merged
    python bench/active_learning.py --summarize ROWS --defects   # and how large the picked frames' defects are
    python bench/active_learning.py --methods largest_boxes random_same_cost   # the controls: defect size alone, random frames of the default's cost
    python bench/active_learning.py --first-labels 48 --methods random uncertain_pixels   # a warmer start: the first model trains on 48

Per regime and seed, synthetic frames at the training size (160x128) are split by near-duplicate cluster
into eval (96 frames), validation (6), a first hand-labelled set (12, or ``--first-labels``) and the weak
pool (the rest, with their detector boxes). A model trained on the first labels ranks the pool; each method
picks ``--budget`` frames (12), whose true masks stand in for the human's, and a fresh model trains on the
first labels and the picked frames with the same seed and steps. Every model keeps its last weights (the
default; ``--weights validated`` keeps the best on the 6 validation frames, as the pipeline does: on so few
frames that choice is noise larger than a ranking's effect, see ``bench/checkpoint_noise.py``). With
``--supervision boxes`` every model also trains on the weak pool's boxes (joint training, as
``baseline_training.joint`` runs it), the nearest a bench training comes to the pipeline's newest model,
whose rounds trained on them; the frames picked leave the box-only set when their masks join. The first
models of the default settings before these options (labels, validated) keep their cache key, so older
cached models are reused. Eval mean IoU of each, and of the first model, is one JSON line per (regime, seed)
in ``--rows``; the summary prints mean ± sd over the seeds and whether each ranking beat random by more than
one sd of the seeds (the acceptance of the next-labels issue). Rows of one (regime, seed) written by
separate runs (``--methods``) are merged, and the merge refuses rows whose first models scored differently.
The first model of a (regime, seed, settings) is kept in ``bench/.cache/active_learning/`` so that a run of
more ``--methods`` does not train it again; the key holds the model and training settings, not the code:
after a change to training code, delete the folder (or pass ``--fresh``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from sewer_segmentation.data.boxes import FrameBoxes
from sewer_segmentation.data.samples import Sample
from sewer_segmentation.data.synthetic import config_for_regime, generate_frames, truth_polygons
from sewer_segmentation.io.imaging import mask_iou, resize_image, resize_mask
from sewer_segmentation.modelling.acquisition import METHODS, box_disagreement, box_entropy, box_share, pooled_features, rank_frames
from sewer_segmentation.modelling.inference import predict_probabilities
from sewer_segmentation.modelling.plan import labelled_sampling_weights, with_measured_box_priors
from sewer_segmentation.modelling.training import train_model
from sewer_segmentation.params import JointParams, ModelParams, SuggestParams, TrainingParams

#: Random frames of the default ranking's labelling cost: an arm of the bench, not a ranking of the pipeline.
SAME_COST = "random_same_cost"
ARMS = (*METHODS, SAME_COST)
DEFAULT = SuggestParams().method
SIZE = {"height": 128, "width": 160}
SPLIT = {"eval": 96, "val": 6, "labelled": 12}  # "labelled": the first hand labels (``--first-labels``)
CACHE = Path("bench/.cache/active_learning")


def at_training_size(frame):
    """A near-duplicate may be a slightly resized copy: every frame, its truth and boxes at the training size."""
    height, width = frame.truth.shape
    if (height, width) == (SIZE["height"], SIZE["width"]):
        return frame
    sx, sy = SIZE["width"] / width, SIZE["height"] / height
    boxes = [(round(x0 * sx), round(y0 * sy), round(x1 * sx), round(y1 * sy)) for x0, y0, x1, y1 in frame.boxes]
    return replace(frame, image=resize_image(frame.image, SIZE["height"], SIZE["width"]), truth=resize_mask(frame.truth, SIZE["height"], SIZE["width"]),
                   boxes=boxes)  # fmt: skip


def split_frames(regime: str, seed: int, first_labels: int = SPLIT["labelled"]) -> dict[str, list]:
    """Frames of one dataset split by near-duplicate cluster (a copy stays with its source). Eval and
    validation come first, so they are the same frames whatever ``first_labels``, and a larger first set
    holds a smaller one."""
    sizes = {**SPLIT, "labelled": first_labels}
    frames = [at_training_size(f) for f in generate_frames(config_for_regime(regime, num_images=300, seed=seed, **SIZE)) if f.kind != "junk"]
    clusters: dict[str, list] = {}
    for frame in frames:
        clusters.setdefault(frame.duplicate_of or frame.name, []).append(frame)
    order = np.random.default_rng([seed, 7]).permutation(sorted(clusters))
    out: dict[str, list] = {name: [] for name in (*sizes, "pool")}
    for key in order:
        split = next((name for name, size in sizes.items() if len(out[name]) < size), "pool")
        out[split] += [(key, f) for f in clusters[key]]
    return out


def samples(frames: list) -> list[Sample]:
    return [Sample(f.name, f.image, (f.truth > 0).astype(np.float32)) for _, f in frames]


def eval_iou(model, model_config: dict, frames: list) -> float:
    probabilities = predict_probabilities(model, [f.image for _, f in frames], model_config, SIZE)
    return statistics.fmean(mask_iou((p >= 0.5).astype(np.uint8) * 255, f.truth) for p, (_, f) in zip(probabilities, frames, strict=True))


def box_samples(frames: list) -> list[Sample]:
    """Box-only frames as joint training sees them: an empty target of weight 0, their boxes as the label."""
    out = []
    for _, f in frames:
        empty = np.zeros(f.truth.shape, np.float32)
        out.append(Sample(f.name, f.image, empty, empty.copy(), np.asarray(f.boxes, np.float32).reshape(-1, 4), box_supervised=True))
    return out


def train(train_frames: list, val_frames: list, model_config: dict, training: dict, seed: int, root: Path, box_frames: list = (),
          keep_last: bool = False):  # fmt: skip
    """A model trained on ``train_frames``' true masks and, when given, ``box_frames``' boxes (joint training
    as the pipeline runs it: half of every batch hand-labelled, box priors measured on the labelled frames)."""
    labelled, weak = samples(train_frames), box_samples(box_frames)
    weights = labelled_sampling_weights(len(weak), len(labelled), JointParams().labelled_share)
    if weak:
        boxes = {f.name: FrameBoxes(np.asarray(f.boxes).reshape(-1, 4), *f.truth.shape) for _, f in train_frames}
        training = with_measured_box_priors(training, labelled, boxes, "active_learning")
    return train_model(weak + labelled, samples(val_frames), model_config, training, SIZE, seed, "active_learning", root,
                       sample_weights=weights, keep_last=keep_last).model  # fmt: skip


def random_of_same_cost(scores: pd.DataFrame, budget: int, seed: int, corners: dict[str, int]) -> list[str]:
    """Random frames, in the order ``random`` draws them (its ``budget`` frames come first), until their
    polygon corners reach those of the default ranking's ``budget`` frames: the frames a person could label
    in the time the ranking's frames take, if time goes with the corners clicked."""
    target = sum(corners[name] for name in rank_frames(scores, budget, DEFAULT).frame)
    picked, total = [], 0
    for name in rank_frames(scores, len(scores), "random", seed=seed).frame:  # one per cluster, random's order
        if total >= target:
            break
        picked.append(name)
        total += corners[name]
    return picked


def first_model_key(model_config: dict, training: dict, first_labels: int, supervision: str | None, keep_last: bool) -> str:
    """The cache key of a first model: its settings, in the form older runs wrote (an option at its old
    default adds nothing, so their cached models are read again)."""
    key = [model_config, training, {**SPLIT, "labelled": first_labels}, SIZE] + ([supervision] if supervision else []) + (["last"] if keep_last else [])
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:12]


def run_once(regime: str, seed: int, steps: int, budget: int, root: Path, methods: tuple[str, ...] = METHODS, fresh: bool = False,
             supervision: str = "labels", weights: str = "last", first_labels: int = SPLIT["labelled"]) -> dict:  # fmt: skip
    start = time.perf_counter()
    parts = split_frames(regime, seed, first_labels)
    model_config = ModelParams().as_dict()
    training = {**TrainingParams().as_dict(), "steps": steps, "progress_bar": False}
    weak = parts["pool"] if supervision == "boxes" else []  # the pool's boxes train every model, or nothing does
    keep_last = weights == "last"
    if len({key for key, _ in parts["pool"]}) < budget:
        raise SystemExit(f"{regime} seed {seed}: {first_labels} first labels leave fewer than {budget} clusters in the weak pool")
    settings = first_model_key(model_config, training, first_labels, supervision if weak else None, keep_last)
    cached = CACHE / f"first-{regime}-{seed}-{settings}.pt"  # the first model of a (regime, seed), for runs of more --methods
    if cached.exists() and not fresh:
        first = torch.load(cached, weights_only=False)
    else:
        first = train(parts["labelled"], parts["val"], model_config, training, seed, root, weak, keep_last)
        cached.parent.mkdir(parents=True, exist_ok=True)
        torch.save(first, cached)
    row = {"regime": regime, "seed": seed, "steps": steps, "budget": budget, "supervision": supervision, "weights": weights,
           "first_labels": first_labels, "labelled": eval_iou(first, model_config, parts["eval"])}
    pool = parts["pool"]
    probabilities = predict_probabilities(first, [f.image for _, f in pool], model_config, SIZE)
    scores = pd.DataFrame({"image_id": [f.name for _, f in pool], "cluster": [key for key, _ in pool],
                           "uncertainty": [box_entropy(p, np.asarray(f.boxes)) for p, (_, f) in zip(probabilities, pool, strict=True)],
                           "uncertain_pixels": [box_entropy(p, np.asarray(f.boxes), total=True) for p, (_, f) in zip(probabilities, pool, strict=True)],
                           "disagreement": [box_disagreement(p, np.asarray(f.boxes)) for p, (_, f) in zip(probabilities, pool, strict=True)],
                           "box_share": [box_share(np.asarray(f.boxes), f.truth.shape) for _, f in pool]})  # fmt: skip
    loaders = {f.name: (lambda image=f.image: image) for _, f in pool + parts["labelled"]}
    features = pooled_features(first, loaders, model_config, (SIZE["height"], SIZE["width"]))
    labelled = np.stack([features[f.name] for _, f in parts["labelled"]])
    by_name = {f.name: (key, f) for key, f in pool}
    for method in methods:
        if method == SAME_COST:
            corners = {name: size[1] for name, size in defect_sizes(pool).items()}
            chosen = pd.DataFrame({"frame": random_of_same_cost(scores, budget, seed, corners)})
            row[f"{SAME_COST}_of"] = DEFAULT  # the ranking whose cost it matched
        else:
            chosen = rank_frames(scores, budget, method, features, labelled, seed=seed)
        picked = set(chosen.frame)
        model = train(parts["labelled"] + [by_name[name] for name in chosen.frame], parts["val"], model_config, training, seed, root,
                      [(k, f) for k, f in weak if f.name not in picked], keep_last)  # fmt: skip
        row[method] = eval_iou(model, model_config, parts["eval"])
        row[f"{method}_frames"] = list(chosen.frame)
    row["seconds"] = time.perf_counter() - start
    return row


#: How a row's models trained, beside the defaults (rows written before an option have no key for it).
SETTING_NAMES = {"boxes": "with the pool's boxes", "last": "last weights"}


def setting(row: dict) -> tuple[str, str, int]:
    """(supervision, weights kept, first hand labels) of a row's models: rows of other settings are other first models."""
    return row.get("supervision", "labels"), row.get("weights", "validated"), row.get("first_labels", SPLIT["labelled"])


def setting_name(regime: str, how: tuple) -> str:
    """A table row's name: the regime and the settings other than the defaults (``crack, last weights, 48 first labels``)."""
    supervision, weights, first_labels = how
    first = [f"{first_labels} first labels"] if first_labels != SPLIT["labelled"] else []
    return ", ".join([regime] + [SETTING_NAMES[value] for value in (supervision, weights) if value in SETTING_NAMES] + first)


def merged(rows: list[dict]) -> list[dict]:
    """One row per (regime, seed, steps, budget): the methods of several runs side by side."""
    out: dict[tuple, dict] = {}
    for row in rows:
        key = (row["regime"], row["seed"], row["steps"], row["budget"], *setting(row))
        if key in out and abs(out[key]["labelled"] - row["labelled"]) > 1e-6:
            raise SystemExit(f"{key}: the first model scored {out[key]['labelled']:.6f} and {row['labelled']:.6f} in two runs; not merged")
        out[key] = {**out.get(key, {}), **row}
    return list(out.values())


def summarize(rows: list[dict]) -> None:
    rows = merged(rows)
    methods = [m for m in ARMS if any(m in r for r in rows)]
    matched = {r.get(f"{SAME_COST}_of", "uncertain_pixels") for r in rows if SAME_COST in r}  # rows before the key: the default then
    if len(matched) > 1:
        raise SystemExit(f"{SAME_COST} rows matched the cost of different rankings ({', '.join(sorted(matched))}); summarize them apart")
    of = matched.pop() if matched else DEFAULT
    heads = {SAME_COST: f"+ random, as many corners as +{rows[0]['budget']} {of}"}
    print("| regime | seeds | first labels only | " + " | ".join(heads.get(m, f"+{rows[0]['budget']} {m}") for m in methods) + " |")
    print("|---|---|---|" + "---|" * len(methods))
    verdicts = []
    for regime, *how in sorted({(r["regime"], *setting(r)) for r in rows}):
        runs = [r for r in rows if (r["regime"], *setting(r)) == (regime, *how)]
        name = setting_name(regime, how)

        def cell(values: list[float], runs: list = runs) -> str:
            if not values:
                return "–"
            spread = f" ± {statistics.stdev(values):.3f}" if len(values) > 1 else ""
            return f"{statistics.fmean(values):.3f}{spread}" + (f" ({len(values)})" if len(values) != len(runs) else "")

        print(f"| {name} | {len(runs)} | {cell([r['labelled'] for r in runs])} | " + " | ".join(cell([r[m] for r in runs if m in r]) for m in methods) + " |")
        pairs = [(m, "random") for m in methods if m != "random"] + ([(of, SAME_COST)] if SAME_COST in methods else [])
        for method, reference in pairs:
            both = [r for r in runs if method in r and reference in r]
            if len(both) < 2:
                continue
            gain = statistics.fmean(r[method] for r in both) - statistics.fmean(r[reference] for r in both)
            sd = statistics.stdev(r[reference] for r in both)
            paired = [r[method] - r[reference] for r in both]
            frames = f"; {statistics.fmean(len(r[f'{SAME_COST}_frames']) for r in both):.1f} frames" if SAME_COST in (method, reference) else ""
            verdicts.append(f"{name} {method}: {gain:+.3f} vs {reference} over {len(both)} seeds (sd of {reference} {sd:.3f}, sd of the "
                            f"paired differences {statistics.stdev(paired):.3f}; won {sum(p > 0 for p in paired)} of {len(both)}{frames}) -> "
                            f"{'beats' if gain > sd else 'loses to' if gain < -sd else 'ties'} {reference}")  # fmt: skip
    print("\n".join(verdicts))


def defect_sizes(frames: list) -> dict[str, tuple[int, int]]:
    """Per frame: its defect pixels and the corners of the polygons an annotator would draw round them
    (``synthetic.truth_polygons``): what a hand label costs grows with the corners, not with the frame count."""
    return {f.name: (int((f.truth > 0).sum()), sum(len(p) for p in truth_polygons(f.truth))) for _, f in frames}


def picked_defects(rows: list[dict], split=split_frames) -> list[str]:
    """A table of the frames each ranking picked: defect pixels and polygon corners per frame, mean over the
    seeds (each (regime, seed)'s frames generated again by ``split``), beside the weak pool's mean. A ranking
    that picks larger defects gets more labelled pixels per frame, and costs more clicks."""
    rows = merged(rows)
    methods = [m for m in ARMS if any(f"{m}_frames" in r for r in rows)]
    table: dict[tuple, dict[str, list]] = {}
    for row in sorted(rows, key=lambda r: (r["regime"], r["seed"])):
        how = setting(row)  # (supervision, weights, first labels): the first labels decide the pool
        *_, first_labels = how
        sizes = defect_sizes(split(row["regime"], row["seed"], first_labels=first_labels)["pool"])
        cells = table.setdefault((row["regime"], *how), {})
        cells.setdefault("pool", []).append(np.mean(list(sizes.values()), axis=0))
        for method in [m for m in methods if f"{m}_frames" in row]:
            cells.setdefault(method, []).append(np.mean([sizes[name] for name in row[f"{method}_frames"]], axis=0))
    lines = ["| regime | weak pool | " + " | ".join(methods) + " |", "|---|---|" + "---|" * len(methods)]
    for (regime, *how), cells in sorted(table.items()):
        name = setting_name(regime, how)

        def cell(values: list, seeds: int = len(cells["pool"])) -> str:
            pixels, corners = np.mean(values, axis=0) if values else (None, None)
            return "–" if pixels is None else f"{pixels:,.0f} px, {corners:.1f} corners" + (f" ({len(values)})" if len(values) != seeds else "")

        lines.append(f"| {name} | {cell(cells['pool'])} | " + " | ".join(cell(cells.get(m, [])) for m in methods) + " |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--regimes", nargs="+", default=["crack", "hard"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3, 4, 5])
    parser.add_argument("--steps", type=int, default=250, help="optimizer steps of every training (the default budget)")
    parser.add_argument("--budget", type=int, default=12)
    parser.add_argument("--first-labels", type=int, default=SPLIT["labelled"],
                        help="hand-labelled frames the first model trains on (the issue's cold start is 12; a team with more labels "
                             "ranks with a stronger model)")
    parser.add_argument("--supervision", choices=["labels", "boxes"], default="labels",
                        help="boxes: every model also trains on the weak pool's boxes (joint training), as the pipeline's round models have")
    parser.add_argument("--weights", choices=["validated", "last"], default="last",
                        help="last: every model keeps its last weights; validated: its best on the 6 validation frames, as the pipeline "
                             "does (a checkpoint choice on 6 frames moves eval by up to 0.2: docs/labelling.md)")
    parser.add_argument("--fresh", action="store_true", help="train the first model again instead of reading it from bench/.cache")
    parser.add_argument("--methods", nargs="+", choices=ARMS, default=list(METHODS),
                        help=f"the rankings to train (default: all); {SAME_COST}: random frames until their polygon corners reach the default "
                             f"ranking's ({DEFAULT})")
    parser.add_argument("--quick", action="store_true", help="one seed, 60 steps: for development")
    parser.add_argument("--rows", type=Path, default=Path("bench/results/active_learning.jsonl"))
    parser.add_argument("--summarize", type=Path, nargs="+", help="print the table of rows files (merged per regime and seed) and stop")
    parser.add_argument("--defects", action="store_true", help="with --summarize: also the defect pixels and polygon corners of the picked frames")
    args = parser.parse_args()
    if args.first_labels < 1:
        parser.error("--first-labels: the first model needs at least one hand-labelled frame")
    if args.summarize:
        rows = [json.loads(line) for path in args.summarize for line in path.read_text().splitlines() if line.strip()]
        summarize(rows)
        if args.defects:
            print("\nPer picked frame, mean over the seeds:\n" + "\n".join(picked_defects(rows)))
        return
    seeds, steps = (args.seeds[:1], 60) if args.quick else (args.seeds, args.steps)
    rows = []
    with tempfile.TemporaryDirectory() as root:
        for seed in seeds:
            for regime in args.regimes:
                rows.append(run_once(regime, seed, steps, args.budget, Path(root), tuple(args.methods), args.fresh, args.supervision, args.weights,
                                     args.first_labels))  # fmt: skip
                if not args.quick:
                    args.rows.parent.mkdir(parents=True, exist_ok=True)
                    with args.rows.open("a") as out:
                        out.write(json.dumps(rows[-1]) + "\n")
                print(f"{regime} seed {seed}: {args.first_labels} labelled {rows[-1]['labelled']:.3f}, "
                      + ", ".join(f"{m} {rows[-1][m]:.3f}" for m in args.methods) + f" ({rows[-1]['seconds']:.0f} s)", flush=True)  # fmt: skip
    summarize(rows)


if __name__ == "__main__":
    main()
