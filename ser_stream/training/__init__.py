"""Training and evaluation (imports scikit-learn and librosa lazily: only ``train`` and ``evaluate`` need them).

corpora -> extract -> fit -> train; protocols score recipes and bundles; report draws them.
"""

from .corpora import AUDIO_SUFFIXES, Clip, scan_ravdess
from .extract import (ADAPTIVE_AUGMENT_COPIES, AUGMENT_COPIES, DAEMON_VIEW, TRAIN_VIEW, TrainingData, View,
                      clip_audio, extract_dataset, extract_for_training, training_views, windows_of)
from .fit import MLP_PARAMS, classifier_of, fit, fit_adaptive, stack_windows, to_adaptive_head, to_model
from .protocols import cross_validate, evaluate_command, evaluate_model, speaker_adaptive, summarize_predictions
from .report import write_report
from .train import train_command

__all__ = [
    "ADAPTIVE_AUGMENT_COPIES", "AUDIO_SUFFIXES", "AUGMENT_COPIES", "Clip", "DAEMON_VIEW", "MLP_PARAMS", "TRAIN_VIEW",
    "TrainingData", "View", "classifier_of", "clip_audio", "cross_validate", "evaluate_command", "evaluate_model",
    "extract_dataset", "extract_for_training", "fit", "fit_adaptive", "scan_ravdess", "speaker_adaptive",
    "stack_windows", "summarize_predictions", "to_adaptive_head", "to_model", "train_command", "training_views",
    "windows_of", "write_report",
]
