"""The prediction log's database (PostgreSQL or SQLite) as a typed Prefect Block."""

from __future__ import annotations

import os

from prefect.blocks.core import Block
from pydantic import Field, SecretStr, field_validator

#: The variable the prediction service reads its database URL from (``bridgeai serve``).
SERVICE_DATABASE_URL_ENV = "BRIDGEAI_DATABASE_URL"


class PredictionDatabase(Block):
    """Where the prediction service logs every request and drift monitoring reads them back.

    ``url`` names the database without its password (``postgresql://user@host:5432/db`` or
    ``sqlite:///path/to/file.db``); the password is a separate secret field. With no ``url`` the
    block means the database the prediction service on this machine uses: ``$BRIDGEAI_DATABASE_URL``
    when set, else the embedded SQLite file under ``$BRIDGEAI_HOME/service``. With no
    ``password``, PostgreSQL's client library reads ``PGPASSWORD`` from the environment (on the
    cluster it comes from a Kubernetes Secret by ``secretKeyRef``), so a block saved in a shared
    Prefect server can hold no secret at all. ``database_url()`` is the one place the URL the
    library connects with is put together.
    """

    _block_type_name = "BridgeAI Prediction Database"
    _block_type_slug = "bridgeai-prediction-database"
    _logo_url = "https://www.postgresql.org/media/img/about/press/elephant.png"  # type: ignore[assignment]
    _description = "Database of the prediction log (prediction_logs): URL and password."

    url: str | None = Field(
        default=None,
        description="postgresql://user@host:port/database or sqlite:///path/to/file.db, "
        "without a password. Empty: $BRIDGEAI_DATABASE_URL, else the embedded SQLite log under "
        "$BRIDGEAI_HOME/service.",
    )
    password: SecretStr | None = Field(
        default=None,
        description="PostgreSQL password. Empty: PGPASSWORD from the environment (a Kubernetes "
        "Secret on the cluster), or none.",
    )

    @field_validator("url")
    @classmethod
    def _no_password_in_url(cls, value: str | None) -> str | None:
        if not value:
            return None
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            parsed = make_url(value)
        except ArgumentError:
            raise ValueError(
                "url must be postgresql://user@host:port/database or sqlite:///path/to/file.db"
            ) from None
        if parsed.password is not None:
            raise ValueError(
                "url must not carry the password: put it in the password field "
                "(PredictionDatabase.from_url(url) splits a full URL for you)"
            )
        return value

    @classmethod
    def from_url(cls, database_url: str) -> PredictionDatabase:
        """A block for a full URL (as ``BRIDGEAI_DATABASE_URL`` holds it), password split off."""
        from sqlalchemy.engine import make_url

        parsed = make_url(database_url)
        password = parsed.password
        bare = parsed._replace(password=None).render_as_string(hide_password=False)
        return cls(url=bare, password=SecretStr(str(password)) if password is not None else None)

    def database_url(self) -> str:
        """The URL to connect with, password included: pass it to the library, never log it."""
        if not self.url:
            from bridgeai.service.prediction_log import default_database_url

            return os.environ.get(SERVICE_DATABASE_URL_ENV) or default_database_url()
        if self.password is None:
            return self.url
        from sqlalchemy.engine import make_url

        with_password = make_url(self.url).set(password=self.password.get_secret_value())
        return with_password.render_as_string(hide_password=False)

    def redacted(self) -> str:
        """The URL with any password hidden, for logs and artifacts."""
        from bridgeai.service.prediction_log import redacted

        return redacted(self.database_url())
