"""`nbo simulate`'s output: a rich table, the JSON document, and the plot of value per day per policy.

>>> document({"random": {"value_per_contact": 1.0, "acceptance_rate": 0.1}}, {"seed": 1})["policies"]["random"]
{'value_per_contact': 1.0, 'acceptance_rate': 0.1}
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

Results = Mapping[str, Mapping[str, Any]]


def document(results: Results, run: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON document: the run's parameters, and per policy its summary (simulation/stats.py)."""
    policies = {p: dict(r) for p, r in results.items()}
    out: dict[str, Any] = {"run": dict(run), "policies": policies}
    out.update(policies)  # `nbo`, `random`, `push`, `oracle` at the top level too, as issue 16 reads them
    out["ratios"] = ratios(results)
    return out


def ratios(results: Results) -> dict[str, float]:
    """The must-show ratios of value per contact, where both policies ran."""
    def vpc(policy: str) -> float | None:
        r = results.get(policy)
        return None if r is None else float(r["value_per_contact"])

    pairs = {"nbo_vs_oracle": ("nbo", "oracle"), "nbo_vs_push": ("nbo", "push"), "nbo_vs_random": ("nbo", "random")}
    out = {}
    for name, (a, b) in pairs.items():
        x, y = vpc(a), vpc(b)
        if x is not None and y:
            out[name] = x / y
    return out


def write_json(path: Path, results: Results, run: Mapping[str, Any]) -> None:
    path.write_text(json.dumps(document(results, run), indent=2))


def table(results: Results) -> Table:
    """Per policy: acceptances, acceptance rate, value per contact, contacts per customer, suppressions."""
    t = Table(title="Simulated bank: policies compared")
    for column in ("policy", "contacts", "acceptances", "acceptance rate", "value / contact",
                   "contacts / customer", "suppressed (by policy rule)"):  # fmt: skip
        t.add_column(column, justify="left" if column in ("policy", "suppressed (by policy rule)") else "right")
    for policy, r in results.items():
        suppressed = ", ".join(f"{k} {v:,}" for k, v in sorted(r["suppressions"].items(), key=lambda kv: -kv[1]))
        t.add_row(
            policy, f"{r['contacts']:,}", f"{r['acceptances']:,}", f"{r['acceptance_rate']:.2%}",
            f"{r['value_per_contact']:.2f}", f"{r['contacts_per_customer']:.2f}", suppressed,
        )  # fmt: skip
    return t


def models_table(nbo: Mapping[str, Any]) -> Table:
    """The NBO policy's value per contact per model it served (priors, then each retraining)."""
    t = Table(title="NBO: value per contact per model served")
    for column in ("model", "contacts", "acceptances", "value / contact"):
        t.add_column(column, justify="left" if column == "model" else "right")
    for model, m in nbo["value_per_contact_by_model"].items():
        t.add_row(model, f"{m['contacts']:,}", f"{m['acceptances']:,}", f"{m['value_per_contact']:.2f}")
    return t


def print_report(console: Console, results: Results) -> None:
    console.print(table(results))
    if "nbo" in results:
        console.print(models_table(results["nbo"]))
    for name, value in ratios(results).items():
        console.print(f"{name.replace('_', ' ')}: {value:.3f}")


def plot(path: Path, results: Results, title: str) -> None:
    """Value per contact per day, one line per policy (matplotlib, Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4.8))
    for policy, r in results.items():
        per_day = [v / c if c else 0.0 for v, c in zip(r["value_per_day"], r["contacts_per_day"], strict=True)]
        ax.plot(range(1, len(per_day) + 1), per_day, label=policy, marker="o", markersize=3)
    for training in results.get("nbo", {}).get("trainings", []):
        ax.axvline(training["day"] + 1, color="grey", linestyle=":", linewidth=1)
    ax.set_xlabel("simulated day (dotted: the NBO retrains)")
    ax.set_ylabel("value per contact (EUR)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
