"""A deadline on every inference call. onnxruntime checks ``RunOptions.terminate`` between
kernels, so a timer that sets it ends a runaway call (a graph that behaves differently for
another input length, a config that stretches the audio) with an error; the session stays
usable and the other callers' runs, each with options of its own, go on."""

from __future__ import annotations

import threading
from typing import Any

import onnxruntime

from voicepocket.errors import InferenceTimeout

INFERENCE_DEADLINE_S = 60.0
"""Longest one inference call may run, in seconds (a 300-character chunk takes 0.2-2 s)."""


class DeadlineSession:
    """An ``InferenceSession`` whose ``run`` ends with ``InferenceTimeout`` past
    ``deadline_s``; everything else is the session's."""

    def __init__(self, session: onnxruntime.InferenceSession, *, deadline_s: float) -> None:
        self._session = session
        self.deadline_s = deadline_s

    def run(self, output_names: Any, input_feed: Any, run_options: Any = None) -> Any:
        options = onnxruntime.RunOptions()
        timer = threading.Timer(self.deadline_s, _terminate, args=(options,))
        timer.daemon = True
        timer.start()
        try:
            return self._session.run(output_names, input_feed, options)
        except Exception as exc:
            if options.terminate:
                raise InferenceTimeout(
                    f"The voice took longer than {self.deadline_s:g} s for one chunk of text; "
                    "the call was stopped."
                ) from exc
            raise
        finally:
            timer.cancel()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._session, name)


def _terminate(options: onnxruntime.RunOptions) -> None:
    options.terminate = True
