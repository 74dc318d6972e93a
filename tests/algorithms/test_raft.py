from helpers import text_batch, tiny

from itero.algorithms import raft


def test_select_threshold_cap_and_duplicates():
    _, tok = tiny()
    batch = text_batch(
        tok,
        ["p"] * 7,
        ["a", "a", "b", "c", "d", "e", "f"],
        scores=[1, 1, 1, 1, 0.5, 1, -1],
        group_ids=[0, 0, 0, 0, 0, 1, 1],
    )
    out, stats = raft.select(batch, raft.Config(threshold=1.0, max_per_prompt=2))
    # "a" twice counts once; the cap keeps the first two distinct correct responses of group 0
    assert out.response_texts == ["a", "b", "e"]
    assert stats == {"kept": 3, "prompts_with_kept": 2, "frac_prompts_no_kept": 0.0}
    out, _ = raft.select(batch, raft.Config(threshold=1.0, max_per_prompt=8, unique=False))
    assert out.response_texts == ["a", "a", "b", "c", "e"]
