import json

import pytest
import torch

from itero.models.loading import ModelNotFoundError, load_model, load_tokenizer, load_weights_into
from itero.models.tiny import build_char_tokenizer, build_tiny_model, save_tiny

TEXTS = ["47+18*3= 18*3=54. 47+54=101. \\boxed{101}", "  two  spaces\nand a newline\t tab", "Ünïcode→? stays"]


@pytest.mark.parametrize("arch", ["qwen2", "llama"])
def test_saved_tiny_model_and_tokenizer_load_back_through_from_pretrained(tmp_path, arch):
    tok = build_char_tokenizer()
    model = build_tiny_model(
        len(tok), arch=arch, hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=1, intermediate_size=64
    )
    save_tiny(tmp_path, model, tok)
    assert json.loads((tmp_path / "config.json").read_text())["model_type"] == arch
    loaded_tok = load_tokenizer(str(tmp_path))
    for text in TEXTS[:2]:
        ids = loaded_tok.encode(text, add_special_tokens=False)
        assert loaded_tok.decode(ids) == text  # spaces survive: the saved pre-tokenizer is kept
        assert ids == tok.encode(text, add_special_tokens=False)
    loaded = load_model(str(tmp_path))
    x = torch.tensor([tok.encode(TEXTS[0], add_special_tokens=False)])
    torch.testing.assert_close(loaded(input_ids=x).logits, model(input_ids=x).logits)


def test_unknown_characters_map_to_unk_not_crash():
    tok = build_char_tokenizer()
    ids = tok.encode(TEXTS[2], add_special_tokens=False)
    assert len(ids) == len(TEXTS[2]) and tok.unk_token_id in ids


def test_missing_model_path_is_a_clear_error(tmp_path):
    with pytest.raises(ModelNotFoundError, match="does not exist or has no config.json"):
        load_model(str(tmp_path / "nope"))


def test_load_weights_into_keeps_parameter_objects(tmp_path):
    tok = build_char_tokenizer()
    a = build_tiny_model(
        len(tok), hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=1, intermediate_size=64, seed=1
    )
    b = build_tiny_model(
        len(tok), hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=1, intermediate_size=64, seed=2
    )
    save_tiny(tmp_path, a, tok)
    before = [id(p) for p in b.parameters()]
    load_weights_into(b, tmp_path)
    assert [id(p) for p in b.parameters()] == before
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.equal(p, q)
