"""Test-time verification (`verify@N`): the FWM's best of N samples under the IDM, as a card's predictor."""

from __future__ import annotations

from typing import Any

from swirl_envs.errors import SwirlError


class VerifiedPredictor:
    """Test-time verification (`verify@N`): the FWM's best of N samples under the IDM; the IDM as it is."""

    def __init__(self, pair: Any, n: int):
        self.pair, self.n = pair, n

    def predict_next_states(self, states, actions, *, max_new_tokens=None, batch_size=32, **_options) -> list[str]:
        from swirl_core.baselines import verify_next_states

        # sampling settings are the paper's FWM ones (verify_next_states' defaults); the seed is set per batch
        return verify_next_states(self.pair, states, actions, n=self.n, max_new_tokens=max_new_tokens,
                                  batch_size=batch_size)

    def predict_actions(self, states, next_states, **options) -> list[str]:
        return self.pair.predict_actions(states, next_states, **options)

    # image benchmarks decode with the pair's codec; candidate choice scores with its IDM
    @property
    def codec(self) -> Any:
        return self.pair.codec

    def text_to_image(self, text: str) -> Any:
        return self.pair.text_to_image(text)

    def score_actions(self, *args, **options) -> Any:
        return self.pair.score_actions(*args, **options)


def verify_n(method: str) -> int | None:
    """N of a `verify@N` method name, else None."""
    head, sep, tail = method.partition("@")
    if head != "verify" or not sep:
        return None
    if not tail.isdigit() or int(tail) < 1:
        raise SwirlError(f"method {method!r}: verification is named verify@N with N >= 1, e.g. verify@8")
    return int(tail)
