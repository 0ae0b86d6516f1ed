"""The seed's two synthesis paths, measured in the coqui environment for ``bench/seed.py``.

This file (with ``seed.py``) is the only place in the project that unpickles anything: it
reproduces what the service this project replaces did (CONTEXT.md), to measure it.

    python bench/seed_worker.py serve CHECKPOINT CONFIG --redis-port P --threads T
    python bench/seed_worker.py rss CHECKPOINT CONFIG --voices 3

``serve`` runs, on request, (a) a new ``Synthesizer`` per request then ``tts``; (b) Redis
GET + ``pickle.loads`` of a Synthesizer (weight norm folded first: torch 2.13 will not
pickle parametrized modules) then ``tts``; and the pieces of each (see ``serve``).
``rss`` prints the resident memory of this process after each of N Synthesizers.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
STARTED = time.perf_counter()

import pickle  # noqa: E402 - the seed's way, reproduced here only

import psutil  # noqa: E402
import torch  # noqa: E402
from torch.nn.utils import parametrize  # noqa: E402
from TTS.utils.synthesizer import Synthesizer  # noqa: E402

IMPORT_S = time.perf_counter() - STARTED
USER = "minji@example.com"


def new_synthesizer(checkpoint: str, config: str) -> Any:
    synth = Synthesizer(tts_checkpoint=checkpoint, tts_config_path=config)
    deterministic_durations(synth)
    return synth


def deterministic_durations(synth: Any) -> None:
    """Noise-free durations, so every path synthesizes audio of the same length (ours
    too: ``noise_w=0``); the generator noise stays at the voice's default."""
    synth.tts_model.inference_noise_scale_dp = 0.0


def seed_normalize(synth: Any, text: str) -> str:
    """The seed kept only characters the model knows (its vocabulary's characters and
    punctuation here, so that both paths speak exactly the same ids)."""
    known = set(synth.tts_model.tokenizer.characters.vocab)
    return "".join(c for c in text if c in known)


def fold_weight_norm(synth: Any) -> None:
    """What ``export_onnx`` does, so that torch 2.13 can pickle the model; the local hook
    ``weight_norm`` leaves behind (for loading old checkpoints) cannot be pickled either."""
    for module in synth.tts_model.modules():
        if parametrize.is_parametrized(module, "weight"):
            parametrize.remove_parametrizations(module, "weight")
        hooks = module._load_state_dict_pre_hooks
        for key, hook in list(hooks.items()):
            if "<locals>" in getattr(getattr(hook, "hook", hook), "__qualname__", ""):
                del hooks[key]


def timed(run: Any) -> float:
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def serve(args: argparse.Namespace) -> None:
    """Set up both seed paths, print what was measured doing so, then run one row per
    command line read from stdin (``a``, ``b``, ``tts``, ``tts_unfolded``, ``inference``),
    answering each with its timings, so ``seed.py`` can interleave them with its own."""
    import redis

    torch.set_num_threads(args.threads)
    client = redis.Redis(host="127.0.0.1", port=args.redis_port)
    started = time.perf_counter()
    synth = new_synthesizer(args.checkpoint, args.config)
    init_fresh_s = time.perf_counter() - started
    text = seed_normalize(synth, args.sentence)
    unfolded = new_synthesizer(args.checkpoint, args.config)
    fold_weight_norm(synth)
    blob = pickle.dumps(synth)
    client.set(USER, blob)
    ids = torch.as_tensor([synth.tts_model.tokenizer.text_to_ids(text, language="en")])

    def path_a() -> dict[str, float]:
        fresh = new_synthesizer(args.checkpoint, args.config)
        fresh.tts(seed_normalize(fresh, args.sentence))
        return {}

    def path_b() -> dict[str, float]:
        started = time.perf_counter()
        data = client.get(USER)
        got = time.perf_counter()
        cached = pickle.loads(data)
        loaded = time.perf_counter()
        cached.tts(seed_normalize(cached, args.sentence))
        return {"redis_get": got - started, "pickle_loads": loaded - got}

    def model_inference() -> dict[str, float]:
        synth.tts_model.inference(ids, aux_input={"x_lengths": torch.tensor([ids.shape[1]])})
        return {}

    def tts() -> dict[str, float]:
        synth.tts(text)
        return {}

    def tts_unfolded() -> dict[str, float]:
        unfolded.tts(text)
        return {}

    rows = {
        "a": path_a, "b": path_b, "tts": tts, "tts_unfolded": tts_unfolded,
        "inference": model_inference,
    }  # fmt: skip
    print(json.dumps({
        "import_s": IMPORT_S, "init_fresh_s": init_fresh_s, "pickle_bytes": len(blob),
        "ids": ids[0].tolist(),
    }), flush=True)  # fmt: skip
    try:
        for line in sys.stdin:
            started = time.perf_counter()
            extra = rows[line.strip()]()
            print(json.dumps({"t": time.perf_counter() - started, **extra}), flush=True)
    finally:
        client.delete(USER)


def rss(args: argparse.Namespace) -> dict[str, Any]:
    def resident() -> int:
        gc.collect()
        return int(psutil.Process().memory_info().rss)

    held, measured = [], [resident()]
    for _ in range(args.voices):
        synth = new_synthesizer(args.checkpoint, args.config)
        synth.tts(seed_normalize(synth, "A short warm-up sentence."))
        held.append(synth)
        measured.append(resident())
    return {"rss": measured}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["serve", "rss"])
    parser.add_argument("checkpoint")
    parser.add_argument("config")
    parser.add_argument("--redis-port", type=int)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--voices", type=int, default=3)
    parser.add_argument("--sentence", default="")
    args = parser.parse_args()
    if args.mode == "serve":
        serve(args)
    else:
        print(json.dumps(rss(args)))


if __name__ == "__main__":
    main()
