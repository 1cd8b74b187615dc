"""The shell recipes under scripts/ parse, and each keeps DDS on loopback (the network rule).

They run for hours (train_v2.sh) or on other machines (gpu_bench.sh), so a typo or a lost
export would show up late; `bash -n` and a look at the exports catch both at once."""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted((ROOT / 'scripts').glob('*.sh')) + [ROOT / '.ci' / 'run']
LOOPBACK = (r'ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST\b', r'ROS_LOCALHOST_ONLY=1\b')


def test_the_recipes_are_found():
    names = {path.name for path in SCRIPTS}
    assert {'train_v2.sh', 'finetune_example.sh', 'run'} <= names


@pytest.mark.parametrize('script', SCRIPTS, ids=lambda path: path.name)
def test_script_parses_and_exports_loopback_dds(script: Path):
    bash = shutil.which('bash')
    if bash is None:
        pytest.skip('bash is not installed')
    check = subprocess.run([bash, '-n', str(script)], capture_output=True, text=True, timeout=30)
    assert check.returncode == 0, f'{script.name}: {check.stderr}'
    exports = [line for line in script.read_text().splitlines()
               if line.lstrip().startswith('export ')]
    for pattern in LOOPBACK:
        assert any(re.search(pattern, line) for line in exports), \
            f'{script.name} does not export {pattern.split("=")[0]} (DDS must stay on loopback)'
