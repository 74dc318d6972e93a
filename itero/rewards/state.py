"""The running state a reward carries across iterations, saved with each iteration for resume."""

from __future__ import annotations


class NormState:
    """``state_dict`` / ``load_state_dict`` of a reward's running normaliser ``norm`` (None: stateless)."""

    norm = None

    def state_dict(self) -> dict:
        return self.norm.state_dict() if self.norm is not None else {}

    def load_state_dict(self, state: dict | None) -> None:
        if self.norm is not None:
            self.norm.reset() if state is None else self.norm.load_state_dict(state)
