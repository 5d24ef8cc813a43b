"""The rotation claim is decided over every angle: each model's worst MSE ratio and largest R^2 drop, wherever
they fall (planted here at 90°, where MSE(180°)/MSE(0°) alone would call the models equal)."""

from __future__ import annotations

from ipvae.paper.claims import CONTRADICTED, SUPPORTED, check_claims

ANGLES = [0.0, 45.0, 90.0, 135.0, 180.0]
SEEDS = 3


def curve(values: list[float], std: float = 0.001) -> list[dict]:
    return [{"mean": value, "std": std, "n": SEEDS} for value in values]


def rotation(ipvae_ratio, other_ratio, ipvae_r2, other_r2) -> dict:
    def model(label, ratio, r2):
        return {"label": label, "per_angle": {"mse_ratio": curve(ratio), "r2": curve(r2)}}

    return {"rotation": {"angles": ANGLES, "models": {"ipvae": model("iP-VAE", ipvae_ratio, ipvae_r2),
                                                     "other": model("other", other_ratio, other_r2)}}}


def test_a_model_worse_only_at_90_degrees_loses_the_claim():
    results = rotation(ipvae_ratio=[1.0, 1.2, 1.9, 1.2, 1.1], other_ratio=[1.0, 1.1, 1.3, 1.2, 1.1],
                       ipvae_r2=[0.93, 0.90, 0.80, 0.90, 0.92], other_r2=[0.90, 0.89, 0.86, 0.88, 0.89])
    ratio, drop = [verdict for verdict in check_claims(results) if "rotated" in verdict.claim]
    assert ratio.verdict == CONTRADICTED and "iP-VAE (at 90°) 1.900" in ratio.why
    assert drop.verdict == CONTRADICTED and "iP-VAE (at 90°) 0.130" in drop.why  # 0.93 - 0.80 vs 0.90 - 0.86


def test_a_model_better_at_every_angle_wins_both():
    results = rotation(ipvae_ratio=[1.0, 1.05, 1.1, 1.05, 1.02], other_ratio=[1.0, 1.3, 1.6, 1.4, 1.2],
                       ipvae_r2=[0.93, 0.92, 0.91, 0.92, 0.93], other_r2=[0.90, 0.85, 0.80, 0.84, 0.88])
    verdicts = [verdict.verdict for verdict in check_claims(results) if "rotated" in verdict.claim]
    assert verdicts == [SUPPORTED, SUPPORTED]
