import copy

import numpy as np
import pytest
import torch

from node.trainer.inner import InnerTrainer, eval_loss, eval_windows, sample_windows
from node.trainer.model import (
    PRESETS,
    ModelPreset,
    build_model,
    llama_config,
    param_count,
)
from tests.support.corpora import text_pages

SEQ = 32


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _state(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_presets_sizes():
    assert set(PRESETS) >= {"tiny", "small", "base100m", "base1b"}
    with torch.device("meta"):
        from transformers import LlamaForCausalLM

        counts = {k: param_count(LlamaForCausalLM(llama_config(k))) for k in PRESETS}
    assert 1e6 <= counts["tiny"] <= 3e6
    assert 15e6 <= counts["small"] <= 25e6
    assert 100e6 <= counts["base100m"] <= 125e6
    assert 0.9e9 <= counts["base1b"] <= 1.2e9
    with pytest.raises(ValueError):
        ModelPreset(hidden_size=100, num_layers=1, num_heads=3, num_kv_heads=3, intermediate_size=8, seq_len=8, max_vocab=256)
    with pytest.raises(ValueError, match="outside what this preset allows"):
        build_model("tiny", 0, vocab_size=PRESETS["tiny"].max_vocab + 1)
    assert build_model("tiny", 0, vocab_size=1000).config.vocab_size == 1000


def test_build_model_deterministic():
    rng_before = torch.get_rng_state()
    a, b, c = build_model("tiny", 1), build_model("tiny", 1), build_model("tiny", 2)
    assert torch.equal(torch.get_rng_state(), rng_before), "build_model must not touch the global RNG"
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k
    assert any(not torch.equal(sa[k], sc[k]) for k in sa if k.endswith("proj.weight"))
    assert not a.config.tie_word_embeddings
    assert a.lm_head.weight.data_ptr() != a.model.embed_tokens.weight.data_ptr()
    assert a.config.vocab_size == 256
    assert a.config.attention_dropout == 0.0
    assert 1e6 <= param_count(a) <= 3e6


def test_windows():
    pages = text_pages(4, 200)
    g1, g2 = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    b1, b2 = sample_windows(pages, 5, SEQ, g1), sample_windows(pages, 5, SEQ, g2)
    assert b1.shape == (5, SEQ + 1) and b1.dtype == torch.int64
    assert torch.equal(b1, b2)
    assert not torch.equal(b1, sample_windows(pages, 5, SEQ, torch.Generator().manual_seed(8)))
    w = eval_windows(pages, SEQ)
    assert w.shape == (4 * ((200 - 1) // SEQ), SEQ + 1)
    assert torch.equal(w[1, :1], torch.from_numpy(pages[0][SEQ : SEQ + 1].astype(np.int64)))
    with pytest.raises(ValueError):
        eval_windows([pages[0][:SEQ]], SEQ)


def test_inner_training_lowers_loss():
    torch.manual_seed(0)
    pages = text_pages()
    train_pages, held = pages[:10], pages[10:]
    model = build_model("tiny", 0)
    model.train()
    ev0 = eval_loss(model, held, SEQ, batch_size=8)
    assert model.training, "eval_loss must restore the training mode"
    assert ev0 == eval_loss(model, held, SEQ, batch_size=8), "eval_loss must be deterministic"
    tr = InnerTrainer(model, lr=3e-3, weight_decay=0.1, betas=(0.9, 0.95), warmup_steps=5, batch_size=8, seq_len=SEQ, device="cpu")
    first = tr.train(train_pages, 5, seed=1)
    later = [tr.train(train_pages, 10, seed=s) for s in (2, 3, 4)]
    assert tr.step_count == 35
    assert later[-1] < first * 0.8
    ev1 = eval_loss(model, held, SEQ, batch_size=8)
    assert ev1 < ev0 * 0.8, (ev0, ev1)
    # the inner optimizer state persists across train() calls
    assert len(tr.optimizer.state) == len(list(model.parameters()))
    assert all(int(s["step"]) == 35 for s in tr.optimizer.state.values())


def test_inner_training_reproducible():
    pages = text_pages(4)
    results = []
    for _ in range(2):
        model = build_model("tiny", 3)
        tr = InnerTrainer(model, lr=1e-3, weight_decay=0.0, betas=(0.9, 0.95), warmup_steps=0, batch_size=4, seq_len=SEQ, device="cpu")
        loss = tr.train(pages, 3, seed=11)
        results.append((loss, _state(model)))
    (l1, s1), (l2, s2) = results
    assert l1 == l2
    assert all(torch.equal(s1[k], s2[k]) for k in s1)
    # a different seed picks different windows
    model = build_model("tiny", 3)
    tr = InnerTrainer(model, lr=1e-3, weight_decay=0.0, betas=(0.9, 0.95), warmup_steps=0, batch_size=4, seq_len=SEQ, device="cpu")
    assert tr.train(pages, 3, seed=12) != l1


def test_trainer_state_dict_roundtrip():
    pages = text_pages(4)
    model = build_model("tiny", 0)
    tr = InnerTrainer(model, lr=1e-3, weight_decay=0.1, betas=(0.9, 0.95), warmup_steps=2, batch_size=2, seq_len=SEQ, device="cpu")
    tr.train(pages, 2, seed=0)
    model2 = copy.deepcopy(model)
    tr2 = InnerTrainer(model2, lr=1e-3, weight_decay=0.1, betas=(0.9, 0.95), warmup_steps=2, batch_size=2, seq_len=SEQ, device="cpu")
    tr2.load_state_dict(copy.deepcopy(tr.state_dict()))
    assert tr2.step_count == 2
    l1, l2 = tr.train(pages, 2, seed=5), tr2.train(pages, 2, seed=5)
    assert l1 == l2
    s1, s2 = model.state_dict(), model2.state_dict()
    assert all(torch.equal(s1[k], s2[k]) for k in s1)


def test_training_stops_at_its_deadline():
    import time

    model = build_model("tiny", 0)
    tr = InnerTrainer(model, lr=1e-3, batch_size=2, seq_len=SEQ, device="cpu")
    loss = tr.train(text_pages()[:4], 50, seed=0, deadline=time.time())
    assert tr.last_steps == 1 and tr.step_count == 1 and loss > 0  # at least one step, then stop
    tr.train(text_pages()[:4], 3, seed=0, deadline=time.time() + 600)
    assert tr.last_steps == 3
