"""Progress artifacts for long tasks (image builds, rollouts, large drift windows).

A ``Progress`` is one Prefect progress artifact (0-100 %) that the task moves forward; the UI shows
it on the run's Artifacts tab while the task runs. Updates are best effort: a failed update is
logged once and never fails the work it describes.
"""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger


class Progress:
    """One progress artifact, created at 0 % (or ``start``) under ``key``."""

    def __init__(
        self, key: str, description: str, start: float = 0.0, artifact_id: Any = None
    ) -> None:
        from prefect.artifacts import create_progress_artifact

        self.key = key
        self.description = description
        self.percent = _clamp(start)
        self._warned = False
        self.artifact_id = artifact_id or create_progress_artifact(
            self.percent, key=key, description=description
        )

    @classmethod
    def resume(cls, key: str, artifact_id: Any, percent: float) -> Progress:
        """The progress artifact ``artifact_id`` (made by an earlier task), at ``percent``."""
        from uuid import UUID

        return cls(key, "", start=percent, artifact_id=UUID(str(artifact_id)))

    def update(self, percent: float, description: str | None = None) -> None:
        """Move to ``percent`` (never backwards), optionally with a new description."""
        from prefect.artifacts import update_progress_artifact

        percent = max(self.percent, _clamp(percent))
        if percent == self.percent and description is None:
            return
        self.percent = percent
        if description:
            self.description = description
        try:
            update_progress_artifact(self.artifact_id, percent, description=description)
        except Exception as exc:  # cosmetic: the work goes on
            if not self._warned:
                get_run_logger().warning("progress artifact %s not updated: %s", self.key, exc)
                self._warned = True

    def done(self, description: str | None = None) -> None:
        """100 %."""
        self.update(100.0, description)


def _clamp(percent: float) -> float:
    return float(min(100.0, max(0.0, percent)))
