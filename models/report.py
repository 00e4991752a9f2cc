"""The model report of `nbo train --report DIR`: report.json, report.html and PNG plots (matplotlib, Agg).

Everything is measured on the holdout (the newest 15% of settled contacts): AUC and log loss (calibrated
and raw), the reliability table and plot (equal-count bins: mean prediction vs observed acceptance), lift
and acceptance by score decile, per-offer counts and rates (training and holdout), feature importance
(total gain), the global vs per-offer comparison, and the promotion decision when one was made.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from models.metrics import auc


def reliability(y: np.ndarray, p: np.ndarray, bins: int = 10) -> list[dict[str, float]]:
    """Equal-count bins of the prediction: rows, mean prediction, observed rate."""
    if len(p) == 0:
        return []
    chunks = [c for c in np.array_split(np.argsort(p, kind="mergesort"), min(bins, len(p))) if len(c)]
    return [
        {"rows": len(c), "mean_prediction": float(p[c].mean()), "observed_rate": float(y[c].mean())} for c in chunks
    ]


def deciles(y: np.ndarray, p: np.ndarray) -> list[dict[str, float]]:
    """Score deciles, highest first: rows, acceptance rate, lift over the overall rate, cumulative capture."""
    if len(p) == 0:
        return []
    base = float(y.mean()) or float("nan")
    order = np.argsort(-p, kind="mergesort")
    total, captured, out = float(y.sum()) or float("nan"), 0.0, []
    for i, c in enumerate(np.array_split(order, 10), start=1):
        if not len(c):
            continue
        captured += float(y[c].sum())
        rate = float(y[c].mean())
        out.append({"decile": i, "rows": len(c), "mean_score": float(p[c].mean()), "acceptance_rate": rate,
                    "lift": rate / base, "cumulative_capture": captured / total})  # fmt: skip
    return out


def per_offer(
    offers: np.ndarray, y: np.ndarray, fit: np.ndarray, test: np.ndarray, p_test: np.ndarray
) -> list[dict[str, Any]]:
    """Per offer: training and holdout rows, acceptances, rates, mean holdout prediction, holdout AUC."""
    rows = []
    test_offers = offers[test]
    for offer in sorted(set(offers.tolist())):
        mine = offers == offer
        t = mine & fit
        h = test_offers == offer
        yh = y[test][h]
        rows.append({
            "offer_id": offer,
            "train_rows": int(t.sum()), "train_accepted": int(y[t].sum()),
            "train_rate": float(y[t].mean()) if t.any() else None,
            "holdout_rows": int(h.sum()), "holdout_accepted": int(yh.sum()),
            "holdout_rate": float(yh.mean()) if h.any() else None,
            "holdout_mean_prediction": float(p_test[h].mean()) if h.any() else None,
            "holdout_auc": auc(yh, p_test[h]) if h.any() else None,
        })  # fmt: skip
    return rows


def importance(booster: Any, columns: tuple[str, ...], best: int) -> list[dict[str, float]]:
    gains = booster.feature_importance(importance_type="gain", iteration=best)
    splits = booster.feature_importance(importance_type="split", iteration=best)
    total = float(gains.sum()) or 1.0
    rows = [{"feature": c, "gain": float(g), "share": float(g) / total, "splits": int(s)}
            for c, g, s in zip(columns, gains, splits, strict=True)]  # fmt: skip
    return sorted(rows, key=lambda r: -r["gain"])


def write_report(directory: Path, content: dict[str, Any], y: np.ndarray, p: np.ndarray, p_offer: np.ndarray) -> Path:
    """Write report.json, the PNGs and report.html into `directory`; returns the HTML file."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "report.json").write_bytes(
        orjson.dumps(content, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY)
    )
    plots = _plots(directory, content, y, p, p_offer)
    page = directory / "report.html"
    page.write_text(_html(content, plots))
    return page


def _plots(directory: Path, content: dict[str, Any], y: np.ndarray, p: np.ndarray, p_offer: np.ndarray) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    made = []
    for name, draw in (("calibration.png", _calibration_plot), ("lift.png", _lift_plot),
                       ("importance.png", _importance_plot), ("offers.png", _offers_plot),
                       ("comparison.png", _comparison_plot)):  # fmt: skip
        fig = draw(plt, content, y, p, p_offer)
        fig.tight_layout()
        fig.savefig(directory / name, dpi=110)
        plt.close(fig)
        made.append(name)
    return made


def _calibration_plot(plt: Any, content: dict[str, Any], y: np.ndarray, p: np.ndarray, p_offer: np.ndarray) -> Any:
    fig, ax = plt.subplots(figsize=(6, 5))
    table = content["calibration"]["bins"]
    top = max([b["mean_prediction"] for b in table] + [b["observed_rate"] for b in table] + [0.01]) * 1.1
    ax.plot([0, top], [0, top], "--", color="grey", label="perfectly calibrated")
    ax.plot(
        [b["mean_prediction"] for b in table], [b["observed_rate"] for b in table], "o-", label="global, calibrated"
    )
    raw = content["calibration"].get("raw_bins", [])
    if raw:
        ax.plot(
            [b["mean_prediction"] for b in raw], [b["observed_rate"] for b in raw], "s:", alpha=0.7, label="global, raw"
        )
    ax.set_xlabel("mean predicted probability (equal-count bins)")
    ax.set_ylabel("observed acceptance rate")
    ax.set_title("Reliability on the holdout")
    ax.legend()
    return fig


def _lift_plot(plt: Any, content: dict[str, Any], *_: Any) -> Any:
    fig, ax = plt.subplots(figsize=(7, 4.5))
    rows = content["deciles"]
    ax.bar([r["decile"] for r in rows], [r["acceptance_rate"] for r in rows], color="tab:blue")
    base = content["holdout"]["positive_rate"]
    ax.axhline(base, color="tab:red", linestyle="--", label=f"overall {base:.3f}")
    for r in rows:
        ax.text(r["decile"], r["acceptance_rate"], f"x{r['lift']:.1f}", ha="center", va="bottom", fontsize=8)
    ax.set_xticks([r["decile"] for r in rows])
    ax.set_xlabel("score decile (1 = highest scores)")
    ax.set_ylabel("acceptance rate")
    ax.set_title("Acceptance and lift by score decile (holdout)")
    ax.legend()
    return fig


def _importance_plot(plt: Any, content: dict[str, Any], *_: Any) -> Any:
    rows = content["feature_importance"][:20][::-1]
    fig, ax = plt.subplots(figsize=(7, 6))
    ax.barh([r["feature"] for r in rows], [r["share"] for r in rows], color="tab:green")
    ax.set_xlabel("share of total gain")
    ax.set_title("Feature importance (top 20, gain)")
    return fig


def _offers_plot(plt: Any, content: dict[str, Any], *_: Any) -> Any:
    rows = sorted(content["offers"], key=lambda r: r["train_rows"])
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, max(4, 0.28 * len(rows) + 1)), sharey=True)
    names = [r["offer_id"] for r in rows]
    left.barh(names, [r["train_rows"] for r in rows], color="tab:blue", label="training")
    left.barh(names, [r["holdout_rows"] for r in rows], color="tab:orange", label="holdout")
    left.set_xlabel("contacts")
    left.legend()
    right.barh(names, [r["holdout_rate"] or 0 for r in rows], color="tab:orange", alpha=0.6, label="observed")
    right.plot([r["holdout_mean_prediction"] or 0 for r in rows], names, "k|", markersize=12, label="mean prediction")
    right.set_xlabel("holdout acceptance rate")
    right.legend()
    fig.suptitle("Per-offer counts and rates")
    return fig


def _comparison_plot(plt: Any, content: dict[str, Any], *_: Any) -> Any:
    cmp_ = content["comparison"]
    fig, axes = plt.subplots(1, 2, figsize=(8, 4))
    for ax, metric in zip(axes, ("auc", "log_loss"), strict=True):
        values = [cmp_["global"][metric], cmp_["per_offer"][metric]]
        ax.bar(["global", "per offer"], values, color=["tab:blue", "tab:purple"])
        for i, v in enumerate(values):
            ax.text(i, v, f"{v:.4f}", ha="center", va="bottom")
        ax.set_title(f"holdout {metric.replace('_', ' ')}")
        if metric == "auc":
            ax.set_ylim(0.5, 1.0)
    fig.suptitle(f"Global vs per-offer (better: {cmp_['better']})")
    return fig


def _html(content: dict[str, Any], plots: list[str]) -> str:
    h, cmp_ = content["holdout"], content["comparison"]
    promotion = content.get("promotion")
    parts = [
        "<!doctype html><meta charset='utf-8'><title>Model report</title>",
        "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#eee}</style>",
        f"<h1>Model report: {_e(content['model'])} {_e(content.get('version', ''))}</h1>",
        f"<p>Trained from the contact history, contacts {_e(content['data']['range'])}; "
        f"{content['data']['settling']['kept']:,} settled rows "
        f"({content['data']['settling']['positives']:,} accepted). "
        f"Left out: {_e(content['data']['settling']['left_out'])}.</p>",
        f"<h2>Holdout</h2><p>{int(h['rows']):,} rows, the newest 15% by time. AUC <b>{h['auc']:.4f}</b>, "
        f"log loss <b>{h['log_loss']:.4f}</b> (raw {content['holdout_raw']['log_loss']:.4f}), "
        f"expected calibration error {h['calibration_error']:.4f}; acceptance {h['positive_rate']:.4f}, "
        f"mean prediction {h['mean_prediction']:.4f}. "
        f"Early stopping kept {content['early_stopping']['best_iteration']} "
        f"trees (of {content['early_stopping']['max_trees']}).</p>",
        f"<h2>Global vs per-offer</h2><p>By {cmp_['metric']}: <b>{cmp_['better']}</b> is better; "
        f"the registered model is the {cmp_['served']} one.</p>",
        _table(
            [
                {"design": k, **{m: cmp_[k][m] for m in ("auc", "log_loss", "calibration_error")}}
                for k in ("global", "per_offer")
            ]
        ),
    ]
    if promotion:
        parts.append(f"<h2>Promotion</h2><p>{_e(promotion['reason'])}</p>")
    parts += [f"<h2>{_e(name[:-4].title())}</h2><img src='{name}' style='max-width:100%'>" for name in plots]
    parts += ["<h2>Reliability table</h2>", _table(content["calibration"]["bins"]),
              "<h2>Deciles</h2>", _table(content["deciles"]),
              "<h2>Per offer</h2>", _table(content["offers"]),
              "<h2>Feature importance</h2>", _table(content["feature_importance"])]  # fmt: skip
    return "\n".join(parts)


def _table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "<p>(none)</p>"
    head = "".join(f"<th>{_e(k)}</th>" for k in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{_cell(v)}</td>" for v in r.values()) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _cell(v: Any) -> str:
    if isinstance(v, float):
        return "" if v != v else f"{v:.4f}"
    return _e("" if v is None else v)


def _e(v: Any) -> str:
    return html.escape(str(v))
