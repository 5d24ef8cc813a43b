"""The README's headline table names every row's training budget and t, with the shipped model's row first."""

from __future__ import annotations

import json

from ipvae.paper.report import README_END, README_START, SHIPPED_EVAL, SHIPPED_LABEL, headline_table, update_readme


def mnist_results() -> dict:
    summary = {"r2": {"mean": 0.644, "std": 0.007, "n": 3}, "zeros": {"mean": 0.943, "std": 0.001, "n": 3}}
    return {"mnist": {"budget": {"name": "full", "epochs": 1, "train_limit": None, "t_train": 16, "seeds": [0, 1, 2]},
                      "t_test": 16, "test_images": 2000, "rows": {"ipvae": {"label": "iP-VAE", "summary": summary}}}}


SHIPPED = {"t_test": 64, "r2": 0.9353, "zeros": 0.8494, "probe_accuracy": 0.9604, "params": 403217}


def test_every_row_names_its_budget_and_t_and_the_shipped_row_comes_first():
    lines = headline_table(mnist_results(), SHIPPED).splitlines()
    assert "training budget" in lines[0] and "| t |" in lines[0]
    assert lines[2].startswith(f"| {SHIPPED_LABEL} | `make pretrained`") and "| 64 | 0.935 | 0.849 | 0.960 |" in lines[2]
    assert lines[3].startswith("| iP-VAE | full: 1 epoch(s) on all 60,000 images, T_train 16 | 16 | 0.644 ± 0.007 |")


def test_the_readme_block_carries_the_shipped_row_when_its_eval_is_there(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{README_START}\nold\n{README_END}\nrest\n")
    (tmp_path / SHIPPED_EVAL).parent.mkdir(parents=True)
    (tmp_path / SHIPPED_EVAL).write_text(json.dumps(SHIPPED))
    assert update_readme(readme, mnist_results(), tmp_path / "r.md")
    text = readme.read_text()
    assert SHIPPED_LABEL in text and "old" not in text and text.startswith("intro\n") and text.endswith("rest\n")


def test_a_one_seed_report_points_to_the_three_seed_spread_and_a_three_seed_report_does_not():
    from ipvae.paper.report import SPREAD_REPORT, spread_note

    long_budget = {"name": "long", "epochs": 10, "seeds": [0]}
    assert any(f"]({SPREAD_REPORT})" in line for line in spread_note(long_budget))
    assert spread_note({"name": "full", "epochs": 1, "seeds": [0, 1, 2]}) == []
    assert spread_note({"name": "quick", "epochs": 1, "seeds": [0], "smoke": True}) == []


def test_the_report_default_follows_the_budget():
    from ipvae.paper.cli import DEFAULT_REPORT

    assert DEFAULT_REPORT["long"] == "docs/results.md"  # the headline
    assert DEFAULT_REPORT["full"] == "docs/results-spread.md"


def test_the_headline_carries_pca_at_k_and_at_the_ipvae_active_units():
    """Oracle: zeros 0.9 of K = 100 latents is 10 active units per image, so the matched PCA row is k = 10."""
    results = mnist_results()
    results["mnist"]["rows"]["ipvae"]["summary"]["zeros"] = {"mean": 0.9, "std": 0.0, "n": 1}
    results["mnist"]["n_latents"] = 100
    results["mnist"]["pca"] = {"k": [5, 10, 100], "r2": [0.5, 0.7, 0.99], "train_images": 500}
    lines = headline_table(results).splitlines()
    assert any(line.startswith("| PCA, k = 10 (the iP-VAE's mean active units) |") and "| 0.700 |" in line
               for line in lines)
    assert any(line.startswith("| PCA, k = 100 (dense reference) |") and "| 0.990 |" in line for line in lines)
    assert not any("k = 5" in line for line in lines)
