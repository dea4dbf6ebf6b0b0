"""The prediction log: one row per house the prediction service was asked about.

The prediction service writes here (batched, off the request path, see
:mod:`bridgeai.service.log_writer`); drift monitoring reads production traffic back with
:func:`read_window`. The table is owned by this module and created or upgraded by the Alembic
migrations in ``bridgeai/service/migrations`` (:func:`migrate`), which the service runs at start-up.

``database_url`` is what users configure (``BRIDGEAI_DATABASE_URL``): a standard
``postgresql://user:pass@host:port/db`` URL, whose driver this module picks (psycopg 3), or a
``sqlite:///path`` URL. Embedded mode defaults to a SQLite file under ``$BRIDGEAI_HOME``.

A row is identified by ``(request_id, batch_index)``: a single prediction has index 0, row ``i``
of a batch request has index ``i``. Inserts ignore rows already present, so replaying a spool
after a crash never duplicates a request.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Engine, make_url

from bridgeai import schema
from bridgeai.model.errors import BridgeAIError
from bridgeai.paths import home_dir

if TYPE_CHECKING:
    import polars as pl

TABLE = "prediction_logs"
#: Alembic's bookkeeping table; named for this project so it never collides with another
#: application's migrations in a shared database.
VERSION_TABLE = "bridgeai_alembic_version"
MIGRATIONS = "bridgeai.service:migrations"
#: Status of a successful prediction; :func:`read_window` returns only these rows.
STATUS_OK = 200


class PredictionLogError(BridgeAIError, RuntimeError):
    """The prediction log cannot be read; the message says what to check.

    ``transient`` is true when the database could not be reached (worth retrying), false when
    it answered but holds no prediction log.
    """


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """A timestamp stored in UTC and always returned timezone-aware.

    PostgreSQL stores ``timestamptz`` natively; SQLite has no time zones, so values are stored as
    naive UTC there and given back their zone on the way out. Naive inputs are taken as UTC.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        value = _as_utc(value)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        return None if value is None else _as_utc(value)


def _as_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _feature_column(name: str) -> sa.Column[Any]:
    if name in schema.CATEGORICAL:
        return sa.Column(name, sa.String(32), nullable=False)
    if name in schema.COUNTS:
        return sa.Column(name, sa.Integer, nullable=False)
    return sa.Column(name, sa.Float, nullable=False)


metadata = sa.MetaData()

#: The table. Feature columns follow :data:`bridgeai.schema.FEATURES`; categoricals are stored
#: normalised (lower case), exactly as they were sent to the model.
prediction_logs = sa.Table(
    TABLE,
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    *(_feature_column(name) for name in schema.FEATURES),
    sa.Column("prediction", sa.Float, nullable=True, comment="price; NULL when the call failed"),
    sa.Column("model_name", sa.String(200), nullable=False),
    sa.Column("model_version", sa.String(100), nullable=True),
    sa.Column("request_id", sa.String(64), nullable=False),
    sa.Column("batch_index", sa.Integer, nullable=False, server_default="0"),
    sa.Column("latency_ms", sa.Float, nullable=False),
    sa.Column("status", sa.SmallInteger, nullable=False, comment="HTTP status returned"),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("request_id", "batch_index", name="uq_prediction_logs_request"),
    sa.Index("ix_prediction_logs_created_at", "created_at"),
)

#: Columns of a log row as the writer supplies them (everything but the surrogate key).
ROW_COLUMNS: tuple[str, ...] = tuple(c.name for c in prediction_logs.columns if c.name != "id")


def default_database_url() -> str:
    """Embedded mode's prediction log: a SQLite file under ``$BRIDGEAI_HOME/service``."""
    return f"sqlite:///{home_dir('service') / 'predictions.db'}"


def sqlalchemy_url(database_url: str) -> URL:
    """Turn a user's database URL into SQLAlchemy's, choosing the driver.

    ``postgresql://`` and ``postgres://`` URLs get the psycopg 3 driver; SQLite URLs and URLs
    that already name a driver are kept.

    Raises:
        ValueError: the URL is not a PostgreSQL or SQLite URL.
    """
    try:
        url = make_url(database_url)
    except sa.exc.ArgumentError:
        raise ValueError(
            "BRIDGEAI_DATABASE_URL is not a database URL: expected "
            "postgresql://user:password@host:port/database or sqlite:///path/to/file.db"
        ) from None
    backend = url.get_backend_name()
    if backend in ("postgresql", "postgres"):
        if url.drivername in ("postgresql", "postgres"):
            url = url.set(drivername="postgresql+psycopg")
        return url
    if backend == "sqlite":
        return url
    raise ValueError(
        f"unsupported database {backend!r} in BRIDGEAI_DATABASE_URL: use PostgreSQL "
        "(postgresql://user:password@host:port/database) or SQLite (sqlite:///path/to/file.db)"
    )


def redacted(database_url: str | URL) -> str:
    """The URL with its password hidden, for logs and error messages."""
    url = database_url if isinstance(database_url, URL) else make_url(database_url)
    return url.render_as_string(hide_password=True)


def create_log_engine(database_url: str, *, connect_timeout: float = 5.0, **kwargs: Any) -> Engine:
    """An engine for the prediction log with bounded connection attempts.

    PostgreSQL connections time out after ``connect_timeout`` seconds, so a database that is down
    fails fast instead of hanging its caller. SQLite runs in WAL mode so readers (drift) never
    block the writer.
    """
    url = sqlalchemy_url(database_url)
    if url.get_backend_name() == "postgresql":
        connect_args = {"connect_timeout": max(1, round(connect_timeout))}
        engine = sa.create_engine(url, connect_args=connect_args, pool_pre_ping=True, **kwargs)
    else:
        if url.database and url.database != ":memory:":
            from pathlib import Path

            Path(url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"timeout": connect_timeout}, **kwargs)
        sa.event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def migrate(engine: Engine) -> None:
    """Create or upgrade the prediction log's tables to the newest migration.

    Safe to call from several processes at once: on PostgreSQL an advisory lock serialises the
    upgrade; SQLite serialises writers itself.
    """
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", MIGRATIONS)
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            # An arbitrary, fixed lock id: "bridgeai" in ASCII, truncated to 63 bits.
            connection.execute(sa.text("SELECT pg_advisory_xact_lock(7093413235058255209)"))
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def insert_rows(connection: Connection, rows: Iterable[Mapping[str, Any]]) -> int:
    """Insert log rows, skipping any ``(request_id, batch_index)`` already stored.

    On PostgreSQL, batches of :data:`COPY_MIN_ROWS` or more are streamed with ``COPY`` into a
    per-connection temporary table and moved with one ``INSERT ... SELECT ... ON CONFLICT DO
    NOTHING``: about five times less CPU per row than a multi-row ``INSERT`` through
    SQLAlchemy, which matters because the writer shares the service's interpreter.

    Returns the number of rows offered (not only the new ones: skipped duplicates are not
    counted separately).
    """
    batch = [dict(row) for row in rows]
    if not batch:
        return 0
    dialect = connection.dialect.name
    if dialect == "postgresql":
        if len(batch) >= COPY_MIN_ROWS:
            _copy_rows(connection, batch)
            return len(batch)
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        statement: Any = pg_insert(prediction_logs).on_conflict_do_nothing(
            constraint="uq_prediction_logs_request"
        )
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        statement = sqlite_insert(prediction_logs).on_conflict_do_nothing(
            index_elements=["request_id", "batch_index"]
        )
    else:  # pragma: no cover - sqlalchemy_url() admits only the two above
        statement = prediction_logs.insert()
    connection.execute(statement, batch)
    return len(batch)


#: Batches this large go through ``COPY`` on PostgreSQL (see :func:`insert_rows`).
COPY_MIN_ROWS = 20
_STAGING = "bridgeai_prediction_logs_staging"
_COLUMN_LIST = ", ".join(ROW_COLUMNS)


def _copy_rows(connection: Connection, batch: list[dict[str, Any]]) -> None:
    import psycopg

    try:
        _copy_with_driver(connection, batch)
    except psycopg.Error as exc:
        # Raised by the driver directly: give callers SQLAlchemy's exception types, as for
        # every other statement (OperationalError for a lost server, DataError for a bad row).
        raise sa.exc.DBAPIError.instance(
            "COPY prediction_logs", None, exc, psycopg.Error, hide_parameters=True
        ) from exc


def _copy_with_driver(connection: Connection, batch: list[dict[str, Any]]) -> None:
    raw = connection.connection  # SQLAlchemy's pooled DBAPI connection; .info lives with it
    driver = raw.driver_connection
    with driver.cursor() as cursor:  # type: ignore[union-attr]
        if not raw.info.get(_STAGING):
            cursor.execute(
                f"CREATE TEMP TABLE IF NOT EXISTS {_STAGING} ON COMMIT DELETE ROWS AS "
                f"SELECT {_COLUMN_LIST} FROM {TABLE} WITH NO DATA"
            )
            raw.info[_STAGING] = True
        with cursor.copy(f"COPY {_STAGING} ({_COLUMN_LIST}) FROM STDIN") as copy:
            for row in batch:
                copy.write_row(
                    [
                        _as_utc(row[name]) if name == "created_at" else row.get(name)
                        for name in ROW_COLUMNS
                    ]
                )
        cursor.execute(
            f"INSERT INTO {TABLE} ({_COLUMN_LIST}) SELECT {_COLUMN_LIST} FROM {_STAGING} "
            "ON CONFLICT ON CONSTRAINT uq_prediction_logs_request DO NOTHING"
        )
        # ON COMMIT DELETE ROWS empties the staging table; an explicit delete keeps it empty
        # if the caller batches several calls in one transaction.
        cursor.execute(f"DELETE FROM {_STAGING}")


def _frame_schema() -> dict[str, Any]:
    import polars as pl

    types: dict[str, Any] = {}
    for name in ROW_COLUMNS:
        if name in schema.CATEGORICAL or name in ("model_name", "model_version", "request_id"):
            types[name] = pl.String
        elif name in schema.COUNTS or name in ("batch_index", "status"):
            types[name] = pl.Int64
        elif name == "created_at":
            types[name] = pl.Datetime("us", "UTC")
        else:
            types[name] = pl.Float64
    return types


def read_window(database_url: str, start: datetime, end: datetime) -> pl.DataFrame:
    """The successful predictions logged in ``[start, end)``, oldest first.

    Args:
        database_url: the prediction log's URL (as in ``BRIDGEAI_DATABASE_URL``).
        start: inclusive lower bound of ``created_at``; naive datetimes are taken as UTC.
        end: exclusive upper bound of ``created_at``.

    Returns:
        A frame with the 12 feature columns (named as in :data:`bridgeai.schema.FEATURES`, with
        categoricals in lower case), ``prediction``, ``model_name``, ``model_version``,
        ``request_id``, ``batch_index``, ``latency_ms``, ``status`` and ``created_at`` (UTC).
        An empty window gives an empty frame with the same columns and types.

    Raises:
        PredictionLogError: the database cannot be reached or has no prediction log yet.
    """
    import polars as pl

    engine = create_log_engine(database_url)
    table = prediction_logs
    query = (
        sa.select(*(table.c[name] for name in ROW_COLUMNS))
        .where(table.c.status == STATUS_OK)
        .where(table.c.created_at >= _as_utc(start), table.c.created_at < _as_utc(end))
        .order_by(table.c.created_at, table.c.id)
    )
    try:
        with engine.connect() as connection:
            if not sa.inspect(connection).has_table(TABLE):
                raise PredictionLogError(
                    f"{redacted(engine.url)} has no {TABLE} table yet: start the prediction "
                    "service once against it (it creates the table), or check "
                    "BRIDGEAI_DATABASE_URL"
                )
            rows = connection.execute(query).all()
    except sa.exc.OperationalError as exc:
        raise PredictionLogError(
            f"cannot read the prediction log at {redacted(engine.url)}: "
            f"{type(exc.orig).__name__ if exc.orig else 'connection failed'}",
            transient=True,
        ) from None
    finally:
        engine.dispose()
    return pl.DataFrame(rows, schema=_frame_schema(), orient="row")
