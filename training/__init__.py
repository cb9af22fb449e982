"""Training of the responder model: `eih train` (`training.cli`), the pure steps
(`training.steps`: prepare -> search -> calibrate -> fit -> evaluate) and their edges
(`training.train`: files, MLflow run and progress; `training.registry`: the model artifact
and the @champion gate; `training.report`: figures, tables and the model card).
"""
