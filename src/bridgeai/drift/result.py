"""What a drift comparison found: the columns compared and the result the flow returns.

:class:`DriftResult` is computed by :mod:`bridgeai.drift.analysis`, drawn by
:mod:`bridgeai.drift.report` and stored by :mod:`bridgeai.drift.storage`; it is the
``drift-monitoring`` flow's return value and the payload of its event.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from bridgeai import schema
from bridgeai.drift.stats import ColumnDrift, ColumnSpec

#: The prediction log's column holding the model's price.
PREDICTION = "prediction"
Status = Literal["compared", "no-rows-in-window"]


def column_specs(*, target: bool = False, prediction: bool = False) -> list[ColumnSpec]:
    """The columns to compare, from the schema: the 12 features, plus price and/or prediction.

    Args:
        target: compare the target ``price`` (two data versions).
        prediction: compare the model's ``prediction`` (a production window).
    """
    specs = []
    if target:
        specs.append(ColumnSpec(schema.TARGET, "num", "target"))
    for name in schema.FEATURES:
        specs.append(ColumnSpec(name, "num" if name in schema.NUMERIC else "cat"))
    if prediction:
        specs.append(ColumnSpec(PREDICTION, "num", "prediction"))
    return specs


class DriftResult(BaseModel):
    """What one drift comparison found, and where its report is."""

    status: Status = Field(
        description="compared, or no-rows-in-window when the production window was empty"
    )
    message: str = Field(description="One line saying what was found")
    reference: str = Field(description="The reference data version (concrete tag)")
    current: str = Field(description="The current data version, or 'production'")
    window_start: datetime | None = Field(default=None, description="Production window start")
    window_end: datetime | None = Field(default=None, description="Production window end")
    reference_rows: int
    current_rows: int
    drift_detected: bool = Field(
        description="The share of drifted columns reached drift_share_threshold"
    )
    drift_share: float = Field(description="Share of compared columns that drifted")
    drift_share_threshold: float
    number_of_columns: int
    columns: list[ColumnDrift] = Field(default_factory=list)
    drifted_columns: list[str] = Field(default_factory=list)
    report_uri: str | None = Field(default=None, description="fsspec URI of the HTML report")
    json_uri: str | None = Field(default=None, description="fsspec URI of the JSON report")
    report_url: str | None = Field(
        default=None, description="A link to open the HTML (file://, or a presigned S3 URL)"
    )
    report_url_expires_at: datetime | None = Field(
        default=None, description="When the presigned report_url expires (None: no expiry)"
    )
    report_sample_rows: int | None = Field(
        default=None,
        description="Rows per side drawn in the HTML charts when sampled (scores use all rows)",
    )
    event_id: str | None = Field(default=None, description="Id of the drift event, if emitted")
    notes: list[str] = Field(default_factory=list)

    def column(self, name: str) -> ColumnDrift:
        """The verdict for one column.

        Raises:
            KeyError: the column was not compared.
        """
        for column in self.columns:
            if column.column == name:
                return column
        raise KeyError(f"{name!r} was not compared; columns: {[c.column for c in self.columns]}")
