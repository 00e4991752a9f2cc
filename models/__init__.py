"""Propensity models: P(response | customer, offer, channel, context) for the decision core.

- `encoding`: the design matrix of the one global model (customer features + offer, group, channel, intent);
- `lightgbm_scorer`: `LightGBMScorer`, the hot-path scorer (lleaves-compiled, LightGBM fallback);
- `prior`: `PriorScorer`, catalogue priors (or a Beta posterior) when no model is trained;
- `registry`: versions on disk, champion / challenger, `ChampionChallengerScorer`;
- `dataset`, `training`, `calibration`, `metrics`: point-in-time training data, training, evaluation;
- `demo`: the synthetic bank behind `nbo demo`; `bench`: the scoring benchmark.
"""
