"""Batched JPEG decode speed: torchvision's nvJPEG call vs nvImageCodec's backends.

    python benchmarks/bench_jpeg_decode.py --images-dir DIR [--batch 256] [--seconds 3] [--out X.json]

Decodes the *.jpg of DIR (e.g. the synthetic MVSA-like JPEGs bench_score.py makes in
WORK/img, or ../shared/data/mvsa-single/data) in batches, for each decoder, on an otherwise
idle GPU: images/s, and the largest pixel difference from torchvision's output (different
IDCTs differ by a few grey levels). Decoders: torchvision (nvJPEG on the GPU's cores),
nvimgcodec (hardware engines first, then CUDA: what `mmsa score` uses), nvimgcodec-hw
(hardware engines only), nvimgcodec-cuda (nvJPEG's CUDA decoder only). Without a GPU it runs
the CPU decoders (torchvision, nvimgcodec) as a smoke test.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from pathlib import Path

import torch  # noqa: I001  (before nvImageCodec: the CUDA libraries torch loads)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mmsa_cli.scoring.gpu_images import GpuJpegDecoder, NvImageCodecDecoder  # noqa: E402

DECODERS = {
    "torchvision": lambda dev: GpuJpegDecoder(dev),
    "nvimgcodec": lambda dev: NvImageCodecDecoder(dev),
    "nvimgcodec-hw": lambda dev: NvImageCodecDecoder(dev, ("HW_GPU_ONLY",)),
    "nvimgcodec-cuda": lambda dev: NvImageCodecDecoder(dev, ("GPU_ONLY",)),
}


def measure(decode, batches: list[list[bytes]], seconds: float, device: torch.device) -> dict:
    decode(batches[0])  # warm-up: handles, buffers, the first kernels
    if device.type == "cuda":
        torch.cuda.synchronize()
    n, i, start = 0, 0, time.perf_counter()
    while time.perf_counter() - start < seconds or i == 0:
        decoded, failed = decode(batches[i % len(batches)])
        n += len(decoded) - len(failed)
        i += 1
    if device.type == "cuda":
        torch.cuda.synchronize()
    return {"images_per_s": round(n / (time.perf_counter() - start), 1), "batches": i}


def main() -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images-dir", type=Path, required=True)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--seconds", type=float, default=3.0, help="timed seconds per decoder")
    ap.add_argument("--decoders", default=",".join(DECODERS))
    ap.add_argument("--limit", type=int, default=1024, help="JPEGs read from the folder")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    blobs = [f.read_bytes() for f in sorted(args.images_dir.glob("*.jpg"))[:args.limit]]
    if not blobs:
        ap.error(f"no *.jpg in {args.images_dir}")
    batches = [blobs[i:i + args.batch] for i in range(0, len(blobs), args.batch)]
    names = [d for d in args.decoders.split(",") if d and (device.type == "cuda" or d in ("torchvision", "nvimgcodec"))]
    reference = GpuJpegDecoder(device)(batches[0][:16])[0]
    results = []
    for name in names:
        entry = {"decoder": name}
        try:
            decode = DECODERS[name](device)
            sample = decode(batches[0][:16])[0]
            entry["max_abs_diff_vs_torchvision"] = max(int((a.int() - b.int()).abs().max())
                                                       for a, b in zip(sample, reference) if a is not None)
            entry |= measure(decode, batches, args.seconds, device)
        except Exception as exc:  # one decoder failing must not lose the others
            entry["status"] = f"failed: {type(exc).__name__}: {exc}"[:300]
            entry["traceback"] = traceback.format_exc(limit=3)
        results.append(entry)
        print(json.dumps({k: v for k, v in entry.items() if k != "traceback"}), flush=True)
    report = {"device": torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu", "images": len(blobs),
              "mean_kb": round(sum(map(len, blobs)) / len(blobs) / 1024, 1), "batch": args.batch,
              "command": " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]), "results": results}
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    main()
