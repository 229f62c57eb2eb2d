"""Digit recognition: a residual CNN trained on scikit-learn's digits (see train.py and
metrics.json), served four ways.

- `digits`: POST {"image": [[...8 rows of 8 values 0..16...]]} or {"image": "<base64 PNG>"};
  concurrent requests share one forward pass (batch=).
- `digits-single`: the same model without batching, for tests/bench/batching.py.
- `digits-upload`: a PNG uploaded under `images/` in the `images` bucket gets its prediction
  written as JSON to `predictions/<key>.json`.
- `digits-form`: a PNG posted as the multipart form field `image`, the way a browser form or
  `curl -F image=@seven.png` sends it.
"""

from __future__ import annotations

from typing import Annotated

from annotated_types import Len
from fastapi import HTTPException
from pydantic import Base64Bytes, BaseModel, Field

import lepton

Row = Annotated[list[Annotated[float, Field(ge=0, le=16)]], Len(8, 8)]
Grid = Annotated[list[Row], Len(8, 8)]
Image = Grid | Base64Bytes


class Prediction(BaseModel):
    digit: int
    confidence: float
    probabilities: list[float]


class Classifier:
    def setup(self) -> None:
        from digitnet import load

        self.model = load()

    def predict(self, images: list[Image]) -> list[Prediction]:
        import torch
        from digitnet import png_to_grid, to_tensor

        grids = [png_to_grid(image) if isinstance(image, bytes) else image for image in images]
        with torch.inference_mode():
            rows = torch.softmax(self.model(to_tensor(grids)), dim=1).tolist()  # one conversion, not 12 tensor ops an image
        return [
            Prediction(
                digit=max(range(len(row)), key=row.__getitem__), confidence=round(max(row), 4), probabilities=[round(v, 4) for v in row]
            )
            for row in rows
        ]


@lepton.function(
    name="digits",
    batch=lepton.Batch(max_size=32, max_wait_ms=4),
    max_scale=2,
    concurrency=64,
    requirements=["torch", "pillow"],
    public=True,
)
class Digits(Classifier):
    def __call__(self, image: list[Image]) -> list[Prediction]:
        return self.predict(image)


@lepton.function(name="digits-single", max_scale=2, concurrency=64, requirements=["torch", "pillow"], public=True)
class DigitsSingle(Classifier):
    def __call__(self, image: Image) -> Prediction:
        return self.predict([image])[0]


@lepton.function(
    name="digits-upload",
    buckets=["images", "predictions"],
    requirements=["torch", "pillow"],
    triggers=[lepton.on_bucket("images", prefix="in/", suffix=".png")],
)
class DigitsUpload(Classifier):
    def __call__(self, event: lepton.CloudEvent) -> None:
        key = event.get_subject()
        prediction = self.predict([lepton.bucket("images").get(key)])[0]
        lepton.bucket("predictions").put(f"{key}.json", prediction.model_dump_json(), content_type="application/json")


@lepton.function(name="digits-form", max_scale=2, requirements=["torch", "pillow"], public=True)
class DigitsForm(Classifier):
    def __call__(self, request: lepton.Request) -> Prediction:
        upload = request.files.get("image")
        if upload is None:
            raise HTTPException(422, "send the PNG as the multipart form field 'image'")
        return self.predict([upload.data])[0]
