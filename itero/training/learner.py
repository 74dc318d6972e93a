"""The algorithm-blind learner: forward → log-probs → loss_fn(batch) → backward → step.

It knows nothing about DPO, RAFT or PPO. An algorithm hands it a prepared RolloutBatch whose
``token_weights`` / ``seq_weights`` were computed over the whole batch, and a ``loss_fn``. The
learner splits the batch into optimizer mini-batches of ``batch_size`` units (a unit is
``rows_per_unit`` consecutive rows, e.g. a chosen/rejected pair) and each mini-batch into
micro-batches: ``micro_batch_size`` units each, or with ``max_tokens_per_micro_batch`` bins of units
sorted by length whose padded size stays within that many tokens (``micro_batches.by_tokens``). Every
micro-batch is trimmed to its own longest prompt and response.

Why any split, uneven bins included, gives the mini-batch's gradient exactly: a loss_fn returns
Σ weight·term over its micro-batch's tokens or rows, never a mean over the micro-batch, and the weights
hold the aggregation's normaliser for the whole batch (token-mean: 1 / the batch's valid tokens;
per-sequence mean: 1 / (rows · the row's tokens); DPO: 1 / pairs). The sum over micro-batches is then
the same Σ over the mini-batch whatever the bins hold, like TRL's and verl's newer losses that divide
by the global token count instead of the micro-batch's own (verl's older dynamic batch size scales a
micro-batch's own token-mean by its share of rows, which is exact only for equal lengths). A
mini-batch holding a fraction f of the batch's units has its loss scaled by 1/f, the same factor for
all its micro-batches, so each optimizer step sees a mean over its own examples.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from itero.batch import RolloutBatch
from itero.core.logprobs import entropy_from_logits, token_logprobs
from itero.core.masked import MeanMetric
from itero.distributed import current, fold_metric, is_max_metric
from itero.errors import DivergenceError, check_finite_parameters, check_finite_step, largest_parameter
from itero.training import micro_batches, sharding
from itero.training.forward import forward_logits
from itero.training.master_weights import MasterWeightAdamW, needs_master_weights

# loss_fn(micro_batch, logprobs) -> (loss, metrics). A loss_fn with ``needs_logits = True`` is called
# as loss_fn(micro_batch, logprobs, logits) with the (B, R, V) logits of the same forward.
LossFn = Callable[..., tuple[Tensor, dict[str, float]]]


@dataclass
class OptimConfig:
    """The learner's own view of the training section (it never sees the root config)."""

    lr: float
    batch_size: int
    micro_batch_size: int
    warmup_ratio: float = 0.0
    schedule: str = "cosine"
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    adam_betas: tuple[float, float] = (0.9, 0.95)
    precision: str = "fp32"
    max_tokens_per_micro_batch: int | None = None  # token-budget bins instead of micro_batch_size units


@torch.no_grad()
def masked_entropy(logits: Tensor, mask: Tensor, temperature: float = 1.0) -> MeanMetric:
    """Mean entropy of the sampling distribution over valid tokens; row by row so a 150k vocabulary
    never needs a second (B, R, V) float32 copy."""
    total = sum(float((entropy_from_logits(logits[b], temperature) * mask[b]).sum()) for b in range(logits.shape[0]))
    return MeanMetric(total / max(int(mask.sum()), 1), int(mask.sum()))


_ENTRIES = "#entries"  # the key beside a MeanMetric's that sums its entries (never a *_max name)


def _divided(sums: dict[str, float]) -> dict[str, float]:
    """The step's metrics: each MeanMetric's Σ value·entries over its Σ entries."""
    out = {k: v for k, v in sums.items() if not k.endswith(_ENTRIES)}
    for k, v in sums.items():
        if k.endswith(_ENTRIES):
            name = k.removesuffix(_ENTRIES)
            out[name] = out[name] / v if v else 0.0
    return out


class Learner:
    """``forward``: None for a policy (log-probs from the LM logits, entropy logged), or a per-token
    function ``forward(model, micro_batch, temperature) -> (B, R)`` for another model (a critic's values)."""

    def __init__(self, model, cfg: OptimConfig, forward: Callable | None = None):
        self.model = model
        self.cfg = cfg
        self.forward = forward
        self.sharded = sharding.is_sharded(model)  # FSDP2: forwards and backwards are collectives
        self.optimizer: torch.optim.Optimizer | None = None
        self.scheduler: torch.optim.lr_scheduler.LambdaLR | None = None

    # ------------------------------------------------------------------ optimizer
    def start_phase(
        self, num_steps: int, reset: bool = True, lr: float | None = None, warmup_ratio: float | None = None
    ) -> None:
        """A fresh AdamW and warm-up + cosine (or constant) schedule over ``num_steps`` steps."""
        if self.optimizer is not None and not reset:
            return
        params = [p for p in self.model.parameters() if p.requires_grad]
        # bf16 weights get fp32 master copies, or updates smaller than their resolution would round away
        adamw = MasterWeightAdamW if needs_master_weights(params) else torch.optim.AdamW
        self.optimizer = adamw(
            params, lr=lr or self.cfg.lr, betas=self.cfg.adam_betas, weight_decay=self.cfg.weight_decay
        )
        warmup = int((self.cfg.warmup_ratio if warmup_ratio is None else warmup_ratio) * num_steps)
        cosine = self.cfg.schedule == "cosine"

        def factor(step: int) -> float:
            if step < warmup:
                return (step + 1) / (warmup + 1)
            if not cosine:
                return 1.0
            progress = (step - warmup) / max(1, num_steps - warmup)
            return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))

        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, factor)

    def end_phase(self) -> None:
        """Drop the optimizer and schedule, so the next phase cannot inherit a finished schedule."""
        self.optimizer = self.scheduler = None

    def num_steps(self, num_units: int, epochs: int = 1) -> int:
        return epochs * math.ceil(num_units / self.cfg.batch_size)

    # ------------------------------------------------------------------ training
    def fit(
        self,
        batch: RolloutBatch,
        loss_fn: LossFn,
        *,
        rows_per_unit: int = 1,
        epochs: int = 1,
        seed: int = 0,
        temperature: float = 1.0,
        on_step: Callable[[int, dict], None] | None = None,
    ) -> dict[str, float]:
        """Epochs × shuffled mini-batches of ``cfg.batch_size`` units; returns metrics averaged over steps
        (``*_max`` metrics: the maximum)."""
        num_units = batch.batch_size // rows_per_unit
        if self.optimizer is None:
            self.start_phase(self.num_steps(num_units, epochs))
        rng = random.Random(seed)
        totals: dict[str, float] = {}
        steps = 0
        self.model.train()
        for _ in range(epochs):
            order = list(range(num_units))
            rng.shuffle(order)
            for start in range(0, num_units, self.cfg.batch_size):
                units = order[start : start + self.cfg.batch_size]
                try:
                    metrics = self.step(batch, units, num_units, loss_fn, rows_per_unit, temperature)
                except DivergenceError as err:
                    total = self.num_steps(num_units, epochs)
                    raise DivergenceError(f"{err} at optimizer step {steps + 1} of {total}") from None
                steps += 1
                for k, v in metrics.items():
                    fold_metric(totals, k, v)
                if on_step is not None:
                    on_step(steps, metrics)
        return {k: v if is_max_metric(k) else v / max(steps, 1) for k, v in totals.items()}

    def step(
        self,
        batch: RolloutBatch,
        units: list[int],
        num_units: int,
        loss_fn: LossFn,
        rows_per_unit: int = 1,
        temperature: float = 1.0,
        micro_batch_size: int | None = None,
    ) -> dict[str, float]:
        """One optimizer step over ``units`` (a mini-batch of the ``num_units`` in ``batch``)."""
        metrics = self.accumulate(batch, units, num_units, loss_fn, rows_per_unit, temperature, micro_batch_size)
        metrics.update(self.apply(metrics["loss"]))
        return metrics

    def accumulate(
        self,
        batch: RolloutBatch,
        units: list[int],
        num_units: int,
        loss_fn: LossFn,
        rows_per_unit: int = 1,
        temperature: float = 1.0,
        micro_batch_size: int | None = None,
    ) -> dict[str, float]:
        """Forward/backward of ``units`` in micro-batches; gradients add up in ``.grad``.

        ``micro_batch_size`` given (the SFT warm-up's own): that many units per micro-batch, whatever
        ``cfg.max_tokens_per_micro_batch`` says."""
        scale = num_units / len(units)
        sums: dict[str, float] = {"loss": 0.0}
        dist, device = current(), next(self.model.parameters()).device
        plan = self.micro_batches(batch, units, rows_per_unit, micro_batch_size)
        num_micro = len(plan)
        for i, micro in enumerate(plan):
            weight = 1.0 if micro else 0.0  # a rank with no units left joins the collectives with a zero loss
            micro = micro or units[:1]
            rows = [u * rows_per_unit + j for u in micro for j in range(rows_per_unit)]
            mb = batch.select(rows).trimmed().to(device)
            sharding.set_gradient_sync(self.model, i == num_micro - 1)  # reduce-scatter once per step
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=self.cfg.precision == "bf16"):
                if self.forward is None:
                    logits = forward_logits(self.model, mb)
                    outputs = token_logprobs(logits, mb.response_ids, temperature) * mb.response_mask
                else:
                    outputs, logits = self.forward(self.model, mb, temperature), None
            # only a loss that asks (e.g. TDPO's full-vocabulary KL) keeps the (B, R, V) logits alive
            extra = (logits,) if getattr(loss_fn, "needs_logits", False) else ()
            entropy = masked_entropy(logits, mb.response_mask, temperature) if logits is not None and weight else None
            del logits
            loss, metrics = loss_fn(mb, outputs.float(), *extra)
            if entropy is not None:
                metrics = {**metrics, "entropy": entropy}
            (loss * (scale * weight)).backward()
            if not weight:
                continue
            for k, v in metrics.items():  # a mean over the mini-batch; a maximum for *_max metrics
                if isinstance(v, MeanMetric):  # Σ value·entries and Σ entries, divided once summed over ranks
                    fold_metric(sums, k, v, v.weight)
                    fold_metric(sums, k + _ENTRIES, v.weight)
                else:
                    fold_metric(sums, k, v, len(micro) / len(units))
            sums["loss"] += float(loss.detach()) * scale
        if not self.sharded:  # FSDP reduce-scattered the gradients in the last backward
            dist.all_reduce_gradients(self.model.parameters())
        return _divided(dist.reduce_metrics(sums))

    def micro_batches(
        self, batch: RolloutBatch, units: list[int], rows_per_unit: int, micro_batch_size: int | None = None
    ) -> list[list[int]]:
        """This rank's micro-batches of the mini-batch ``units`` (data parallel: ``units[rank::world]``);
        a sharded model gets as many on every rank, the short ones padded with empty micro-batches."""
        dist = current()
        mine = units[dist.rank :: dist.world_size]
        budget = None if micro_batch_size else self.cfg.max_tokens_per_micro_batch
        if budget is None:
            size = micro_batch_size or self.cfg.micro_batch_size
            plan = micro_batches.fixed(mine, size)
            # a sharded model's forwards and backwards are collectives: every rank runs the same number
            count = micro_batches.count_fixed(len(units), dist.world_size, size) if self.sharded else len(plan)
        else:
            prompt, response = micro_batches.unit_widths(batch, rows_per_unit)
            plan = micro_batches.by_tokens(mine, prompt, response, rows_per_unit, budget)
            count = max(dist.gather_objects(len(plan))) if self.sharded else len(plan)
        return plan + [[] for _ in range(count - len(plan))]

    def apply(self, loss: float = 0.0) -> dict[str, float]:
        """Clip, step the optimizer and the schedule, clear gradients. A non-finite ``loss`` or gradient
        norm is refused before the step and non-finite parameters after it (``DivergenceError``): a
        diverged run stops instead of saving NaN weights, and its last checkpoint stays the resume point."""
        assert self.optimizer is not None and self.scheduler is not None, "call start_phase first"
        grad_norm = sharding.as_float(torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.max_grad_norm))
        lr = self.scheduler.get_last_lr()[0]
        try:
            check_finite_step(loss, grad_norm)
            self.optimizer.step()
            largest = largest_parameter(self.model.parameters())
            if self.sharded:  # each rank sees its shards; a sum over ranks keeps NaN / inf, so all agree
                largest = current().reduce_metrics({"largest": largest})["largest"]
            check_finite_parameters(largest)
        finally:
            self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        return {"grad_norm": grad_norm, "lr": lr}

    # ------------------------------------------------------------------ checkpoints
    def save(self, path: str | Path, with_optimizer: bool = True) -> None:
        """Model (save_pretrained) plus optimizer, scheduler and RNG states, written by the caller atomically."""
        path = Path(path)
        keep = with_optimizer and self.optimizer is not None
        if self.sharded:  # gathered to rank 0 (collectives: every rank calls save); optimizer keyed by name
            weights = sharding.full_state_dict(self.model)
            optimizer = sharding.full_optimizer_state(self.model, self.optimizer) if keep else None
            if current().is_main:
                self.model.save_pretrained(path, state_dict=weights)
        else:
            self.model.save_pretrained(path)
            optimizer = self.optimizer.state_dict() if keep else None
        state = {
            "optimizer": optimizer,
            "scheduler": self.scheduler.state_dict() if keep else None,
            "torch_rng": torch.get_rng_state(),
            "python_rng": random.getstate(),
        }
        path.mkdir(parents=True, exist_ok=True)  # a sharded run's other ranks wrote no weights there
        torch.save(state, path / "trainer_state.pt")

    def load_state(self, path: str | Path, num_steps: int) -> None:
        """Restore optimizer/scheduler/RNG saved by ``save`` (the weights are loaded with the model)."""
        state = torch.load(Path(path) / "trainer_state.pt", weights_only=False)
        torch.set_rng_state(state["torch_rng"])
        random.setstate(state["python_rng"])
        if state["optimizer"] is not None:
            self.start_phase(num_steps)
            sharding.load_optimizer_state(self.model, self.optimizer, state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
