"""Networks that map features to genre logits: PyTorch classifiers (:mod:`.networks`), the inference
heads of scikit-learn estimators (:mod:`.classical`), the name registry (:mod:`.registry`) and
the model file format (:mod:`.files`, see ``docs/model-format.md``).

Imports :mod:`genrekit.features` and below.
"""
