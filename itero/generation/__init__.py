"""Generation backends behind one protocol; each returns a RolloutBatch."""

from itero.generation.base import Generator, SamplingParams

__all__ = ["Generator", "SamplingParams"]
