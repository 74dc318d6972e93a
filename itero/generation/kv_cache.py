"""KV cache layers for the hf backend: buffers sized for the whole generation, written in place."""

from __future__ import annotations

from torch import Tensor
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer


class PreallocatedLayer(DynamicLayer):
    """A DynamicLayer that writes into buffers sized for the whole generation.

    DynamicLayer concatenates each step, copying the whole cache every token; on CPU that copy was
    a third of the decode time. ``keys`` / ``values`` are views of the filled part, so attention
    sees exactly what DynamicLayer would give it. Only the methods generation uses are supported.
    """

    def __init__(self, capacity: int):
        super().__init__()
        self.capacity = capacity
        self.length = 0

    def lazy_initialization(self, key_states: Tensor, value_states: Tensor, batch_size: int | None = None) -> None:
        # Zeros, not empty: masked padding slots still meet the values (0 · NaN would be NaN).
        self.dtype, self.device = key_states.dtype, key_states.device
        B, H = batch_size or key_states.shape[0], key_states.shape[1]
        self._keys = key_states.new_zeros(B, H, self.capacity, key_states.shape[-1])
        self._values = value_states.new_zeros(B, H, self.capacity, value_states.shape[-1])
        self.is_initialized = True

    def update(self, key_states: Tensor, value_states: Tensor, *args, **kwargs) -> tuple[Tensor, Tensor]:
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        end = self.length + key_states.shape[-2]
        if end > self.capacity:
            raise RuntimeError(f"KV cache capacity {self.capacity} exceeded ({end} positions)")
        self._keys[:, :, self.length : end] = key_states
        self._values[:, :, self.length : end] = value_states
        self.length = end
        self.keys, self.values = self._keys[:, :, :end], self._values[:, :, :end]
        return self.keys, self.values

    def get_seq_length(self) -> int:
        return self.length

    def write_rows(self, rows: Tensor, start: int, keys: Tensor, values: Tensor, batch_size: int, length: int) -> None:
        """Prefill of some rows: their KV go to columns start..length, the slots before stay zero (padding)."""
        if not self.is_initialized:
            self.lazy_initialization(keys, values, batch_size)
        self._keys[rows, :, start:length] = keys
        self._values[rows, :, start:length] = values
        self.length = length
        self.keys, self.values = self._keys[:, :, :length], self._values[:, :, :length]

    def write_tokens(
        self, rows: Tensor, columns: Tensor, keys: Tensor, values: Tensor, batch_size: int, length: int
    ) -> None:
        """Prefill from packed tokens: keys / values (T, H, D) of token j go to row rows[j], column columns[j]."""
        if not self.is_initialized:
            self.lazy_initialization(keys, values, batch_size)  # reads H and D from dims 1 and -1, as for (B, H, L, D)
        self._keys[rows, :, columns] = keys
        self._values[rows, :, columns] = values
        self.length = length
        self.keys, self.values = self._keys[:, :, :length], self._values[:, :, :length]

    def batch_select_indices(self, indices: Tensor) -> None:
        if self.is_initialized:
            self._keys, self._values = self._keys[indices], self._values[indices]
            self.keys, self.values = self._keys[:, :, : self.length], self._values[:, :, : self.length]


def preallocated_cache(config, capacity: int) -> DynamicCache:
    # Only plain full-attention layers are swapped; sliding-window, linear-attention or shared-KV layers
    # keep the model's own cache classes, so any causal LM still works (just without the saving there).
    cache = DynamicCache(config=config)
    cache.layers = [PreallocatedLayer(capacity) if type(layer) is DynamicLayer else layer for layer in cache.layers]
    return cache
