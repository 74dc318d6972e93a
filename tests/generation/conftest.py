import pytest
import torch

from itero.batch import position_ids
from itero.models.tiny import build_char_tokenizer, build_tiny_model


def peaked(model, seed: int):
    """The model with its matrices re-drawn at a larger scale: the default init gives nearly
    uniform next-token distributions, where greedy ties and near-ties would make tests fragile."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() >= 2:
                p.copy_(torch.randn(p.shape, generator=g) * 0.15)
    return model.eval()


def peaked_tiny_model(vocab_size: int, seed: int, arch: str = "qwen2"):
    return peaked(
        build_tiny_model(vocab_size, arch=arch, hidden_size=64, num_layers=2, intermediate_size=128, seed=seed), seed
    )


@pytest.fixture(scope="session")
def peak():
    return peaked


@pytest.fixture(scope="session")
def tokenizer():
    return build_char_tokenizer()


@pytest.fixture(scope="session")
def policy(tokenizer):
    return peaked_tiny_model(len(tokenizer), seed=0)


@pytest.fixture(scope="session")
def other_model(tokenizer):
    return peaked_tiny_model(len(tokenizer), seed=1)


@pytest.fixture(scope="session")
def prompts(tokenizer):
    texts = ["12+7=", "Solve: 3*4 = ", "x", "The answer is \\boxed{"]
    return [tokenizer.encode(t, add_special_tokens=False) for t in texts]


@pytest.fixture(scope="session")
def learner_logits():
    return _learner_logits


def _learner_logits(model, batch):
    """Logits over the response columns exactly as the learner computes them. (B, R, V)"""
    P = batch.prompt_ids.shape[1]
    input_ids = torch.cat([batch.prompt_ids, batch.response_ids], dim=1)
    mask = torch.cat([batch.prompt_mask, torch.ones_like(batch.response_mask)], dim=1).long()
    with torch.no_grad():
        positions = position_ids(batch.prompt_mask, batch.response_ids.shape[1])
        logits = model(input_ids=input_ids, attention_mask=mask, position_ids=positions).logits
    return logits[:, P - 1 : -1].float()


@pytest.fixture(scope="session")
def gpt2_model(tokenizer):
    """Absolute position embeddings: unlike RoPE, a shift of every position changes the outputs, so
    this model catches generation and learner positions disagreeing on left-padded rows."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_embd=64,
        n_layer=2,
        n_head=4,
        n_positions=128,
        eos_token_id=1,
        bos_token_id=1,
        pad_token_id=0,
        initializer_range=0.15,
    )
    return GPT2LMHeadModel(config).eval()


@pytest.fixture(scope="session")
def llama_model(tokenizer):
    return peaked_tiny_model(len(tokenizer), seed=2, arch="llama")
