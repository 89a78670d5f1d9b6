"""Batched JPEG decode speed: torchvision's nvJPEG call (what `mmsa score` uses) vs nvImageCodec.

    python benchmarks/bench_jpeg_decode.py --images-dir DIR [--batch 256] [--seconds 3] [--out X.json]

Decodes the *.jpg of DIR (e.g. the synthetic MVSA-like JPEGs bench_score.py makes in
WORK/img, or ../shared/data/mvsa-single/data) in batches, for each decoder, on an otherwise
idle GPU: images/s, and the largest pixel difference from torchvision's output on 16 images.
Decoders: torchvision (nvJPEG on the GPU's cores), nvimgcodec (the GPU's hardware JPEG
engines first, then its CUDA decoder), nvimgcodec-hw (hardware engines only),
nvimgcodec-cuda (CUDA decoder only). Without a GPU it runs the CPU decoders (torchvision,
nvimgcodec: libjpeg-turbo both) as a smoke test.
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

import numpy as np  # noqa: E402

from mmsa_cli.scoring.images.gpu import GpuJpegDecoder  # noqa: E402


# nvImageCodec (pip: nvidia-nvimgcodec-cu13 + nvidia-nvjpeg) behind GpuJpegDecoder's contract.
# It was wired into `mmsa score` and measured slower there (benchmarks/results/score_gpu.md,
# session 3), so it lives here only.
def _import_nvimgcodec():
    """nvidia.nvimgcodec, imported with stderr silenced: at import it complains on stderr about
    optional codec libraries (JPEG 2000, TIFF) that scoring does not need."""
    import os
    import sys

    if "nvidia.nvimgcodec" in sys.modules:
        return sys.modules["nvidia.nvimgcodec"]
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            from nvidia import nvimgcodec
    finally:
        os.dup2(saved, 2)
        os.close(saved)
    return nvimgcodec


class NvImageCodecDecoder:
    """Batched JPEG decode through nvImageCodec, the same contract as GpuJpegDecoder. On a GPU
    it tries the hardware decoder first (the NVJPG engines of A100/H100-class GPUs: decoding
    then leaves the SMs to the model) and nvJPEG's CUDA decoder next; on the CPU (tests) it
    decodes with libjpeg-turbo. One nvImageCodec Decoder per calling thread."""

    name = "nvimgcodec"

    def __init__(self, device: torch.device, kinds: tuple[str, ...] = ("HW_GPU_ONLY", "GPU_ONLY")):
        """kinds: nvImageCodec backend kinds on a GPU, tried in order (benchmarks pick one)."""
        import threading

        n = _import_nvimgcodec()
        self.device, self._n = device, n
        if device.type == "cuda":
            self._backends = [n.Backend(getattr(n.BackendKind, kind)) for kind in kinds]
            self._device_id = device.index if device.index is not None else torch.cuda.current_device()
        else:
            self._backends = [n.Backend(n.BackendKind.CPU_ONLY)]
            self._device_id = n.NVIMGCODEC_DEVICE_CPU_ONLY
        self._params = n.DecodeParams(apply_exif_orientation=False, color_spec=n.ColorSpec.SRGB,
                                      allow_any_depth=False, sample_format=n.SampleFormat.P_RGB)
        self._local = threading.local()

    def _decoder(self):
        if not hasattr(self._local, "decoder"):
            import os

            threads = max(1, min(4, (os.cpu_count() or 2) - 1))  # host-side parsing only
            self._local.decoder = self._n.Decoder(device_id=self._device_id, max_num_cpu_threads=threads,
                                                  backends=self._backends)
        return self._local.decoder

    def _tensor(self, image) -> torch.Tensor:
        if self.device.type == "cuda":
            return torch.from_dlpack(image)                      # [3,h,w] on the device, no copy
        return torch.from_numpy(np.array(image))                 # [3,h,w] host copy

    def __call__(self, blobs: list[bytes]) -> tuple[list[torch.Tensor | None], list[int]]:
        n = self._n
        stream = torch.cuda.current_stream(self.device).cuda_stream if self.device.type == "cuda" else 0
        try:
            images = self._decoder().decode([n.CodeStream(bytes(b)) for b in blobs], params=self._params,
                                            cuda_stream=stream)
        except Exception:  # a batch-level failure: decode one by one, so only bad files fail
            images = []
            for b in blobs:
                try:
                    images.append(self._decoder().decode(n.CodeStream(bytes(b)), params=self._params,
                                                         cuda_stream=stream))
                except Exception:
                    images.append(None)
        decoded = [None if im is None else self._tensor(im) for im in images]
        return decoded, [i for i, t in enumerate(decoded) if t is None]


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
            pairs = [(a, b) for a, b in zip(sample, reference) if a is not None]
            if not pairs:
                raise RuntimeError("it decoded none of 16 sample JPEGs")
            entry["max_abs_diff_vs_torchvision"] = max(int((a.int() - b.int()).abs().max()) for a, b in pairs)
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
