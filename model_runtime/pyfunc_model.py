"""MLflow "models from code" definition of the registered model.

`training` logs this file with the predictor directory (booster + meta) as the
artifact `predictor`, and with `data_contracts`, `features` and `model_runtime` as the
model's code. Every consumer loads the model by alias (`models:/eih-responder@champion`)
and either calls the pyfunc `predict` (class probabilities, what `mlflow models serve`
answers) or unwraps `EIHPredictor` for explanations (`model_runtime.loading`).
"""

from __future__ import annotations

import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModel

from data_contracts.fields import RESPONSES


class EIHPyfunc(PythonModel):
    """The pyfunc face of `EIHPredictor`: probabilities for contract frames."""

    def load_context(self, context):
        """Load the `EIHPredictor` from the model's `predictor` artifact (once, when MLflow loads the model)."""
        from model_runtime.predictor import EIHPredictor

        self.predictor = EIHPredictor.load(context.artifacts["predictor"])

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        """Class probabilities of a contract frame: one row per record, columns p_<response> in
        RESPONSES order (`params` is accepted for the pyfunc signature and ignored)."""
        proba = self.predictor.predict_proba(model_input)
        return pd.DataFrame(proba, columns=[f"p_{r}" for r in RESPONSES])


mlflow.models.set_model(EIHPyfunc())
