"""The loop's picture: drift per feature and model quality per window, with the retrain and the redeploy marked."""

from __future__ import annotations

from pathlib import Path

from tools.demo.loop import Window


def plot(windows: list[Window], marks: list[tuple[str, float]], path: Path, threshold: float) -> Path:
    """Draw ``windows`` (in order, at x = 0, 1, ...) into ``path`` (PNG); ``marks`` are (label, x) events."""
    import matplotlib

    matplotlib.use("Agg")  # no screen: render to a file
    import matplotlib.pyplot as plt

    labels = [f"{w.label}\n{w.hour:%H}:00 v{w.version}" for w in windows]
    x = list(range(len(windows)))
    features = sorted({f for w in windows for f in w.drift})
    figure, (drift, quality) = plt.subplots(2, 1, figsize=(10, 7), sharex=True, dpi=110)
    for feature in features:
        drift.plot(x, [w.drift.get(feature, float("nan")) for w in windows], marker="o", label=feature)
    drift.axhline(threshold, color="black", linestyle=":", linewidth=1, label=f"drift threshold {threshold:g}")
    drift.set_ylabel("drift (L-inf distance to the baseline)")
    drift.set_title("prod: drift per feature and model quality, per monitoring window")
    drift.legend(fontsize=7, ncol=3, loc="upper left")
    quality.plot(x, [w.quality.get("rmse", float("nan")) for w in windows], marker="s", color="tab:red", label="rmse")
    quality.plot(x, [w.quality.get("mae", float("nan")) for w in windows], marker="^", color="tab:orange", label="mae")
    quality.set_ylabel("model quality on labelled traffic")
    quality.legend(fontsize=8, loc="upper left")
    top = drift.get_ylim()[1]
    for number, (name, position) in enumerate(marks):
        for axis in (drift, quality):
            axis.axvline(position, color="tab:green", linestyle="--", linewidth=1.2)
        drift.annotate(
            name,
            (position, top * (0.95 - 0.1 * number)),
            ha="left",
            va="top",
            fontsize=8,
            color="tab:green",
            xytext=(3, 0),
            textcoords="offset points",
        )
    quality.set_xticks(x, labels, fontsize=8)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)
    return path
