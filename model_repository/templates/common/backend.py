"""Python backend glue shared by the ddx-stt models (imports Triton's ``pb_utils``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils


def error_response(message: str) -> Any:
    """A logged error response (the request still gets exactly one answer)."""
    pb_utils.Logger.log_error(message)
    return pb_utils.InferenceResponse(output_tensors=[], error=pb_utils.TritonError(message))


def answer_each(requests: list[Any], answer: Callable[[Any], Any], model: str) -> list[Any]:
    """``answer(request)`` for each request; an exception becomes that request's error."""
    responses = []
    for request in requests:
        try:
            responses.append(answer(request))
        except Exception as exc:  # a bug must not cost the other requests their answer
            responses.append(error_response(f"{model}: {type(exc).__name__}: {exc}"))
    return responses


def input_reader(request: Any) -> Callable[[str], np.ndarray]:
    """``read(name)`` → the request's input tensor as numpy (batch dimension kept)."""

    def read(name: str) -> np.ndarray:
        return pb_utils.get_input_tensor_by_name(request, name).as_numpy()

    return read


class LiveSequencesGauge:
    """The ``ddx_live_sequences{model=...}`` gauge: states a model holds right now.

    Exposed on Triton's metrics endpoint, it shows that END and the TTL sweep free state.
    The family object must outlive its metric, so both are kept here.
    """

    def __init__(self, model: str) -> None:
        self._family = pb_utils.MetricFamily(
            name="ddx_live_sequences",
            description="Sequences with state held by a ddx-stt Python backend model",
            kind=pb_utils.MetricFamily.GAUGE,
        )
        self._metric = self._family.Metric(labels={"model": model})
        self._model = model
        self._warned = False

    def set(self, value: int) -> None:
        """Publish ``value``; a metrics failure is logged once and never fails a request."""
        try:
            self._metric.set(value)
        except Exception as exc:
            if not self._warned:
                pb_utils.Logger.log_warn(f"{self._model}: ddx_live_sequences not updated: {exc}")
                self._warned = True
