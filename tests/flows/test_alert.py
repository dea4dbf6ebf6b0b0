"""The drift-alert flow: one notification through a real Prefect notification block (a custom
webhook to a receiver on loopback), a drift-alert artifact, and clear failures."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

import pytest

from blocks import BlockNotFoundError
from flows.alert import drift_alert
from tests.support.drift import artifacts_of
from tests.support.webhook import webhook_receiver

pytestmark = pytest.mark.usefixtures("prefect_harness")

START = datetime(2025, 6, 1, 9, 0, tzinfo=UTC)
FIGURES = {
    "drifted_columns": ["area", "prediction"],
    "drift_share": 2 / 13,
    "drift_share_threshold": 0.1,
    "reference": "data-v1.0.0",
    "current": "production",
    "window_start": START,
    "window_end": START + timedelta(hours=1),
    "current_rows": 500,
    "report_url": "http://127.0.0.1:9/evidently-reports/report_x.html?X-Amz-Signature=abc",
    "report_url_expires_at": START + timedelta(days=7),
    "event_id": "0190c2b4-0000-7000-8000-000000000001",
}


def _webhook_block(url: str) -> str:
    from prefect.blocks.notifications import CustomWebhookNotificationBlock

    name = f"alerts-{secrets.token_hex(3)}"
    CustomWebhookNotificationBlock(
        name="bridgeai alerts",
        url=url,
        json_data={"subject": "{{subject}}", "text": "{{body}}"},
    ).save(name)
    return name


def test_one_notification_and_an_artifact() -> None:
    with webhook_receiver() as receiver:
        name = _webhook_block(receiver.url)
        state = drift_alert(**FIGURES, notification_block=name, return_state=True)
        result = state.result()
        posts = receiver.posts()
    assert result.notified and result.notification_block == f"custom-webhook/{name}"
    assert len(posts) == 1
    body = posts[0]["body"]
    assert body["subject"] == "BridgeAI: drift in production traffic (15% of columns)"
    assert "area, prediction" in body["text"] and FIGURES["report_url"] in body["text"]
    assert "No retraining was started" in body["text"]
    assert "2025-06-08 09:00 UTC" in body["text"]  # the link's stated expiry
    alert = artifacts_of(state.state_details.flow_run_id)["drift-alert"].data
    assert "**area, prediction** drifted" in alert
    assert f"[Evidently report]({FIGURES['report_url']})" in alert
    assert FIGURES["event_id"] in alert


def test_the_block_can_be_named_with_its_type() -> None:
    with webhook_receiver() as receiver:
        name = _webhook_block(receiver.url)
        result = drift_alert(**FIGURES, notification_block=f"custom-webhook/{name}")
        assert result.notified and len(receiver.posts()) == 1


def test_a_missing_block_fails_after_recording_the_alert() -> None:
    name = f"missing-{secrets.token_hex(3)}"
    state = drift_alert(**FIGURES, notification_block=name, return_state=True)
    assert state.is_failed()
    with pytest.raises(BlockNotFoundError, match=f"no notification block named '{name}'"):
        state.result()
    assert "drift-alert" in artifacts_of(state.state_details.flow_run_id)


def test_a_refused_notification_fails_the_run() -> None:
    import httpx

    with webhook_receiver(status=400) as receiver:
        name = _webhook_block(receiver.url)
        state = drift_alert(**FIGURES, notification_block=name, return_state=True)
        assert state.is_failed()
        with pytest.raises(httpx.HTTPStatusError, match="400"):
            state.result()
        assert len(receiver.posts()) == 1  # a 400 is not retried
