"""The service a user writes today to serve the churn model: FastAPI + onnxruntime.

    MODEL=registry/churn/v0001/model.onnx uvicorn fastapi_app:app --workers 2 --loop uvloop --http httptools

`POST /predict` takes the same JSON rows as `dagrun serve`'s `POST /predict/churn`
(`[{"age": 39, "income": 19350.0, ...}]`), validates them with pydantic, puts the features in the
model's input order, runs one `InferenceSession` (loaded once per worker process) and answers
`{"predictions": [...], "probabilities": [[...], ...]}`.

Benchmark knobs (environment), both off by default, i.e. what a user writes without tuning:
`ORT_INTRA_THREADS` (the session's intra-op threads; onnxruntime's default is one per core) and
`PREDICT_SYNC=1` (a plain `def` endpoint, run in Starlette's thread pool, instead of `async def`).
"""

import json
import os

import numpy as np
import onnxruntime as ort
from fastapi import FastAPI
from pydantic import BaseModel


class Row(BaseModel):
    age: float
    income: float
    tenure_months: float
    region: float
    num_purchases: float
    avg_basket: float
    days_since_last: float
    support_calls: float
    discount_rate: float
    session_minutes: float


FEATURES = list(Row.model_fields)

options = ort.SessionOptions()
if os.environ.get("ORT_INTRA_THREADS"):
    options.intra_op_num_threads = int(os.environ["ORT_INTRA_THREADS"])
session = ort.InferenceSession(os.environ["MODEL"], options, providers=["CPUExecutionProvider"])
INPUT = session.get_inputs()[0].name

# The features the model was trained on, in its input order (dagrun-train records them).
trained = json.loads(session.get_modelmeta().custom_metadata_map.get("features", "null") or "null")
if trained is not None and trained != FEATURES:
    raise SystemExit(f"the model takes {trained}, this service sends {FEATURES}")

app = FastAPI()


def run(rows: list[Row]) -> dict:
    x = np.array([[getattr(r, f) for f in FEATURES] for r in rows], dtype=np.float32)
    labels, probabilities = session.run(None, {INPUT: x})
    return {"predictions": labels.tolist(), "probabilities": probabilities.tolist()}


if os.environ.get("PREDICT_SYNC") == "1":

    @app.post("/predict")
    def predict(rows: list[Row]):
        return run(rows)

else:

    @app.post("/predict")
    async def predict(rows: list[Row]):
        return run(rows)


@app.get("/health")
async def health():
    return {"ok": True}
