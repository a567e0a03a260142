"""The benches' own logic that writes into the docs: the README headline block of bench/end_to_end.py."""

import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench"


def end_to_end():
    sys.path.insert(0, str(BENCH))
    try:
        import end_to_end  # noqa: PLC0415

        return end_to_end
    finally:
        sys.path.remove(str(BENCH))


def test_the_headline_shows_each_stage_as_mean_and_sd_over_the_seeds_and_names_its_command(tmp_path):
    bench = end_to_end()
    runs = [{"seed": s, "wall": w, "precision": "32", "box_masks": 0.5, "baseline": b, "round_1": r, "round_1_handed_on": h, "refinement": "grabcut"}
            for s, w, b, r, h in ((1, 190.0, 0.60, 0.65, "trained"), (2, 210.0, 0.70, 0.70, "start"))]  # fmt: skip
    block = bench.headline(runs, "python bench/end_to_end.py --seeds 1 2 --readme")
    assert "| baseline (hand-labelled frames only) | 0.650 ± 0.071 |" in block
    assert "| round 1 (refined masks and boxes; refinement chose grabcut) | 0.675 ± 0.035 |" in block
    assert "+0.050, +0.000" in block and "in 1 of 2 runs" in block and "190 to 210 s" in block
    assert "`python bench/end_to_end.py --seeds 1 2 --readme`" in block

    readme = tmp_path / "README.md"
    readme.write_text(f"# title\n\n{bench.README_START}\nold figures\n{bench.README_END}\n\nmore text\n")
    bench.rewrite_readme(block, readme)
    text = readme.read_text()
    assert "old figures" not in text and block in text and text.startswith("# title") and text.endswith("more text\n")
