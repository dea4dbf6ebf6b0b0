"""The model file MLflow runs to build the house-price pyfunc ("models from code").

:func:`bridgeai.model.pyfunc.log_model` logs this file instead of a pickled Python object, so a
logged model holds no pickle: loading it runs this file (with the ``bridgeai`` modules it needs
in the model's ``code/`` folder, on the path) and reads the saved model directory. Not meant to be
imported.
"""

from mlflow.models import set_model

from bridgeai.model.pyfunc import HousePricePyfunc

set_model(HousePricePyfunc())
