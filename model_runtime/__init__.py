"""The model runtime: what every user of a trained model needs, and nothing else.

- `links`: link functions and the margin calibration (margins -> probabilities);
- `metadata`: the typed model metadata (`ModelMeta`, meta.json) and the contract check;
- `matrix`: the one builder of the model matrix, from records or from a feature frame;
- `shap_tables`: exact TreeSHAP by table lookup of XGBoost's own numbers;
- `predictor`: `EIHPredictor`, prediction and exact explanations;
- `interpret`: risk levels, missing inputs and out-of-range warnings;
- `settings`: where the MLflow store is, names, privacy settings;
- `loading`: load a registered model by alias or version;
- `pyfunc_model`: the MLflow "models from code" wrapper.

Training, serving, the batch scorer and notebooks import it; it imports only
`data_contracts` and `features` (and mlflow lazily), and is what a registered model
ships as code beside those two.
"""
