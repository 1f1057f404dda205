"""hfcl: continual learning, unlearning, adapter composition and transfer, evaluation, Hub cards and a Space,
built on the Hugging Face stack."""

__version__ = "0.1.0"

from .errors import (
    CacheError,
    ConfigError,
    DataError,
    HfclError,
    ModelNotAvailableError,
    OutputExistsError,
    TrainingError,
)

__all__ = [
    "CacheError",
    "ConfigError",
    "DataError",
    "HfclError",
    "ModelNotAvailableError",
    "OutputExistsError",
    "TrainingError",
    "__version__",
]
