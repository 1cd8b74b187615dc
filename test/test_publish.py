"""`python -m vla_nav publish`: the verb is registered and refuses a folder that is no checkpoint
(the evaluation it runs is tested through `fixed_block` in test_default_model.py)."""
import pytest

from vla_nav.cli import VERBS, main


def test_publish_is_a_verb_and_checks_the_model(tmp_path, capsys):
    assert VERBS['publish'][0] == 'publish'
    assert main(['publish', '--model', str(tmp_path), '--test-data', str(tmp_path)]) == 2
    assert 'no config.json' in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(['publish', '--model', str(tmp_path)])        # --test-data is required

