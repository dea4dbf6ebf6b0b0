"""The model registry and the champion gate.

Every training run registers a new version of the registered model (``bridgeai.model``). The
version takes the ``champion`` alias only when it beats the current champion *on the current
test split* (the champion is re-scored on it, so both numbers describe the same houses) by the
promotion policy, or when there is no champion yet. Otherwise it takes ``challenger``. The
decision, the policy and both scores are written as tags on the new version, so the registry
itself explains why the alias is where it is. (The original demonstrator set ``champion``
before any evaluation.)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from bridgeai.model import CHAMPION
from bridgeai.model.errors import BridgeAIError
from bridgeai.training.evaluation import MetricName, Metrics, is_better, regression_metrics

if TYPE_CHECKING:
    import polars as pl

CHALLENGER = "challenger"


class PromotionPolicy(BaseModel):
    """When a new version replaces the champion."""

    metric: MetricName = Field(
        default="rmse", description="Test metric compared: rmse, mae, mape (lower is better) or r2."
    )
    min_improvement: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description="Required relative improvement over the champion's score on the same test "
        "split: 0 = strictly better, 0.01 = better by more than 1 %.",
    )


class GateDecision(BaseModel):
    """The outcome of :func:`register_and_gate`."""

    version: str = Field(description="The newly registered version.")
    promoted: bool = Field(description="True when the new version took the champion alias.")
    alias: str = Field(description="The alias the new version received.")
    reason: str
    metric: MetricName
    score: float = Field(description="The new version's test score.")
    champion_version: str | None = Field(
        default=None, description="The champion it was compared with (None if none existed)."
    )
    champion_score: float | None = Field(
        default=None, description="That champion's score on the same test split."
    )


class ChampionUnusable(BridgeAIError):
    """The current champion's model cannot be loaded or scored by this code."""


def ensure_registered_model(client: Any, name: str) -> None:
    """Create the registered model if it does not exist yet."""
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(name)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        try:
            client.create_registered_model(
                name, description="BridgeAI house-price model (LightGBM); see tags for lineage."
            )
        except MlflowException as race:  # another run created it meanwhile
            if race.error_code != "RESOURCE_ALREADY_EXISTS":
                raise


def score_version(client: Any, name: str, version: str | int, test: pl.DataFrame) -> Metrics:
    """Metrics of a registered version on ``test`` (price units).

    Raises:
        ChampionUnusable: the version holds no model this code can load, or it cannot encode
            these rows.
        ModelSourceError: the registry or its artifact store failed (transient when it did
            not answer): not the model's fault, so the gate does not replace it.
    """
    from bridgeai.model import registry_uri, source
    from bridgeai.model.house_price import FeatureError
    from bridgeai.training.fit import target

    try:
        model, _ = source.load(registry_uri(name, version=version), client)
    except source.ModelSourceError as exc:
        if exc.transient or exc.status_code >= 500:
            raise
        raise ChampionUnusable(f"version {version} of {name}: {exc}") from exc
    try:
        predictions = model.predict_frame(test)
    except FeatureError as exc:
        raise ChampionUnusable(f"version {version} of {name}: {exc}") from exc
    return regression_metrics(target(test), predictions)


def decide(
    policy: PromotionPolicy,
    new: Metrics,
    champion: Metrics | None,
    champion_version: str | None,
) -> tuple[bool, str]:
    """Whether the new version takes ``champion``, and why (a sentence for humans)."""
    metric = policy.metric
    score = getattr(new, metric)
    if champion is None:
        if champion_version is None:
            return (
                True,
                "no champion yet: the first version becomes champion "
                f"({metric} {format_metric(score)})",
            )
        return (
            True,
            f"champion v{champion_version} could not be scored; replaced "
            f"({metric} {format_metric(score)})",
        )
    old = getattr(champion, metric)
    wanted = (
        "strictly better"
        if policy.min_improvement == 0
        else f"better by more than {policy.min_improvement:.2%}"
    )
    if is_better(metric, score, old, policy.min_improvement):
        return True, (
            f"test {metric} {format_metric(score)} beats champion v{champion_version}'s "
            f"{format_metric(old)} on the same test split ({wanted} required)"
        )
    return False, (
        f"test {metric} {format_metric(score)} is not {wanted} than champion v{champion_version}'s "
        f"{format_metric(old)} on the same test split"
    )


def format_metric(value: float) -> str:
    """A metric as people read it: prices as 1,316,761, ratios (r2, mape) with 4 digits."""
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"


def register_and_gate(
    client: Any,
    *,
    name: str,
    model_uri: str,
    run_id: str,
    test: pl.DataFrame,
    metrics: Metrics,
    policy: PromotionPolicy | None = None,
    alias: str = CHAMPION,
    tags: dict[str, str] | None = None,
    model_id: str | None = None,
) -> GateDecision:
    """Register ``model_uri`` as a new version of ``name`` and move ``alias`` if it earns it.

    Args:
        client: an ``MlflowClient`` (``MLflowServer.client()``).
        name: the registered model.
        model_uri: the logged model (``ModelInfo.model_uri``).
        run_id: the training run; the version links to it.
        test: the current test split; the champion is re-scored on it.
        metrics: the new model's metrics on ``test``.
        policy: promotion policy (strictly better RMSE by default).
        alias: the alias that marks the serving version.
        tags: lineage tags for the version (the gate adds its own).
        model_id: MLflow 3's logged-model id, linking the version to it.

    Returns:
        The decision; it is also recorded as ``gate_*`` tags on the new version.
    """
    from bridgeai.model import mlflow_client, source

    policy = policy or PromotionPolicy()
    ensure_registered_model(client, name)

    champion = source.find_version(client, name, alias)
    champion_metrics: Metrics | None = None
    note = ""
    if champion is not None:
        try:
            champion_metrics = score_version(client, name, champion.version, test)
        except ChampionUnusable as exc:
            note = f" ({exc})"

    version_tags = {**(tags or {}), **{f"test_{k}": repr(v) for k, v in metrics.as_dict().items()}}
    # A retried task must not register the same run twice.
    version = _version_of_run(client, name, run_id)
    if version is None:
        # A SQLite registry resolves the logged model through MLflow's global tracking URI (its
        # own TODO in ``create_model_version``), whatever URI this client was built with.
        with mlflow_client.fluent(mlflow_client.tracking_uri_of(client)):
            version = client.create_model_version(
                name=name, source=model_uri, run_id=run_id, tags=version_tags, model_id=model_id
            )
    champion_version = str(champion.version) if champion is not None else None
    promoted, reason = decide(policy, metrics, champion_metrics, champion_version)
    reason += note
    given = alias if promoted else CHALLENGER

    decision = GateDecision(
        version=str(version.version),
        promoted=promoted,
        alias=given,
        reason=reason,
        metric=policy.metric,
        score=getattr(metrics, policy.metric),
        champion_version=champion_version,
        champion_score=getattr(champion_metrics, policy.metric) if champion_metrics else None,
    )
    for key, value in decision_tags(decision, policy).items():
        client.set_model_version_tag(name, version.version, key, value)
    client.update_model_version(name, version.version, description=reason)
    # The alias last: it is the commit point. If MLflow dies before it, the new version exists
    # but nothing points at it (a retry or the next run decides again); no alias ever points at
    # a version whose decision is not recorded.
    client.set_registered_model_alias(name, given, version.version)
    return decision


def _version_of_run(client: Any, name: str, run_id: str) -> Any | None:
    found = client.search_model_versions(f"name = '{name}' and run_id = '{run_id}'")
    return found[0] if found else None


def decision_tags(decision: GateDecision, policy: PromotionPolicy) -> dict[str, str]:
    """The ``gate_*`` version tags that record a decision and both scores."""
    return {
        "gate_decision": "promoted" if decision.promoted else "not_promoted",
        "gate_alias": decision.alias,
        "gate_reason": decision.reason,
        "gate_metric": decision.metric,
        "gate_min_improvement": repr(policy.min_improvement),
        "gate_score": repr(decision.score),
        "gate_champion_version": decision.champion_version or "none",
        "gate_champion_score": (
            repr(decision.champion_score) if decision.champion_score is not None else "none"
        ),
    }
