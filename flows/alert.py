"""The drift-alert flow: tell a human that production traffic drifted, and keep a record of it.

Started by the ``drift-alert`` automation on ``bridgeai.drift.detected`` from a *production*
window (``prefect.yaml``), with the event's figures as parameters. It records the
``drift-alert`` markdown artifact and sends one message through a Prefect notification block
(Slack, Teams, e-mail, a custom webhook: any block with ``notify``). It does not retrain:
production traffic has no labels, and retraining on the labelled data the model already learned
from would change nothing. New labelled data arrives through ``data-ingestion``, whose
``bridgeai.data.versioned`` event starts training.

From a notebook::

    from flows.alert import drift_alert
    drift_alert(drifted_columns=["area"], drift_share=0.23, report_url="https://...")
"""

from __future__ import annotations

import inspect
from datetime import datetime
from typing import Annotated, Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from pydantic import BaseModel, Field

from blocks import BlockNotFoundError, prefect_server_configured
from flows._tasks import IO_RETRIES

DEFAULT_NOTIFICATION_BLOCK = "bridgeai-alerts"


class AlertResult(BaseModel):
    """What the alert said and where it went."""

    subject: str
    body: str
    notified: bool = Field(description="True when the notification block accepted the message.")
    notification_block: str | None = Field(
        default=None, description="<block type>/<name> of the block used, if any."
    )
    note: str = ""


def find_notification_block(name: str) -> Any | None:
    """The saved block ``name`` (or ``<type-slug>/<name>``) that can ``notify``, or None.

    Raises:
        BlockNotFoundError: against a Prefect server, no notification block has that name.
    """
    from prefect.blocks.core import Block
    from prefect.client.orchestration import get_client

    if not prefect_server_configured():
        if name == DEFAULT_NOTIFICATION_BLOCK:
            return None  # embedded mode: nothing is saved anywhere
        raise BlockNotFoundError(
            f"no notification block {name!r}: no Prefect server is configured (embedded mode)"
        )
    if "/" in name:
        return Block.load(name, _sync=True)  # type: ignore[call-arg]
    with get_client(sync_client=True) as client:
        documents = client.read_block_documents(include_secrets=False)
    found = [
        d
        for d in documents
        if d.name == name and "notify" in (d.block_schema.capabilities if d.block_schema else [])
    ]
    if not found:
        raise BlockNotFoundError(
            f"no notification block named {name!r} is saved. Create one, e.g. "
            "CustomWebhookNotificationBlock(name=..., url=..., "
            "json_data={'text': '{{subject}}: {{body}}'})"
            f".save({name!r}) or a Slack webhook block (`prefect block create slack-webhook`), "
            "or pass notification_block='<type-slug>/<name>'"
        )
    slug = found[0].block_type.slug if found[0].block_type else ""
    return Block.load(f"{slug}/{name}", _sync=True)  # type: ignore[call-arg]


@task(name="send-notification", **IO_RETRIES)
def send_notification(block: Any, subject: str, body: str) -> None:
    """``block.notify(body, subject)``, failing when the service refused the message."""
    with block.raise_on_failure():
        sent = block.notify(body=body, subject=subject)
        if inspect.isawaitable(sent):
            from prefect.utilities.asyncutils import run_coro_as_sync

            run_coro_as_sync(sent)


@flow(name="drift-alert")
def drift_alert(
    drifted_columns: Annotated[
        list[str] | None, Field(description="Columns whose distribution drifted.")
    ] = None,
    drift_share: Annotated[
        float, Field(ge=0, le=1, description="Share of the compared columns that drifted.")
    ] = 0.0,
    drift_share_threshold: Annotated[
        float, Field(ge=0, le=1, description="The threshold that share reached.")
    ] = 0.5,
    reference: Annotated[
        str | None, Field(description="Data version the traffic was compared with.")
    ] = None,
    current: Annotated[
        str, Field(description="What was compared: 'production' or a data version.")
    ] = "production",
    window_start: Annotated[
        datetime | None, Field(description="Start of the production window (UTC).")
    ] = None,
    window_end: Annotated[
        datetime | None, Field(description="End of the production window (UTC).")
    ] = None,
    current_rows: Annotated[int, Field(ge=0, description="Logged predictions compared.")] = 0,
    report_url: Annotated[
        str | None, Field(description="Link to the Evidently report (presigned).")
    ] = None,
    report_url_expires_at: Annotated[
        datetime | None, Field(description="When that link expires.")
    ] = None,
    event_id: Annotated[
        str | None, Field(description="The bridgeai.drift.detected event being reported.")
    ] = None,
    notification_block: Annotated[
        str,
        Field(
            description="Notification block to send through: its name, or <type-slug>/<name> "
            "(e.g. slack-webhook/ops)."
        ),
    ] = DEFAULT_NOTIFICATION_BLOCK,
) -> AlertResult:
    """Report drift of production traffic: a drift-alert artifact and one notification.

    Does not retrain: logged predictions carry no labels, and retraining on the labelled data
    the model already learned from changes nothing.

    Args:
        drifted_columns: Columns whose distribution drifted.
        drift_share: Share of the compared columns that drifted.
        drift_share_threshold: The threshold that share reached.
        reference: Data version the traffic was compared with.
        current: What was compared: 'production' or a data version.
        window_start: Start of the production window (UTC).
        window_end: End of the production window (UTC).
        current_rows: Logged predictions compared.
        report_url: Link to the Evidently report (presigned).
        report_url_expires_at: When that link expires.
        event_id: The bridgeai.drift.detected event being reported.
        notification_block: Notification block to send through: its name, or
            <type-slug>/<name> (e.g. slack-webhook/ops).

    Returns:
        The message, and whether the notification block accepted it.
    """
    logger = get_run_logger()
    drifted_columns = drifted_columns or []
    columns = ", ".join(drifted_columns) or "none"
    window = (
        f"{window_start:%Y-%m-%d %H:%M} to {window_end:%Y-%m-%d %H:%M} UTC"
        if window_start and window_end
        else current
    )
    subject = f"BridgeAI: drift in {current} traffic ({drift_share:.0%} of columns)"
    expiry = (
        f" (link valid until {report_url_expires_at:%Y-%m-%d %H:%M} UTC)"
        if report_url_expires_at
        else ""
    )
    body = (
        f"{len(drifted_columns)} column(s) drifted ({drift_share:.0%}, threshold "
        f"{drift_share_threshold:.0%}): {columns}. Window {window}, {current_rows:,} predictions, "
        f"compared with {reference or 'the champion training data'}. "
        f"Report: {report_url or 'none'}{expiry}. No retraining was started: label recent "
        "traffic and ingest it as a new data version to retrain."
    )
    link = f"[Evidently report]({report_url}){expiry}" if report_url else "-"
    create_markdown_artifact(
        key="drift-alert",
        markdown="\n".join(
            [
                "# Drift in production traffic",
                "",
                f"**{columns}** drifted: {drift_share:.0%} of the compared columns (threshold "
                f"{drift_share_threshold:.0%}).",
                "",
                "| | |",
                "|---|---|",
                f"| window | {window} |",
                f"| predictions compared | {current_rows:,} |",
                f"| reference | `{reference or 'champion training data'}` |",
                f"| report | {link} |",
                f"| event | `{event_id or '-'}` |",
                "",
                "No retraining was started: production traffic has no labels. Label recent "
                "traffic and run `data-ingestion` with it; its `bridgeai.data.versioned` event "
                "trains a model on it.",
            ]
        ),
        description=subject,
    )
    block = find_notification_block(notification_block)
    if block is None:
        note = f"no notification block {notification_block!r} (embedded mode): only recorded"
        logger.warning(note)
        return AlertResult(subject=subject, body=body, notified=False, note=note)
    send_notification(block, subject, body)
    name = f"{block.get_block_type_slug()}/{block._block_document_name or notification_block}"
    logger.info("Drift alert sent through %s", name)
    return AlertResult(subject=subject, body=body, notified=True, notification_block=name)
