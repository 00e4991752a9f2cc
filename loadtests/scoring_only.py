"""The baseline of `make bench`: a scoring-only FastAPI + LightGBM service, as a bank would otherwise run.

The same model and offers as nbo, features from the same Parquet file held in a dict, LightGBM scoring
every offer in one call and the top N by score returned. No rules, policies, budgets, locks or history.

    NBO_CATALOGUE_DIR=... NBO_MODEL_DIR=... NBO_FEATURES_FILE=... \\
        uvicorn loadtests.scoring_only:app --workers 2 --loop uvloop --http httptools
"""

from __future__ import annotations

import os
import time

import numpy as np
from fastapi import FastAPI
from pydantic import BaseModel, Field

from decisioning.types import Context, CustomerFeatures
from features.files import read_feature_file
from models.registry import ModelRegistry
from policies.loader import load_catalogue

catalogue = load_catalogue(os.environ["NBO_CATALOGUE_DIR"])
scorer = ModelRegistry(os.environ["NBO_MODEL_DIR"]).load("nbo", engine="lightgbm")
customers = dict(read_feature_file(os.environ["NBO_FEATURES_FILE"], catalogue.features)[0])
app = FastAPI()


class ScoreIn(BaseModel):
    customer_id: str
    channel: str
    max_offers: int = Field(1, ge=1, le=20)


@app.post("/v1/decisions")
async def decide(body: ScoreIn) -> dict:
    values = customers.get(body.customer_id, {})
    customer, context = CustomerFeatures(body.customer_id, values), Context(body.channel, time.time())
    scores = scorer.score(customer, context, catalogue.offers)
    top = np.argsort(-scores)[: body.max_offers]
    return {"customer_id": body.customer_id, "offers": [
        {"offer_id": catalogue.offers[i].id, "propensity": float(scores[i])} for i in top]}  # fmt: skip


@app.get("/readyz")
async def ready() -> dict:
    return {"ready": True}
