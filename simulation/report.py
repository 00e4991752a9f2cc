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
    out["nbo_periods"] = periods(results)
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
    """Per policy: contacts, acceptances, acceptance rate, value per contact, contacts per customer."""
    t = Table(title="Simulated bank: policies compared")
    for column in ("policy", "decisions", "contacts", "acceptances", "acceptance rate", "value / contact",
                   "contacts / customer", "declines"):  # fmt: skip
        t.add_column(column, justify="left" if column == "policy" else "right")
    for policy, r in results.items():
        t.add_row(
            policy, f"{r['decisions']:,}", f"{r['contacts']:,}", f"{r['acceptances']:,}", f"{r['acceptance_rate']:.2%}",
            f"{r['value_per_contact']:.2f}", f"{r['contacts_per_customer']:.2f}", f"{r['declines']:,}",
        )  # fmt: skip
    return t


def suppressions_table(results: Results) -> Table:
    """Offers suppressed by each contact policy rule, per policy (an offer counted once per decision)."""
    t = Table(title="Contact-policy suppressions (offers suppressed, by rule)")
    t.add_column("rule")
    for policy in results:
        t.add_column(policy, justify="right")
    rules = sorted({rule for r in results.values() for rule in r["suppressions"]})
    for rule in rules:
        t.add_row(rule, *(f"{r['suppressions'].get(rule, 0):,}" for r in results.values()))
    return t


def periods(results: Results) -> list[dict[str, Any]]:
    """The NBO's retraining periods: its value per contact on those days, and the oracle's and the push's
    on the same days (the same visits; the days of a period differ in channel mix, so a period is
    compared with the other policies on its own days, not with another period)."""
    nbo = results.get("nbo")
    if nbo is None:
        return []
    days = len(nbo["value_per_day"])
    starts = [0] + [t["day"] for t in nbo["trainings"]]
    names = ["priors"] + [t["model"] for t in nbo["trainings"]]
    out = []
    for name, start, end in zip(names, starts, [*starts[1:], days], strict=True):
        row: dict[str, Any] = {"model": name, "days": [start, end]}
        for policy, r in results.items():
            value, contacts = sum(r["value_per_day"][start:end]), sum(r["contacts_per_day"][start:end])
            row[policy] = value / contacts if contacts else 0.0
        if "oracle" in results and row["oracle"]:
            row["nbo_vs_oracle"] = row["nbo"] / row["oracle"]
        out.append(row)
    return out


def periods_table(results: Results) -> Table:
    t = Table(title="NBO per model served: value per contact on the same days, by policy")
    t.add_column("model served by the NBO")
    t.add_column("days", justify="right")
    for policy in results:
        t.add_column(policy, justify="right")
    t.add_column("nbo / oracle", justify="right")
    for row in periods(results):
        ratio = f"{row['nbo_vs_oracle']:.1%}" if "nbo_vs_oracle" in row else "-"
        days = f"{row['days'][0] + 1}-{row['days'][1]}"
        t.add_row(row["model"], days, *(f"{row[p]:.2f}" for p in results), ratio)
    return t


def print_report(console: Console, results: Results) -> None:
    console.print(table(results))
    console.print(suppressions_table(results))
    if "nbo" in results:
        console.print(periods_table(results))
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
