"""masked.py on hand numbers: valid entries of X are 1, 2 (row 0) and 4 (row 1)."""

import pytest
import torch

from itero.core.masked import aggregation_weights, masked_mean, masked_var, masked_whiten

X = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
M = torch.tensor([[1, 1, 0], [1, 0, 0]], dtype=torch.bool)


def test_masked_mean_and_var():
    assert masked_mean(X, M).item() == pytest.approx(7 / 3)  # (1 + 2 + 4)/3
    torch.testing.assert_close(masked_mean(X, M, dim=-1), torch.tensor([1.5, 4.0]))
    assert masked_mean(X, torch.zeros_like(M)).item() == 0.0  # empty mask: 0, not NaN
    # deviations −4/3, −1/3, 5/3 → squares sum 42/9 = 14/3; unbiased /2 = 7/3, biased /3 = 14/9
    assert masked_var(X, M).item() == pytest.approx(7 / 3)
    assert masked_var(X, M, unbiased=False).item() == pytest.approx(14 / 9)


def test_masked_whiten():
    # (x − 7/3)/√(7/3), √(7/3) = 1.5275252: −1.3333/1.5275 = −0.8728716, −0.2182179, 1.0910895
    out = masked_whiten(X, M)
    torch.testing.assert_close(out, torch.tensor([[-0.8728716, -0.2182179, 0.0], [1.0910895, 0.0, 0.0]]))


def test_aggregation_weights():
    w = aggregation_weights
    torch.testing.assert_close(w(M, "token-mean"), M / 3.0)  # 3 valid tokens
    torch.testing.assert_close(
        w(M, "seq-mean-token-mean"), torch.tensor([[0.25, 0.25, 0], [0.5, 0, 0]])
    )  # 1/(2·2), 1/(1·2)
    torch.testing.assert_close(w(M, "seq-mean-token-sum-norm"), M / 6.0)  # 1/(B·T) = 1/(2·3)
    torch.testing.assert_close(w(M, "seq-mean-token-sum-norm", max_length=4), M / 8.0)
    torch.testing.assert_close(w(M, "seq-mean-token-sum"), M / 2.0)
    with pytest.raises(ValueError):
        w(M, "sum")


def test_dr_grpo_is_trl_dr_grpo_and_not_verl_seq_mean_token_sum_norm():
    # per-token losses L on the valid tokens of M (B = 2 sequences, width T = 3): 1 + 2 and 4
    L = X
    ours = (L * aggregation_weights(M, "dr-grpo")).sum().item()
    # TRL grpo_trainer loss_type "dr_grpo": (per_token_loss * mask).sum() / (B · max_completion_length)
    trl = (L * M).sum().item() / (2 * 3)
    assert ours == pytest.approx(trl) == pytest.approx(7 / 6)
    # the older name is the same mode
    torch.testing.assert_close(aggregation_weights(M, "seq-mean-token-sum-norm"), aggregation_weights(M, "dr-grpo"))
    # verl core_algos.agg_loss "seq-mean-token-sum-norm" on one micro-batch: the per-sequence sums are
    # summed (not averaged) over sequences, then divided by the width: B times TRL's number
    verl = (L * M).sum(-1).sum().item() / 3
    assert verl == pytest.approx(7 / 3) == pytest.approx(2 * ours)
