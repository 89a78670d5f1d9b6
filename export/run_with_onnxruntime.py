"""Score one tweet with an exported mmsa model folder in plain ONNX Runtime: the session and
its feeds spelled out, for people wiring the model into their own service. The inputs are
prepared by mmsa's torch-free contract (the light install, `pip install 'mmsa-tweets[cpu]'`:
no torch, no transformers), the same code `mmsa score` runs, so nothing here can drift from it.

    python export/run_with_onnxruntime.py models/NAME "what a great day at the beach" photo.jpg
"""
from __future__ import annotations

import sys

import onnxruntime as ort

from mmsa_cli.contract.geometry import preprocess_image        # resize shorter side, centre crop, normalise
from mmsa_cli.contract.images import load_image                 # any format -> RGB, EXIF applied, JPEG drafted
from mmsa_cli.contract.inputs import ModelInputs                # what the model expects, from its manifest
from mmsa_cli.contract.model_folder import load_model_folder    # checks the folder's checksums
from mmsa_cli.contract.tokenizer import BatchTokenizer          # text normalization + tokenizer, as trained


def main(folder: str, text: str, image: str) -> None:
    model = load_model_folder(folder)
    i = ModelInputs.from_manifest(model.manifest)
    ids, mask = BatchTokenizer(model.load_tokenizer(), i.max_length, i.text_normalization)([text])
    width = int(mask.sum())
    pixels = preprocess_image(load_image(image, draft_size=i.image_size), i.image_size, i.image_mean, i.image_std)
    # onnxruntime-gpu lists CUDA even where it cannot load it (no GPU): ORT then logs an error
    # and falls back to the CPU, which the last column of the output shows.
    providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in ort.get_available_providers()]
    session = ort.InferenceSession(str(model.onnx_path), providers=providers)
    probs, _logits = session.run(["probs", "logits"], {"input_ids": ids[:, :width],           # [1, L] int64
                                                       "attention_mask": mask[:, :width],     # [1, L] int64
                                                       "pixel_values": pixels[None]})         # [1, 3, S, S] float32
    best = int(probs[0].argmax())
    labels = model.manifest.labels
    print(f"{labels[best]}  " + "  ".join(f"{label} {p:.3f}" for label, p in zip(labels, probs[0]))
          + f"  ({session.get_providers()[0]})")


if __name__ == "__main__":
    if len(sys.argv) != 4:
        raise SystemExit(__doc__)
    main(*sys.argv[1:])
