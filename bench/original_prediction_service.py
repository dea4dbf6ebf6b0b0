"""ANCHOR, not product code: a faithful re-creation of the original BridgeAI prediction service.

Digital Catapult's ``bridgeAI-prediction-service`` (``src/main.py``), reproduced for the
benchmark so the new service is measured against the original design on the same machine:

* a synchronous FastAPI endpoint (run in Starlette's thread pool);
* a SQLAlchemy session per request that inserts the log row and commits **before** calling the
  model, refreshes it, then commits again with the prediction (two commits per request);
* ``requests.post`` to the v2 endpoint with no session (a new TCP connection per request) and
  no timeout; categoricals upper-cased, as the original did; price from ``outputs[0].data[0]``;
* the original's ``prediction_logs`` columns (``prediction_response``, ``timestamp``,
  ``inference_time``).

Only what the original left as TODOs is filled in: it read an MLflow-style
``predictions[0][0]``, and the v2 response it was later pointed at has ``outputs[0].data[0]``.

    python bench/original_prediction_service.py --port P --model-url URL --database-url URL
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import UTC, datetime
from typing import Annotated, Literal

import requests
import uvicorn
from fastapi import Depends, FastAPI, HTTPException
from pydantic import BaseModel, Field, field_validator
from sqlalchemy import Column, DateTime, Float, Integer, String, create_engine
from sqlalchemy.orm import Session, declarative_base, sessionmaker

Base = declarative_base()
YesNoLiteral = Literal["YES", "yes", "Yes", "NO", "no", "No"]


class PredictionLog(Base):  # type: ignore[valid-type,misc]
    __tablename__ = "prediction_logs"

    id = Column(Integer, primary_key=True, index=True)
    mainroad = Column(String, nullable=False)
    guestroom = Column(String, nullable=False)
    basement = Column(String, nullable=False)
    hotwaterheating = Column(String, nullable=False)
    airconditioning = Column(String, nullable=False)
    prefarea = Column(String, nullable=False)
    furnishingstatus = Column(String, nullable=False)
    area = Column(Float, nullable=False)
    bedrooms = Column(Integer, nullable=False)
    bathrooms = Column(Integer, nullable=False)
    stories = Column(Integer, nullable=False)
    parking = Column(Integer, nullable=False)
    prediction_response = Column(Float, nullable=True)
    timestamp = Column(DateTime, default=datetime.now(UTC))
    inference_time = Column(Float, nullable=True)


class HousingData(BaseModel):
    mainroad: YesNoLiteral
    guestroom: YesNoLiteral
    basement: YesNoLiteral
    hotwaterheating: YesNoLiteral
    airconditioning: YesNoLiteral
    prefarea: YesNoLiteral
    furnishingstatus: Literal["furnished", "unfurnished", "semi-furnished"]
    area: int | float
    bedrooms: Annotated[int, Field(lt=10)]
    bathrooms: Annotated[int, Field(lt=10)]
    stories: Annotated[int, Field(lt=5)]
    parking: Annotated[int, Field(lt=10)]

    @field_validator("furnishingstatus", mode="before")
    def normalize_category(cls, v):
        if isinstance(v, str):
            return v.lower()
        raise ValueError("Invalid furnishing status!")


class ResponseModel(BaseModel):
    status: int
    message: str
    response: dict


DATATYPES = {
    **dict.fromkeys(
        (
            "mainroad",
            "guestroom",
            "basement",
            "hotwaterheating",
            "airconditioning",
            "prefarea",
            "furnishingstatus",
        ),
        "BYTES",
    ),
    "area": "FP32",
    **dict.fromkeys(("bedrooms", "bathrooms", "stories", "parking"), "INT64"),
}


def create_app(model_url: str, database_url: str) -> FastAPI:
    endpoint = f"{model_url.rstrip('/')}/v2/models/house_price_prediction_prod/infer"
    engine = create_engine(database_url.replace("postgresql://", "postgresql+psycopg://", 1))
    Base.metadata.create_all(engine)
    session_local = sessionmaker(autocommit=False, autoflush=False, bind=engine)

    def get_db():
        db = session_local()
        try:
            yield db
        finally:
            db.close()

    def preprocess_request(data: HousingData) -> dict:
        transformed = json.loads(data.model_dump_json())
        inputs = [
            {
                "name": key,
                "shape": [1],
                "datatype": DATATYPES[key],
                "data": [value.upper() if isinstance(value, str) else value],
            }
            for key, value in transformed.items()
        ]
        return {"inputs": inputs}

    app = FastAPI(title="House price prediction API", docs_url="/swagger", redoc_url="/api-docs")

    @app.post("/predict", response_model=ResponseModel)
    def get_prediction(house_data: HousingData, db: Session = Depends(get_db)):
        payload = preprocess_request(house_data)
        log_entry = PredictionLog(**house_data.model_dump())
        db.add(log_entry)
        db.commit()
        db.refresh(log_entry)
        log_entry.timestamp = datetime.now(UTC)
        try:
            start_time = time.perf_counter()
            response = requests.post(  # noqa: S113 - the original had no timeout
                endpoint, json=payload, headers={"Content-Type": "application/json"}
            )
            response.raise_for_status()
            predicted_price = response.json()["outputs"][0]["data"][0]
            log_entry.prediction_response = predicted_price
            log_entry.inference_time = time.perf_counter() - start_time
            db.commit()
            return {
                "status": 200,
                "message": "House price prediction successful",
                "response": {"prediction": predicted_price, "unit": "GBP(£)"},
            }
        except requests.exceptions.RequestException as e:
            db.rollback()
            raise HTTPException(
                status_code=500, detail=f"Regression model prediction service error: {e}"
            ) from None

    @app.get("/health")
    def health_check():
        return {"status": 200, "message": "success", "response": None}

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--model-url", required=True)
    parser.add_argument("--database-url", required=True)
    args = parser.parse_args()
    app = create_app(args.model_url, args.database_url)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
