"""Bad model files stop vla_node at start-up, and nothing in the product unpickles a file.

A real checkpoint (random weights, saved with vla_nav.model.checkpoint) is copied to tmp and broken
in one way per case: missing, truncated, of the wrong format version, of the wrong shape, and for the
ONNX backend a truncated graph in its export cache. vla_node runs on each (backend onnx and torch,
all cases started at once): it must exit non-zero with exactly one FATAL line that names the broken
file, no traceback, and never report itself ready. The intact copy does start (the control).
"""
from __future__ import annotations

import ast
import json
import shutil
import signal
import time
from pathlib import Path

import pytest

pytest.importorskip('rclpy')
pytest.importorskip('torch')

from rosutil import REPO_ROOT, domain_id_for, start_node  # noqa: E402

from vla_nav.model.checkpoint import save_random_checkpoint  # noqa: E402
from vla_nav.model.config import PolicyConfig  # noqa: E402
from vla_nav.model.export import EXPORT_INFO_FILE, export_checksum, graph_file  # noqa: E402

DOMAIN = domain_id_for(__file__)
START_TIMEOUT_S = 150.0        # all cases start together on 2 cores; the ONNX ones export first
READY = 'ready; waiting for'   # vla_node's start-up line


def edit_config(directory: Path, edit) -> None:
    path = directory / 'config.json'
    document = json.loads(path.read_text())
    edit(document)
    path.write_text(json.dumps(document))


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 3])


def wrong_version(directory: Path) -> Path:
    edit_config(directory, lambda document: document.update(format_version=99))
    return directory / 'config.json'


def wrong_shape(directory: Path) -> Path:
    def grow_head(document):
        document['policy']['head_hidden'] = 2 * document['policy']['head_hidden']
        document['weights'].pop('sha256', None)       # a consistent-looking but mismatched config
    edit_config(directory, grow_head)
    return directory / 'model.safetensors'


def missing_weights(directory: Path) -> Path:
    (directory / 'model.safetensors').unlink()
    return directory / 'model.safetensors'


def missing_config(directory: Path) -> Path:
    (directory / 'config.json').unlink()
    return directory / 'config.json'


def truncated_weights(directory: Path) -> Path:
    truncate(directory / 'model.safetensors')
    return directory / 'model.safetensors'


def truncated_graph(directory: Path) -> Path:
    """An export cache that looks fresh (right checksum) but whose first graph is cut short."""
    onnx_dir = directory / 'onnx'
    onnx_dir.mkdir()
    graphs = ['frame_encoder', 'policy_head', 'text_encoder']
    for name in graphs:
        (onnx_dir / graph_file(name, 'fp32')).write_bytes(b'\x08\x07\x12\x04torch' + b'\x00' * 64)
    (onnx_dir / 'tokenizer.json').write_text('{}')
    (onnx_dir / EXPORT_INFO_FILE).write_text(json.dumps({
        'checksum': export_checksum(directory), 'export_version': 1, 'precisions': ['fp32'],
        'graphs': graphs}))
    return onnx_dir / graph_file('frame_encoder', 'fp32')


def missing_directory(directory: Path) -> Path:
    shutil.rmtree(directory)
    return directory


CASES = [  # (backend, how the copy is broken)
    ('torch', missing_directory), ('torch', missing_weights), ('torch', truncated_weights),
    ('torch', wrong_version), ('torch', wrong_shape),
    ('onnx', missing_config), ('onnx', truncated_weights), ('onnx', wrong_version),
    ('onnx', wrong_shape), ('onnx', truncated_graph),
]


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory) -> Path:
    return save_random_checkpoint(PolicyConfig(), tmp_path_factory.mktemp('ckpt') / 'model', seed=3)


@pytest.fixture(scope='module')
def started(checkpoint, tmp_path_factory):
    """Every case (and the intact control) as a vla_node process, all started at once."""
    root = tmp_path_factory.mktemp('broken')
    runs = {}
    for index, (backend, breaker) in enumerate(CASES):
        copy = shutil.copytree(checkpoint, root / f'{index}_{backend}_{breaker.__name__}')
        broken_file = breaker(copy)
        runs[(backend, breaker.__name__)] = (broken_file, start_node(
            'vla_node', DOMAIN, {'model': str(copy), 'backend': backend,
                                 'chunk_topic': f'/broken_{index}/chunks'}))
    control = start_node('vla_node', DOMAIN, {'model': str(shutil.copytree(checkpoint, root / 'intact')),
                                              'backend': 'torch', 'chunk_topic': '/intact/chunks'})
    deadline = time.monotonic() + START_TIMEOUT_S
    for _, process in runs.values():
        try:
            process.wait(max(1.0, deadline - time.monotonic()))
        except Exception:
            process.stop()
    while control.alive() and READY not in control.output and time.monotonic() < deadline:
        time.sleep(0.1)
    yield runs, control
    control.stop()
    for _, process in runs.values():
        process.stop()


@pytest.mark.parametrize('backend, breaker', [(backend, breaker.__name__) for backend, breaker in CASES])
def test_broken_model_is_one_fatal_error_naming_the_file(started, backend, breaker):
    runs, _ = started
    broken_file, process = runs[(backend, breaker)]
    output = process.output
    assert process.returncode not in (None, 0), output
    fatal = [line for line in output.splitlines() if 'FATAL' in line]
    assert len(fatal) == 1, output
    assert str(broken_file) in fatal[0], fatal[0]
    assert 'Traceback' not in output and READY not in output, output


def test_the_intact_copy_starts(started):
    _, control = started
    assert READY in control.output, control.output
    control.signal(signal.SIGINT)
    assert control.wait(10) == 0


# --- no unpickling in the product ------------------------------------------------------------------
PICKLE_MODULES = {'pickle', 'cPickle', '_pickle', 'dill', 'cloudpickle', 'shelve', 'marshal', 'joblib'}
UNSAFE_CALLS = {'pickle.load', 'pickle.loads', 'yaml.unsafe_load', 'yaml.full_load',
                'pandas.read_pickle', 'pd.read_pickle', 'joblib.load'}


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f'{_dotted(node.value)}.{node.attr}'
    return ''


def _keyword(call: ast.Call, name: str):
    for keyword in call.keywords:
        if keyword.arg == name:
            return keyword.value
    return None


def _is_true(node) -> bool:
    return isinstance(node, ast.Constant) and node.value is True


def unpickling_sites(source: str, filename: str = '<source>') -> list[str]:
    """Where `source` may unpickle: pickle-family imports, torch.load without weights_only=True,
    np.load with allow_pickle=True, yaml.load without a SafeLoader, and the explicit unsafe calls."""
    problems = []
    for node in ast.walk(ast.parse(source, filename)):
        where = f'{filename}:{getattr(node, "lineno", "?")}'
        if isinstance(node, ast.Import):
            problems += [f'{where} import {a.name}' for a in node.names
                         if a.name.split('.')[0] in PICKLE_MODULES]
        elif isinstance(node, ast.ImportFrom) and (node.module or '').split('.')[0] in PICKLE_MODULES:
            problems.append(f'{where} from {node.module} import ...')
        elif isinstance(node, ast.Call):
            name = _dotted(node.func)
            if name in UNSAFE_CALLS:
                problems.append(f'{where} {name}()')
            elif name == 'torch.load' and not _is_true(_keyword(node, 'weights_only')):
                problems.append(f'{where} torch.load() without weights_only=True')
            elif name in ('np.load', 'numpy.load') and _is_true(_keyword(node, 'allow_pickle')):
                problems.append(f'{where} {name}(allow_pickle=True)')
            elif name == 'yaml.load':
                loader = _keyword(node, 'Loader') or (node.args[1] if len(node.args) > 1 else None)
                if loader is None or 'Safe' not in _dotted(loader):
                    problems.append(f'{where} yaml.load() without SafeLoader')
    return problems


def test_the_checker_finds_what_it_looks_for():
    bad = '\n'.join(['import pickle', 'from dill import loads', 'import torch', 'torch.load(p)',
                     "torch.load(p, map_location='cpu', weights_only=False)", 'np.load(p, allow_pickle=True)',
                     'yaml.load(text)', 'yaml.load(text, Loader=yaml.Loader)', 'yaml.unsafe_load(text)'])
    assert len(unpickling_sites(bad)) == 8
    good = '\n'.join(['torch.load(p, weights_only=True)', 'np.load(p)', 'np.load(p, allow_pickle=False)',
                      'yaml.safe_load(text)', 'yaml.load(text, Loader=yaml.SafeLoader)',
                      'yaml.load(text, yaml.CSafeLoader)', 'json.load(stream)'])
    assert unpickling_sites(good) == []


def test_nothing_in_the_product_unpickles_untrusted_files():
    sources = sorted((REPO_ROOT / 'vla_nav').rglob('*.py'))
    assert len(sources) > 20
    problems = [problem for path in sources
                for problem in unpickling_sites(path.read_text(encoding='utf-8'),
                                                str(path.relative_to(REPO_ROOT)))]
    assert problems == []
