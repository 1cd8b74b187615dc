"""load_engine_or_explain: every failure to load is one ModelLoadError whose message names the
model (vla_node's one fatal start-up line). No torch, no ONNX graph needed."""
import pytest

from vla_nav.core.engine import ModelLoadError
from vla_nav.runtime import load_engine_or_explain


def test_any_error_names_the_model_dir_and_backend(tmp_path):
    with pytest.raises(ModelLoadError) as caught:
        load_engine_or_explain(tmp_path, 'bogus')
    assert str(caught.value).startswith(f"{tmp_path} (backend 'bogus'): ValueError: unknown backend 'bogus'")


def test_a_model_load_error_keeps_its_own_wording(tmp_path):
    with pytest.raises(ModelLoadError) as caught:
        load_engine_or_explain(tmp_path, 'no_such_module_here:factory')
    assert str(caught.value).startswith('no_such_module_here:factory: cannot import engine factory')
