"""The model errors, apart from the model code: a runner catches them without importing numpy or onnxruntime
(a runner whose genome streams imports neither; tests/engine/test_stream_parity.py holds it to that)."""

from __future__ import annotations


class ModelError(ValueError):
    """A model the runner refuses; the message says what was expected."""


class ModelInputError(ModelError):
    """Inputs the model must not predict on (NaN or infinite values); names the bar."""
