"""Check evaluation.estimators against Open Bandit Pipeline (obp 0.5.7) on random logs: IPS, SNIPS and DR
(with and without clipping) must agree to 1e-9.

obp is not a dependency of the project: 0.5.7 pins scikit-learn 1.1.3, scipy 1.9.3 and Python < 3.11, and
imports torch at start (its neural policy learners; the estimators do not use it). Run it in a separate
virtual environment:

    python3 -m venv /tmp/obp-venv
    /tmp/obp-venv/bin/pip install --no-deps --ignore-requires-python obp==0.5.7
    /tmp/obp-venv/bin/pip install numpy scipy scikit-learn pandas tqdm pyyaml matplotlib seaborn
    /tmp/obp-venv/bin/pip install pyarrow   # for a log file
    /tmp/obp-venv/bin/python scripts/check_estimators_against_obp.py [LOG.parquet]

With a log file in `nbo evaluate --log`'s format with q_logged and q_target (e.g. the rows that
`nbo evaluate --catalogue ... --rows-out rows.parquet` estimated on), it also compares on those rows.
torch is replaced by empty stand-in modules so that obp imports without it.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import Any


def _stub(name: str) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__getattr__ = lambda attr: type(attr, (), {"__init__": lambda self, *a, **k: None})  # type: ignore[method-assign]
    module.__path__ = []
    return module


for _name in ("torch", "torch.nn", "torch.nn.functional", "torch.optim", "torch.utils", "torch.utils.data"):
    sys.modules[_name] = _stub(_name)
    if "." in _name:
        _parent, _child = _name.rsplit(".", 1)
        setattr(sys.modules[_parent], _child, sys.modules[_name])

import numpy as np  # noqa: E402
from obp.ope import (  # noqa: E402
    DoublyRobust,
    InverseProbabilityWeighting,
    SelfNormalizedInverseProbabilityWeighting,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from evaluation.estimators import estimate  # noqa: E402


def one_log(rng: np.random.Generator, trial: int) -> float:
    """The largest difference between ours and obp's three estimates on one random log."""
    n, actions = int(rng.integers(5, 3000)), int(rng.integers(2, 8))
    logging = np.clip(rng.dirichlet(np.ones(actions) * rng.uniform(0.05, 3), size=n), 1e-6, None)
    logging /= logging.sum(axis=1, keepdims=True)
    target = rng.dirichlet(np.ones(actions) * rng.uniform(0.05, 3), size=n)
    action = np.array([rng.choice(actions, p=p) for p in logging])
    reward = rng.binomial(1, rng.uniform(0, 1, n)).astype(float) if trial % 2 else rng.normal(3, 5, n)
    q = rng.uniform(0, 1, (n, actions))
    rows = np.arange(n)
    clip = None if trial % 3 else float(rng.uniform(1, 20))
    lam = np.inf if clip is None else clip
    common: dict[str, Any] = {"reward": reward, "action": action, "pscore": logging[rows, action],
                              "action_dist": target[:, :, None], "position": np.zeros(n, dtype=int)}  # fmt: skip
    ips = InverseProbabilityWeighting(lambda_=lam).estimate_policy_value(**common)
    snips = SelfNormalizedInverseProbabilityWeighting().estimate_policy_value(**common)
    dr = DoublyRobust(lambda_=lam).estimate_policy_value(**common, estimated_rewards_by_reg_model=q[:, :, None])
    ours = estimate(reward, logging[rows, action], target[rows, action], q_logged=q[rows, action],
                    q_target=(target * q).sum(axis=1), clip=clip, bootstrap=1)  # fmt: skip
    unclipped = estimate(reward, logging[rows, action], target[rows, action], bootstrap=1)
    assert ours.dr is not None
    return max(abs(ours.ips.estimate - ips), abs(unclipped.snips.estimate - snips), abs(ours.dr.estimate - dr))


def on_log_file(path: str) -> float:
    """The largest difference on a log file's rows: each row is a two-action problem (the logged offer,
    and "the rest", whose model value makes the target's expectation equal q_target)."""
    import pyarrow.parquet as pq

    columns = pq.read_table(path).to_pydict()
    reward, logging, target = (
        np.asarray(columns[k], float) for k in ("reward", "logging_probability", "target_probability")
    )
    q_logged, q_target = np.asarray(columns["q_logged"], float), np.asarray(columns["q_target"], float)
    rest = np.where(target < 1, (q_target - target * q_logged) / np.where(target < 1, 1 - target, 1), 0.0)
    n = len(reward)
    common: dict[str, Any] = {"reward": reward, "action": np.zeros(n, dtype=int), "pscore": logging,
                              "action_dist": np.stack([target, 1 - target], axis=1)[:, :, None],
                              "position": np.zeros(n, dtype=int)}  # fmt: skip
    q = np.stack([q_logged, rest], axis=1)[:, :, None]
    ours = estimate(reward, logging, target, q_logged=q_logged, q_target=q_target, bootstrap=1)
    assert ours.dr is not None
    differences = (
        abs(ours.ips.estimate - InverseProbabilityWeighting().estimate_policy_value(**common)),
        abs(ours.snips.estimate - SelfNormalizedInverseProbabilityWeighting().estimate_policy_value(**common)),
        abs(ours.dr.estimate - DoublyRobust().estimate_policy_value(**common, estimated_rewards_by_reg_model=q)),
    )
    return max(differences)


def main() -> None:
    if len(sys.argv) > 1:
        worst_file = on_log_file(sys.argv[1])
        print(f"{sys.argv[1]}: largest |ours - obp| over IPS, SNIPS, DR = {worst_file:.3g}")
        assert worst_file < 1e-9
    rng = np.random.default_rng(5)
    worst = max(one_log(rng, trial) for trial in range(200))
    print(f"200 random logs (5..3000 rows, 2..7 actions, 0/1 and real rewards, clipping on a third): "
          f"largest |ours - obp| over IPS, SNIPS, DR = {worst:.3g}")  # fmt: skip
    assert worst < 1e-9


if __name__ == "__main__":
    main()
