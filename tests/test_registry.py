"""The model table and the one declaration of the architectures that everything else derives from."""

import inspect
import json
import subprocess
import sys

import pytest

from sar_codec import registry
from sar_codec.errors import InputError, WeightsError
from sar_codec.models import ARCHITECTURE_CLASS_NAMES


def test_the_architecture_list_is_the_declaration():
    assert registry.ARCHITECTURES == tuple(ARCHITECTURE_CLASS_NAMES)
    assert registry.DEFAULT_ARCHITECTURE in registry.ARCHITECTURES


def test_every_model_class_is_declared_once():
    from sar_codec.models import architectures

    classes = architectures.ARCHITECTURE_CLASSES
    assert list(classes) == list(registry.ARCHITECTURES)
    assert {name: cls.__name__ for name, cls in classes.items()} == ARCHITECTURE_CLASS_NAMES
    defined = {cls for _, cls in inspect.getmembers(architectures, inspect.isclass)
               if issubclass(cls, architectures.GainedModel) and cls is not architectures.GainedModel}
    assert defined == set(classes.values())  # no architecture class outside the declaration
    assert len(set(classes.values())) == len(classes)


def test_the_shipped_table_names_declared_architectures_in_their_order():
    names = [m["architecture"] for m in json.loads(registry.TABLE_FILE.read_text())["models"]]
    assert names and len(set(names)) == len(names)
    assert names == [a for a in registry.ARCHITECTURES if a in names]
    assert registry.DEFAULT_ARCHITECTURE in names


def test_a_table_naming_an_unknown_architecture_is_refused(tmp_path, monkeypatch):
    table = json.loads(registry.TABLE_FILE.read_text())
    table["models"][0]["architecture"] = "cheng2020-attn"
    path = tmp_path / "models.json"
    path.write_text(json.dumps(table))
    monkeypatch.setattr(registry, "TABLE_FILE", path)
    with pytest.raises(WeightsError, match="unknown architecture, 'cheng2020-attn'"):
        registry.model_table()


def test_weights_of_an_unknown_architecture_are_not_registered(tmp_path):
    import torch

    weights = tmp_path / "cheng.pt"
    torch.save({"meta": {"architecture": "cheng2020-attn", "config": {"in_channels": 1}}, "state_dict": {}}, weights)
    table = tmp_path / "w" / "models.json"
    table.parent.mkdir()
    with pytest.raises(InputError, match="unknown architecture, 'cheng2020-attn'"):
        registry.register_weights(weights, table)
    assert list(table.parent.iterdir()) == []  # nothing copied, no table written


def test_the_registry_imports_without_torch():
    code = "import sys, sar_codec.registry as r; r.ARCHITECTURES; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
