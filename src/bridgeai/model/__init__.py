"""The house-price model: what is trained, logged, registered, baked into images and served.

The registry names live here, once: every other module (and the blocks' defaults) takes
:data:`REGISTERED_MODEL`, :data:`CHAMPION` and :func:`registry_uri` from this package.

* :mod:`bridgeai.model.house_price`: the model (booster + preprocessing) and its directory format;
* :mod:`bridgeai.model.fast_booster`: LightGBM's C API for small batches;
* :mod:`bridgeai.model.pyfunc` / :mod:`bridgeai.model.pyfunc_code`: the MLflow pyfunc, from code;
* :mod:`bridgeai.model.mlflow_client`: the one MLflow client factory;
* :mod:`bridgeai.model.source`: where a served model comes from (a directory or the registry);
* :mod:`bridgeai.model.errors`: the error base every stage's errors derive from.

Importing this package costs nothing: each module imports numpy, lightgbm or mlflow itself.
"""

from __future__ import annotations

from typing import Final

#: The registered model, as the original named it.
REGISTERED_MODEL: Final = "house_price_prediction_prod"
#: The alias of the version that serves.
CHAMPION: Final = "champion"
#: The artifact of the logged pyfunc that holds the model directory (what servers load).
ARTIFACT_KEY: Final = "model_dir"


def registry_uri(
    name: str = REGISTERED_MODEL, *, alias: str | None = None, version: str | int | None = None
) -> str:
    """``models:/<name>/<version>`` when a version is given, else ``models:/<name>@<alias>``.

    The alias defaults to :data:`CHAMPION`.
    """
    if version is not None:
        return f"models:/{name}/{version}"
    return f"models:/{name}@{alias or CHAMPION}"


#: The champion of the registered model, what servers serve when told nothing else.
CHAMPION_URI: Final = registry_uri()
