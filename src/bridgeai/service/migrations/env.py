"""Alembic environment for the prediction log (run by ``prediction_log.migrate``).

The caller passes an open connection in ``config.attributes["connection"]``; there is no
``alembic.ini`` and no logging configuration here, so migrations never reconfigure the host
process's logging. For the ``alembic`` command line, set ``sqlalchemy.url`` with ``-x url=...``.
"""

from __future__ import annotations

from alembic import context

from bridgeai.service.prediction_log import VERSION_TABLE, create_log_engine, metadata

config = context.config


def _configure(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(
        connection=connection,
        target_metadata=metadata,
        version_table=VERSION_TABLE,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option(
        "sqlalchemy.url"
    )
    if not url:
        raise SystemExit("pass the database with -x url=postgresql://... or sqlite:///...")
    engine = create_log_engine(url)
    try:
        with engine.begin() as own_connection:
            _configure(own_connection)
            context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported; run against a database")
run_migrations_online()
