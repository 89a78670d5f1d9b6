"""Installed size of each extra: pip's resolution (dry-run reports) x the size on disk of
each resolved distribution in environments where it is installed.

    for e in cpu gpu train,cpu train,gpu ray; do
      pip install -q --dry-run --ignore-installed --report rep_$e.json ".[$e]"; done
    python benchmarks/install_sizes.py SITE_PACKAGES [SITE_PACKAGES ...]   # in the reports' folder
"""
import json, re, sys, os
from importlib import metadata
paths = sys.argv[1:]
def norm(n): return re.sub(r"[-_.]+", "-", n).lower()
sizes = {}
for p in paths:
    for d in metadata.distributions(path=[p]):
        n = norm(d.metadata["Name"])
        if n in sizes: continue
        total = 0
        for f in d.files or []:
            try: total += os.path.getsize(d.locate_file(f))
            except OSError: pass
        sizes[n] = (total, d.version)
for extra in ["cpu", "gpu", "train,cpu", "train,gpu", "ray"]:
    items = json.load(open(f"rep_{extra}.json"))["install"]
    names = {norm(i["metadata"]["name"]): i["metadata"]["version"] for i in items}
    names.pop("mmsa-tweets", None)
    known = sum(sizes[n][0] for n in names if n in sizes)
    missing = [n for n in names if n not in sizes]
    ort = sorted(n for n in names if "onnxruntime" in n)
    big = sorted(((sizes[n][0], n) for n in names if n in sizes), reverse=True)[:6]
    print(f"[{extra}]: {len(names)} dists, installed size {known/1e9:.2f} GB (measured) ; ORT {ort}; not measured: {missing}")
    print("   largest:", ", ".join(f"{n} {s/1e6:.0f} MB" for s, n in big))
