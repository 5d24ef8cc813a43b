"""The comparison of the iP-VAE with the lava-dl peers: the verdict by a stated rule, the table and the Pareto figure.

Points are dicts with at least ``name``, ``r2`` and ``energy_estimate_nj`` (benchmarks/peers.py builds them: the
peers' from their Lava runs, the iP-VAE's from benchmarks/energy.py's functions).

The rule (``verdict``), per image set:
- a quality level q is reached by a family (the iP-VAE's points, or the peers') at the energy of its cheapest
  point with R^2 >= q (``cheapest_reaching``);
- q_ipvae = the iP-VAE's unpruned T = 64 R^2 minus R2_TOLERANCE (the level benchmarks/energy.py's targets use);
  q_peer = the best peer R^2 minus R2_TOLERANCE;
- at each level: ratio = peer energy / iP-VAE energy (> 1: the iP-VAE is cheaper by that factor), or which
  family cannot reach the level at all.
"""

from __future__ import annotations

from pathlib import Path

R2_TOLERANCE = 0.01
REFERENCE_STEPS = 64
MICRO_PER_NANO = 1e-3
PEER_STYLES = (("sigma_delta", "tab:green", "lava-dl SDNN"), ("cuba", "tab:red", "lava-dl CUBA-LIF"))


def cheapest_reaching(points: list[dict], level: float) -> dict | None:
    candidates = [p for p in points if p["r2"] >= level]
    return min(candidates, key=lambda p: p["energy_estimate_nj"]) if candidates else None


def dominant_component(point: dict) -> str:
    """'<group> <share>%' of the largest part of a point's estimate."""
    parts = point.get("energy_estimate_components_nj") or point.get("energy_components_nj") or {}
    if not parts:
        return "-"
    name = max(parts, key=parts.get)
    return f"{name} {100.0 * parts[name] / max(sum(parts.values()), 1e-30):.0f}%"


def compare_at(level: float, ipvae: list[dict], peers: list[dict]) -> dict:
    """The two families at one quality level: their cheapest points reaching it and the energy ratio."""
    mine, theirs = cheapest_reaching(ipvae, level), cheapest_reaching(peers, level)
    row = {"r2_level": level,
           "ipvae_point": None if mine is None else mine["name"],
           "ipvae_nj": None if mine is None else mine["energy_estimate_nj"],
           "ipvae_dominant": None if mine is None else dominant_component(mine),
           "peer_point": None if theirs is None else theirs["name"],
           "peer_nj": None if theirs is None else theirs["energy_estimate_nj"],
           "peer_dominant": None if theirs is None else dominant_component(theirs)}
    if mine is not None and theirs is not None:
        ratio = theirs["energy_estimate_nj"] / mine["energy_estimate_nj"]
        row["peer_over_ipvae"] = ratio
        row["cheaper"] = "iP-VAE" if ratio > 1 else "lava-dl peer"
    else:
        row["peer_over_ipvae"] = None
        row["cheaper"] = "only the iP-VAE reaches it" if theirs is None and mine is not None else (
            "only the lava-dl peers reach it" if mine is None and theirs is not None else "neither reaches it")
    return row


def verdict(ipvae: list[dict], peers: list[dict]) -> dict:
    """The comparison on one image set by the module's rule."""
    reference = next((p for p in ipvae if p.get("T") == REFERENCE_STEPS and not p.get("lateral_pruned")
                      and "stop_window" not in p), None)
    result = {"rule": __doc__.split("The rule (``verdict``), per image set:\n", 1)[1].strip(),
              "best_ipvae_r2": max(p["r2"] for p in ipvae), "best_peer_r2": max(p["r2"] for p in peers)}
    if reference is not None:
        result["at_ipvae_level"] = compare_at(reference["r2"] - R2_TOLERANCE, ipvae, peers)
    result["at_peer_level"] = compare_at(result["best_peer_r2"] - R2_TOLERANCE, ipvae, peers)
    return result


def verdict_lines(name: str, result: dict) -> list[str]:
    """Plain sentences of one set's verdict."""
    lines = [f"{name}: best R^2 iP-VAE {result['best_ipvae_r2']:.3f}, lava-dl peers {result['best_peer_r2']:.3f}."]
    for key, label in (("at_ipvae_level", "the iP-VAE's level"), ("at_peer_level", "the peers' level")):
        row = result.get(key)
        if row is None:
            continue
        head = f"  at {label}, R^2 >= {row['r2_level']:.3f}: "
        if row["peer_over_ipvae"] is None:
            lines.append(head + row["cheaper"] + _point_text(row))
        else:
            factor = row["peer_over_ipvae"] if row["peer_over_ipvae"] >= 1 else 1.0 / row["peer_over_ipvae"]
            lines.append(head + f"{row['cheaper']} cheaper by {factor:.2f}x" + _point_text(row))
    return lines


def _point_text(row: dict) -> str:
    parts = []
    if row["ipvae_point"] is not None:
        parts.append(f"{row['ipvae_point']}: {row['ipvae_nj'] * MICRO_PER_NANO:.2f} uJ "
                     f"({row['ipvae_dominant']})")
    if row["peer_point"] is not None:
        parts.append(f"{row['peer_point']}: {row['peer_nj'] * MICRO_PER_NANO:.2f} uJ ({row['peer_dominant']})")
    return " -- " + "; ".join(parts) if parts else ""


def markdown_table(sets: dict[str, dict]) -> str:
    """One row per point and image set: family, configuration, T, R^2, synaptic ops, energy, what dominates."""
    header = ("| set | model | T | R^2 | synops / inference | energy estimate | largest part |\n"
              "|---|---|---|---|---|---|---|")
    rows = [header]
    for set_name, entry in sets.items():
        for point in entry["ipvae"] + entry["peers"]:
            energy = point["energy_estimate_nj"] * MICRO_PER_NANO
            rows.append(f"| {set_name} | {point['name']} | {point['T']} | {point['r2']:.3f} | "
                        f"{point['synops_per_inference']:,.0f} | {energy:.2f} uJ | {dominant_component(point)} |")
    return "\n".join(rows)


def plot_pareto(path: Path, sets: dict[str, dict], conventional: dict[str, list[dict]]) -> None:
    """R^2 vs energy per inference, one panel per image set: iP-VAE points, lava-dl peers, conventional baselines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(sets), figsize=(6.2 * len(sets), 5.0), squeeze=False)
    for axis, (set_name, entry) in zip(axes[0], sets.items()):
        _plot_family(axis, entry["ipvae"], "iP-VAE (K = 512, shipped)", "tab:blue")
        for kind, color, label in PEER_STYLES:
            _plot_family(axis, [p for p in entry["peers"] if p.get("kind") == kind], label, color)
        for point in conventional.get(set_name, []):
            axis.plot(point["energy_estimate_nj"] * MICRO_PER_NANO, point["r2"], point.get("marker", "s"), color="0.45",
                      markersize=6, alpha=0.8)
            axis.annotate(point["name"], (point["energy_estimate_nj"] * MICRO_PER_NANO, point["r2"]), fontsize=5,
                          xytext=(3, -7), textcoords="offset points", color="0.35")
        axis.set_xscale("log")
        axis.set_xlabel("energy per inference [uJ] (estimate, Loihi per-op table)")
        axis.set_ylabel("R^2 (per image, mean)")
        axis.set_title(f"{set_name} ({entry['images']} test images); models trained on MNIST only", fontsize=8)
        axis.legend(fontsize=6, loc="lower right")
    figure.suptitle("iP-VAE vs lava-dl's flow (slayer -> export_hdf5 -> netx -> Lava); every energy is an estimate",
                    fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def _plot_family(axis, points: list[dict], label: str, color: str) -> None:
    if not points:
        return
    ordered = sorted(points, key=lambda p: p["energy_estimate_nj"])
    axis.plot([p["energy_estimate_nj"] * MICRO_PER_NANO for p in ordered], [p["r2"] for p in ordered], "o",
              color=color, label=label, markersize=5, alpha=0.85)
    for point in ordered:
        axis.annotate(point.get("short", ""), (point["energy_estimate_nj"] * MICRO_PER_NANO, point["r2"]),
                      fontsize=5, xytext=(3, 3), textcoords="offset points", color=color)
