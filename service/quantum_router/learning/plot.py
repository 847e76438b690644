"""PNG plot of quality against strong-call share for the knob sweeps and the single-model baselines."""

from __future__ import annotations

from pathlib import Path

from quantum_router.learning.evaluate import RouterReport


def plot_reports(
    reports: list[RouterReport], strong_share: dict[str, float], path: Path, title: str = ""
) -> None:
    """Write ``path``: one line per router with a curve, one marker per router without.

    ``strong_share`` maps a report name to its x position when it has no curve (its share of strong calls).
    """
    import matplotlib

    matplotlib.use("Agg")  # no display on servers and in tests
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 5), dpi=100)
    try:
        for r in reports:
            if r.curve is not None:
                label = r.name if r.apgr is None else f"{r.name} (APGR {r.apgr:.3f})"
                ax.plot(r.curve.x, r.curve.quality, label=label, linewidth=1.5)
            else:
                ax.scatter([strong_share.get(r.name, 0.0)], [r.quality], label=r.name, zorder=3, s=40)
        ax.set_xlabel("share of calls to the strong model (normalised cost)")
        ax.set_ylabel("quality (share correct)")
        ax.set_xlim(0, 1)
        ax.grid(True, alpha=0.3)
        ax.legend(loc="lower right", fontsize=8)
        if title:
            ax.set_title(title, fontsize=10)
        fig.tight_layout()
        fig.savefig(path, format="png")
    finally:
        plt.close(fig)
