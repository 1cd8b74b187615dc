"""The shell recipes under scripts/ parse, and each keeps DDS on loopback (the network rule).

They run for hours (train_v2.sh, train_fast.sh) or on other machines (gpu_bench.sh), so a typo or a lost
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
    assert {'train_v2.sh', 'train_fast.sh', 'finetune_example.sh', 'run'} <= names


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


def _run_recipe(tmp_path, name: str) -> list[str]:
    """The recipe's command list, run with a stand-in python that only logs its arguments."""
    bash = shutil.which('bash')
    if bash is None:
        pytest.skip('bash is not installed')
    log = tmp_path / 'calls'
    fake = tmp_path / 'python'
    fake.write_text(f'#!{bash}\nshift 2\necho "$*" >> {log}\n')
    fake.chmod(0o755)
    env = {'PATH': '/usr/bin:/bin', 'PYTHON': str(fake), 'RUNS': 'R', 'DATA': 'D',
           'PUBLISH': '0', 'VALIDATE': '0'}
    done = subprocess.run([bash, str(ROOT / 'scripts' / name)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return log.read_text().splitlines()


def test_train_v2_runs_its_steps_in_order_with_the_right_models(tmp_path):
    """The recipe's command list, with a stand-in python that only logs its arguments: every
    round fine-tunes the one before, the targeted round rehearses an all-tier recording, round 9
    gets memory slots on the hidden-target scenes, that fine-tune interpolated with round 9
    (WiSE-FT, the slot config first) drives the rescue recording, and the published model is
    trained from scratch on step 6's recordings plus that one."""
    calls = _run_recipe(tmp_path, 'train_v2.sh')
    verbs = [call.split()[0] for call in calls]
    assert verbs == ['record-sim'] * 2 + ['train'] + ['record-sim', 'train'] * 6 + \
        ['record-sim'] * 2 + ['train'] + ['record-sim', 'train'] * 2 + \
        ['record-sim'] * 2 + ['train', 'average', 'record-sim', 'train']
    trains = [call for call in calls if call.startswith('train ')]
    outs = [re.search(r'--out (\S+)', call).group(1) for call in trains]
    inits = [re.search(r'--init (\S+)', call).group(1) for call in trains[1:-1]]
    assert inits == outs[:-2], 'each round fine-tunes the one before'
    assert outs[-5:] == ['R/target', 'R/dagger8', 'R/dagger9', 'R/memory', 'R/scratch']
    assert '--init' not in trains[-1] and '--replay-fraction' not in trains[-1], 'from scratch, all data'
    drivers = [re.search(r'--driver (\S+)', call).group(1) for call in calls
               if '--driver' in call]
    assert drivers == ['R/base'] + [f'R/dagger{n}' for n in range(1, 7)] + \
        ['R/dagger6', 'R/target', 'R/dagger8', 'R/dagger9', 'R/wise30']
    targeted = [call for call in calls if '--tiers' in call]
    assert len(targeted) == 3 and '--tiers detour,search' in targeted[0]
    assert '--tiers search --hidden-targets' in targeted[1] and '--seed 20' in targeted[1]
    assert '--tiers detour,search --rescue' in targeted[2] and '--seed 21' in targeted[2]
    data = re.search(r'--data (.*?) --', trains[-3]).group(1).split()
    assert data == ['D/v2train', 'D/v2dagger7t', 'D/v2dagger7', 'D/v2dagger8', 'D/v2dagger9']
    data = re.search(r'--data (.*?) --', trains[-2]).group(1).split()
    assert data == ['D/v2train', 'D/v2dagger7t', 'D/v2dagger7', 'D/v2dagger8', 'D/v2dagger9',
                    'D/v2dagger10', 'D/v2hidden20']   # the newest (replayed in full) last
    assert '--set window=14 --set memory_slots=6 --set memory_stride=12' in trains[-2]
    assert 'average --models R/memory R/dagger9 --weights 0.3 0.7 --out R/wise30' in calls
    data = re.search(r'--data (.*?) --', trains[-1]).group(1).split()
    assert data == ['D/v2train', 'D/v2dagger7t', 'D/v2dagger7', 'D/v2dagger8', 'D/v2dagger9',
                    'D/v2dagger10', 'D/v2hidden20', 'D/v2rescue21']
    assert '--set window=14 --set memory_slots=6 --set memory_stride=6' in trains[-1]
    seeds = [re.search(r'--seed (\d+)', call).group(1) for call in calls if '--driver' in call]
    assert seeds == ['3', '4', '8', '9', '10', '11', '13', '14', '15', '16', '17', '21'], \
        'one seed per recording'


def test_train_fast_drives_two_rounds_then_trains_once_from_scratch_on_all_of_it(tmp_path):
    """The 120-minute recipe: expert data, a base, round A driven by the base, a fine-tune of the
    base on it, round B driven by that fine-tune with the expert taking near misses, then one
    policy from scratch (memory slots) on the three recordings; one seed per recording."""
    calls = _run_recipe(tmp_path, 'train_fast.sh')
    assert [call.split()[0] for call in calls] == ['record-sim'] * 2 + ['train'] + \
        ['record-sim', 'train'] * 2
    trains = [call for call in calls if call.startswith('train ')]
    assert [re.search(r'--out (\S+)', call).group(1) for call in trains] == \
        ['R/base', 'R/roundA', 'R/fast']
    assert '--init R/base' in trains[1] and '--init' not in trains[0] + trains[2]
    drivers = [re.search(r'--driver (\S+) .*--seed (\d+)', call).groups() for call in calls
               if '--driver' in call]
    assert drivers == [('R/base', '3'), ('R/roundA', '4')]
    assert '--rescue' in calls[5] and '--episodes 1500' in calls[5] and '--episodes 1800' in calls[3]
    data = re.search(r'--data (.*?) --', trains[-1]).group(1).split()
    assert data == ['D/expert', 'D/roundA', 'D/roundB']
    assert '--set window=14 --set memory_slots=6 --set memory_stride=6' in trains[-1]
    seeds = [re.search(r'--seed (\d+)', call).group(1) for call in calls if 'record-sim' in call]
    assert seeds == ['0', '1', '3', '4'], 'one seed per recording'
