"""Writing and verifying model folders (format: mmsa_cli.model_folder).

The manifest is mirrored in model.onnx's metadata_props (key `mmsa.manifest`, everything
but the checksum, which cannot be inside the file it checks), so a model file that travels
alone still says what it is, and an edited manifest.json is caught on load.
"""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict
from pathlib import Path

import onnx
from onnx.external_data_helper import uses_external_data

from ..contract.model_folder import Manifest, ModelFolder, ModelFolderError, load_model_folder, sha256_file
from ..io.outputs import current_umask

METADATA_KEY = "mmsa.manifest"


def manifest_metadata(manifest: Manifest) -> dict[str, str]:
    mirrored = {k: v for k, v in asdict(manifest).items() if k != "model_sha256"}
    return {METADATA_KEY: json.dumps(mirrored, sort_keys=True), "labels": ",".join(manifest.labels)}


def set_metadata(graph: onnx.ModelProto, values: dict[str, str]) -> None:
    kept = [p for p in graph.metadata_props if p.key not in values]
    del graph.metadata_props[:]
    graph.metadata_props.extend(kept)
    for key, value in values.items():
        graph.metadata_props.add(key=key, value=value)


# Protobuf cannot serialise a message of 2 GB or more: a bag of five BERT-base folds is 2.4 GB.
SINGLE_FILE_LIMIT = 2**31 - 2**24


def serialized_bytes(graph: onnx.ModelProto) -> int:
    """About what the graph takes as one file: its weights and nodes, each measured alone
    (protobuf refuses to measure a whole message of 2 GB or more)."""
    return sum(part.ByteSize() for part in (*graph.graph.initializer, *graph.graph.node))


def save_onnx(graph: onnx.ModelProto, path: Path) -> None:
    """One file, or past SINGLE_FILE_LIMIT the graph in `path` and its weights in `path`.data
    (ONNX external data, named relative to the graph). Saving moves the weights out of `graph`,
    which then refers to that file: saved again to `path` (the manifest, after the checks),
    only the small graph file is rewritten."""
    data = path.with_name(path.name + ".data")
    if any(uses_external_data(t) for t in graph.graph.initializer):
        if not data.is_file():
            raise ModelFolderError(f"the graph's weights are in {data.name}, which is not beside {path}")
        onnx.save_model(graph, str(path))
        return
    data.unlink(missing_ok=True)  # onnx appends to an existing data file
    if serialized_bytes(graph) < SINGLE_FILE_LIMIT:
        onnx.save_model(graph, str(path))
        return
    onnx.save_model(graph, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                    location=data.name, size_threshold=1024)
    os.chmod(data, 0o666 & ~current_umask())  # onnx creates it 0600; the folder's other files are readable


def write_manifest(folder: Path, graph: onnx.ModelProto, manifest: Manifest) -> Manifest:
    """Save model.onnx with the manifest mirrored inside, then manifest.json with its sha256."""
    set_metadata(graph, manifest_metadata(manifest))
    save_onnx(graph, folder / "model.onnx")
    manifest.model_sha256 = sha256_file(folder / "model.onnx")
    (folder / "manifest.json").write_text(manifest.to_json())
    return manifest


def verify_model_folder(path: str | Path) -> ModelFolder:
    """load_model_folder (format, labels, sha256) plus: manifest.json equals the copy inside
    model.onnx. Any mismatch is a ModelFolderError naming the field."""
    folder = load_model_folder(path)
    graph = onnx.load(str(folder.onnx_path), load_external_data=False)
    props = {p.key: p.value for p in graph.metadata_props}
    if METADATA_KEY not in props:
        raise ModelFolderError(f"'{folder.onnx_path}' has no {METADATA_KEY} metadata: not written by `mmsa export`")
    inside = json.loads(props[METADATA_KEY])
    outside = json.loads(manifest_metadata(folder.manifest)[METADATA_KEY])
    changed = sorted(k for k in inside.keys() | outside.keys() if inside.get(k) != outside.get(k))
    if changed:
        raise ModelFolderError(f"manifest.json of '{folder.path}' does not match the manifest inside model.onnx "
                               f"(fields {', '.join(changed)} differ): the manifest was edited")
    return folder


def replace_folder(tmp: Path, out: Path) -> None:
    """Move a completed folder into place; only an earlier model folder (or nothing) is replaced."""
    if out.exists():
        if not out.is_dir() or (any(out.iterdir()) and not (out / "manifest.json").exists()):
            raise ModelFolderError(f"refusing to overwrite '{out}': it exists and is not an mmsa model folder")
        shutil.rmtree(out)
    tmp.replace(out)
