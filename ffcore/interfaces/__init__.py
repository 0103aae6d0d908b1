"""The interfaces every component kind implements."""

from ffcore.interfaces.dataset import DataSplits, Split
from ffcore.interfaces.goodness import GoodnessFunction
from ffcore.interfaces.layer import FFLayer, LayerObserver, LayerStepResult, resolve_threshold
from ffcore.interfaces.loss import FFLoss
from ffcore.interfaces.model import Classifier, FFModel, LabelScorer
from ffcore.interfaces.negatives import NegativeBatch, NegativeSampler
from ffcore.interfaces.probe import Probe

__all__ = [
    "Classifier",
    "DataSplits",
    "FFLayer",
    "FFLoss",
    "FFModel",
    "GoodnessFunction",
    "LabelScorer",
    "LayerObserver",
    "LayerStepResult",
    "NegativeBatch",
    "NegativeSampler",
    "Probe",
    "Split",
    "resolve_threshold",
]
