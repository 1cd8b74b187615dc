"""The import layering of vla_nav (README "Development and tests"): lower layers never import
higher ones. Every import is read with `ast`, function-level (lazy) imports included.

    core                           numpy/stdlib only; imports nothing else of ours
    config                         core
    model, sim, ros                core (ros also config); model never runtime
    runtime                        core, config, model
    data                           core, config, ros, sim, runtime
    training                       core, config, model, data, sim, runtime; never tools
    tools, cli, *.__main__         anything below; never nodes
    nodes                          anything; nothing imports nodes
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE_DIR = Path(__file__).resolve().parent.parent / 'vla_nav'
ALLOWED = {
    'core': set(),
    'config': {'core'},
    'model': {'core'},
    'sim': {'core'},
    'ros': {'core', 'config'},
    'runtime': {'core', 'config', 'model'},
    'data': {'core', 'config', 'ros', 'sim', 'runtime'},
    'training': {'core', 'config', 'model', 'data', 'sim', 'runtime'},
}
ENTRY_POINTS = {'tools', 'cli', '__main__'}   # may import anything but nodes
TOP_LEVEL = set(ALLOWED) | ENTRY_POINTS | {'nodes', '__init__'}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE_DIR.parent).with_suffix('').parts
    return '.'.join(parts[:-1] if parts[-1] == '__init__' else parts)


def _imports(path: Path) -> set[str]:
    """Every vla_nav module `path` imports, at any depth of the file (lazy imports included)."""
    tree = ast.parse(path.read_text(encoding='utf-8'), filename=str(path))
    package = _module_name(path).split('.') if path.name == '__init__.py' else \
        _module_name(path).split('.')[:-1]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1]
                module = '.'.join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ''
            found.add(module)
            found.update(f'{module}.{alias.name}' for alias in node.names)
    return {name for name in found if name == 'vla_nav' or name.startswith('vla_nav.')}


def _layer(module: str) -> str:
    parts = module.split('.')
    if parts[-1] == '__main__':
        return '__main__'
    return parts[1] if len(parts) > 1 else '__init__'


def _violations(path: Path) -> list[str]:
    module = _module_name(path)
    layer = _layer(module)
    problems = []
    for target in sorted(_imports(path)):
        target_layer = _layer(target)
        if target_layer not in TOP_LEVEL or target_layer == layer or target_layer == '__init__':
            continue   # a name imported from a module (checked through the module itself)
        if target_layer == 'nodes' and layer != 'nodes':
            problems.append(f'{module} imports {target}: nothing imports nodes')
        elif layer in ALLOWED and target_layer not in ALLOWED[layer]:
            problems.append(f'{module} imports {target}: {layer} may import only '
                            f'{sorted(ALLOWED[layer]) or "nothing of ours"}')
    return problems


# Files known to break the layering, each with the change that removes it (strict xfail: when it is
# fixed the test fails until the entry is removed).
PENDING: dict[str, str] = {}
SOURCES = sorted(PACKAGE_DIR.rglob('*.py'))


def _case(path: Path):
    name = path.relative_to(PACKAGE_DIR).as_posix()
    marks = [pytest.mark.xfail(strict=True, reason=PENDING[name])] if name in PENDING else []
    return pytest.param(path, id=name, marks=marks)


@pytest.mark.parametrize('path', [_case(path) for path in SOURCES])
def test_imports_point_down(path):
    assert _violations(path) == []


def test_the_checker_sees_lazy_and_relative_imports(tmp_path):
    assert {'vla_nav.tools.replay.common', 'vla_nav.config'} <= _imports(
        PACKAGE_DIR / 'tools' / 'replay' / 'offline.py')
    lazy = _imports(PACKAGE_DIR / 'tools' / 'replay' / '__init__.py')
    assert 'vla_nav.tools.replay.live' in lazy and 'vla_nav.runtime' in lazy   # inside run()
    assert _layer('vla_nav.sim.__main__') == '__main__' and _layer('vla_nav.core.loop') == 'core'


def test_every_top_level_package_has_a_rule():
    packages = {path.name for path in PACKAGE_DIR.iterdir()
                if path.is_dir() and (path / '__init__.py').exists()}
    assert packages <= set(ALLOWED) | ENTRY_POINTS | {'nodes'}
