"""Training and evaluation (imports scikit-learn and librosa lazily: only ``train`` and ``evaluate`` need them).

corpora -> extract / streams -> fit -> train; protocols and household score recipes and bundles;
metrics and report summarise them.
"""
