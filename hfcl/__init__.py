"""hfcl: continual learning, unlearning, adapter composition and transfer, evaluation, Hub cards and a Space,
built on the Hugging Face stack."""

__version__ = "0.1.0"

from .errors import (  # noqa: E402
    CacheError,
    ConfigError,
    DataError,
    HfclError,
    ModelNotAvailableError,
    OutputExistsError,
    TrainingError,
)

__all__ = [
    "__version__",
    "HfclError",
    "ConfigError",
    "DataError",
    "ModelNotAvailableError",
    "CacheError",
    "TrainingError",
    "OutputExistsError",
]
