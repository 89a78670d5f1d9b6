#!/usr/bin/env python
"""Do DALI's pixels give the labels the CPU image path gives? An exported model folder scores the
same rows twice on one loaded model, images prepared by DALI (`--image-decoder dali`) and by the
CPU workers (`cpu`), and once with every image blanked (the share of labels the image decides: if
blanking changed none, agreement would say nothing). Issue 19's goal: >= 99.5% of labels.

Needs a model whose labels vary (a trained one; random weights predict one label everywhere):
bench_score.py refuses such a model and so does this. Run it where CUDA, onnxruntime-gpu and
DALI are (benchmarks/gpu_session.sh carries them), e.g.

    python3 benchmarks/dali_agreement.py --model /tmp/model-agree --images-dir .gpu/mvsa/data \
        --rows 20000 --out $OUT/dali_agreement.json

On a CPU machine every path is the CPU path (a dry run: 100% by construction).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

import bench_score  # noqa: E402  (torch before onnxruntime; inputs, refusals, the CPU-path reference)

from mmsa_cli.scoring import Scorer, ScoreOptions, score_files  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, required=True, help="an exported model folder (mmsa export)")
    p.add_argument("--images-dir", type=Path, required=True, help="real *.jpg, copied into --work")
    p.add_argument("--images", type=int, default=1000)
    p.add_argument("--rows", type=int, default=20000)
    p.add_argument("--device", choices=["cpu", "cuda"], default="cuda")
    p.add_argument("--decoder", default="dali", help="the GPU image path to check [dali]")
    p.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "mmsa-dali-agreement")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    images = bench_score.real_images(args.images_dir, args.work, args.images)
    data = args.work / f"rows-{args.rows}.parquet"
    bench_score.make_input(data, args.rows, images)

    t0 = time.perf_counter()
    scorer = Scorer(args.model, args.device, image_decoder=args.decoder)
    load = time.perf_counter() - t0
    used = scorer.image_decoder or "cpu"
    gpu_out = args.work / f"{args.decoder}.parquet"
    opts = ScoreOptions(device=args.device, overwrite=True, progress=False)
    summary = score_files(data, args.model, gpu_out, opts, scorer=scorer)
    bench_score.refuse_row_errors(f"the {used} run", summary.rows, summary.errors_by_kind)
    # bench_score's reference: the same rows, CPU-prepared pixels, then blank images
    ref_args = argparse.Namespace(device=args.device, batch_size=None, workers=None,
                                  row_group_size=ScoreOptions.row_group_size)
    reference = bench_score.cpu_path_reference(ref_args, scorer, args.model, data, args.work, args.rows)
    agreement = bench_score.compare(gpu_out, reference["paths"]["cpu_path"], args.rows)
    result = {"model": str(args.model), "device": args.device, "image_path_checked": used,
              "images": f"{args.images_dir}: {args.images} real JPEGs reused by path", "rows": args.rows, "model_load_seconds": round(load, 2),
              "label_agreement": agreement["label_agreement"],
              "max_abs_diff_probs": agreement["max_abs_diff_probs"],
              "reference_labels": agreement["reference_labels"],
              "image_sensitivity": reference["image_sensitivity"],
              "goal": {"target": ">= 0.995", "met": agreement["label_agreement"] >= 0.995},
              "command": "python benchmarks/dali_agreement.py " + " ".join(sys.argv[1:])}
    print(f"{used} vs the CPU image path: {agreement['label_agreement']:.2%} of {args.rows:,} labels equal, "
          f"max |d prob| {agreement['max_abs_diff_probs']:.2e}; blanking the image changes "
          f"{reference['image_sensitivity']:.1%} of the labels; reference labels {agreement['reference_labels']}")
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
