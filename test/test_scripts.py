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


def test_train_v2_runs_its_steps_in_order_with_the_right_models(tmp_path):
    """The recipe's command list, with a stand-in python that only logs its arguments: the rounds
    chain (each round fine-tunes the one before), and the published model is the average of round
    6 and the targeted fine-tunes."""
    bash = shutil.which('bash')
    if bash is None:
        pytest.skip('bash is not installed')
    log = tmp_path / 'calls'
    fake = tmp_path / 'python'
    fake.write_text(f'#!{bash}\nshift 2\necho "$*" >> {log}\n')
    fake.chmod(0o755)
    env = {'PATH': '/usr/bin:/bin', 'PYTHON': str(fake), 'RUNS': 'R', 'DATA': 'D',
           'PUBLISH': '0', 'VALIDATE': '0'}
    done = subprocess.run([bash, str(ROOT / 'scripts' / 'train_v2.sh')], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    calls = log.read_text().splitlines()
    verbs = [call.split()[0] for call in calls]
    assert verbs == ['record-sim'] * 2 + ['train'] + ['record-sim', 'train'] * 6 + \
        ['record-sim'] + ['train'] * 3 + ['average']
    rounds = [call for call in calls if call.startswith('train --out R/dagger')]
    inits = [re.search(r'--init (\S+)', call).group(1) for call in rounds]
    assert inits == ['R/base'] + [f'R/dagger{n}' for n in range(1, 6)]
    targeted = calls[verbs.index('record-sim', 15)]
    assert '--driver R/dagger6' in targeted and '--tiers detour,search' in targeted
    targets = [call for call in calls if call.startswith('train --out R/target')]
    seeds = [re.findall(r'--seed (\d+)', call)[-1] for call in targets]
    assert seeds == ['0', '1', '2']
    assert calls[-1] == 'average --models R/dagger6 R/target0 R/target1 R/target2 --out R/soup'
