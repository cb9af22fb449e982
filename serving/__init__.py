"""Serving: the model runtime (`predictor.py`), loading by alias (`loading.py`), the
BentoML HTTP service, the batch scorer and the explanation statements. Importing this
package imports neither BentoML nor MLflow."""
