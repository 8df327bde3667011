"""`gradswarm sample`: continue a prompt with a state of the run, as the exported folder would.

The state is opened as `gradswarm export` opens it (a checkpoint file, or a
hash fetched from the swarm and checked), loaded into the run's model by the
same code that export saves from, the prompt encoded with the run's tokenizer,
and `transformers`' ``generate`` continues it.
"""

from __future__ import annotations

import argparse
import sys

from node.commands.export import add_state_arguments, open_state


def add_parser(sub: argparse._SubParsersAction) -> None:
    sample = sub.add_parser("sample", help="continue a prompt with a state of the run (a checkpoint or a state hash)")
    add_state_arguments(sample)
    sample.add_argument("--prompt", required=True, help="the text to continue")
    sample.add_argument("--tokens", type=int, default=32, help="new tokens to generate (default 32)")
    sample.add_argument("--temperature", type=float, default=0.0, help="0: greedy (default); above 0: sampling at this temperature")
    sample.add_argument("--top-k", type=int, default=0, help="sample among the k likeliest tokens only (0: all)")
    sample.add_argument("--seed", type=int, default=0, help="the sampling seed")
    sample.set_defaults(func=cmd_sample)


def generate(spec, state, prompt: str, tokens: int, temperature: float = 0.0, top_k: int = 0, seed: int = 0) -> str:
    """The continuation of `prompt` (the new text only)."""
    import torch

    from node.checkpoint.export import load_model, run_tokenizer

    if tokens < 1:
        raise ValueError("--tokens must be at least 1")
    if temperature < 0:
        raise ValueError("--temperature must be 0 (greedy) or more")
    tokenizer = run_tokenizer(spec)
    model = load_model(spec, state, tokenizer)
    ids = tokenizer.hf(prompt, return_tensors="pt", add_special_tokens=False)
    if ids["input_ids"].shape[1] == 0:
        raise ValueError("the prompt encodes to no tokens")
    options = {"do_sample": False} if temperature == 0 else {"do_sample": True, "temperature": temperature, "top_k": top_k}
    torch.manual_seed(seed)
    with torch.no_grad():
        out = model.generate(**ids, max_new_tokens=tokens, **options)
    return tokenizer.hf.decode(out[0, ids["input_ids"].shape[1] :], skip_special_tokens=True)


def cmd_sample(args: argparse.Namespace) -> int:
    from node.swarm.outside import NotHeld

    try:
        spec, opened = open_state(args, progress=sys.stderr.isatty())
    except NotHeld as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    text = generate(spec, opened.state, args.prompt, args.tokens, args.temperature, args.top_k, args.seed)
    print(args.prompt + text)
    return 0
