"""The interfaces every component kind implements."""

from ffcore.interfaces.batch import Batch, inputs_of
from ffcore.interfaces.dataset import DataSplits, Split
from ffcore.interfaces.goodness import GoodnessFunction
from ffcore.interfaces.layer import (
    FFLayer,
    LabelAppender,
    LayerObserver,
    LayerStepResult,
    Objective,
    ObjectiveOptions,
    resolve_threshold,
)
from ffcore.interfaces.loss import FFLoss
from ffcore.interfaces.model import Classifier, FFModel, LabelScorer, require
from ffcore.interfaces.negatives import NegativeBatch, NegativeSampler
from ffcore.interfaces.pipeline import (
    READOUTS,
    DeferrableSteps,
    PipelineModel,
    StageCost,
    StageStep,
)
from ffcore.interfaces.preprocessing import Preprocessing, standardization
from ffcore.interfaces.probe import Probe, ScoringProbe

__all__ = [
    "READOUTS",
    "Batch",
    "Classifier",
    "DataSplits",
    "DeferrableSteps",
    "FFLayer",
    "FFLoss",
    "FFModel",
    "GoodnessFunction",
    "LabelAppender",
    "LabelScorer",
    "LayerObserver",
    "LayerStepResult",
    "NegativeBatch",
    "NegativeSampler",
    "Objective",
    "ObjectiveOptions",
    "PipelineModel",
    "Preprocessing",
    "Probe",
    "ScoringProbe",
    "Split",
    "StageCost",
    "StageStep",
    "inputs_of",
    "require",
    "resolve_threshold",
    "standardization",
]
