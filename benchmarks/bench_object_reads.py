"""Images read from object storage by the image workers: one GET at a time against
REMOTE_READS_IN_FLIGHT concurrent ones (mmsa_cli/scoring/preprocess.py, fetch_remote).

Starts a moto S3 server on localhost, uploads --images JPEGs of tweet-photo size and times
prepare_images() over them (read + decode + resize, one worker's task list) with 1 and with N
reads in flight. Against localhost the wait per request is the server's own work (moto is
Python), far below a real store's tens of milliseconds, so this understates the gain there;
--latency-ms adds that wait to every request on the client side (a sleep in the read, the
shape of a remote store's first-byte latency) to show it.

    python benchmarks/bench_object_reads.py --images 200 --latency-ms 0 20 \
        --out benchmarks/results/object_reads.json
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=200)
    ap.add_argument("--latency-ms", type=float, nargs="+", default=[0.0, 20.0])
    ap.add_argument("--in-flight", type=int, nargs="+", default=[1, 16])
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()

    import logging

    from scoring_helpers import local_s3_server

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    with local_s3_server():
        measure(args)


def measure(args) -> None:
    import tempfile

    import boto3
    from scoring_helpers import noisy_jpeg

    from mmsa_cli.scoring.images import prepare as preprocess, remote as remote_images
    from mmsa_cli.scoring.images.prepare import ImageSpec, prepare_images

    client = boto3.client("s3")
    client.create_bucket(Bucket="bench")
    with tempfile.TemporaryDirectory() as tmp:
        photo = noisy_jpeg(Path(tmp) / "photo.jpg", (600, 400), seed=0).read_bytes()
    for i in range(args.images):
        client.put_object(Bucket="bench", Key=f"images/{i}.jpg", Body=photo)
    spec = ImageSpec(260, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    tasks = [(f"{i}.jpg", "s3://bench/images") for i in range(args.images)]
    read = remote_images.RemoteImages.read
    results = []
    for latency in args.latency_ms:
        def slow_read(self, *a, _wait=latency / 1000, **kw):
            time.sleep(_wait)
            return read(self, *a, **kw)

        remote_images.RemoteImages.read = slow_read
        for in_flight in args.in_flight:
            preprocess.REMOTE_READS_IN_FLIGHT = in_flight
            preprocess._remote_reader.cache_clear()
            prepare_images(tasks[:8], spec)  # the client and the pool, once
            t0 = time.perf_counter()
            out, _ = prepare_images(tasks, spec)
            seconds = time.perf_counter() - t0
            assert all(r.status == "pixels" for r in out), [r.error for r in out if r.error][:1]
            row = {"latency_ms": latency, "reads_in_flight": in_flight, "images": args.images,
                   "seconds": round(seconds, 2), "images_per_second": round(args.images / seconds, 1)}
            results.append(row)
            print(json.dumps(row), flush=True)
    remote_images.RemoteImages.read = read
    report = {"what": "prepare_images over images on a moto S3 server on localhost, one task list",
              "image_bytes": len(photo), "machine": f"{os.cpu_count()}-core CPU", "platform": platform.platform(),
              "command": "python " + " ".join(sys.argv), "results": results}
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
