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
    models = json.loads(registry.TABLE_FILE.read_text())["models"]
    names = [m["architecture"] for m in models if not m.get("retired")]
    assert names and len(set(names)) == len(names)
    for m in models:  # retired weights (after the current ones) are installed, under their own names
        assert m["architecture"] in names and (registry.WEIGHTS_DIR / m["weights"]).exists()
    assert len({m["weights"] for m in models}) == len(models)
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


def _fake_weights(path, marker: int):
    import torch

    meta = {"architecture": "bmshj2018-hyperprior", "config": {"in_channels": 1, "N": 8, "M": 8, "n_qualities": 2},
            "lambdas": [0.001, 0.01], "dev_estimate": [{"bpp": 0.1, "psnr": 20.0}, {"bpp": 0.5, "psnr": 25.0}]}
    torch.save({"meta": meta, "state_dict": {"marker": torch.tensor(marker)}}, path)
    return path


def test_current_weights_that_changed_on_disk_are_not_overwritten_and_missing_ones_are_reported(tmp_path):
    table = tmp_path / "w" / "models.json"
    table.parent.mkdir()
    registry.register_weights(_fake_weights(tmp_path / "a.pt", 1), table, name="bmshj2018-hyperprior.pt")
    installed = table.parent / "bmshj2018-hyperprior.pt"
    _fake_weights(installed, 7)  # replaced by hand: the table's hash no longer matches
    before = installed.read_bytes(), table.read_text()
    with pytest.raises(InputError, match="not the file the model table names"):
        registry.register_weights(_fake_weights(tmp_path / "b.pt", 2), table, name="bmshj2018-hyperprior.pt")
    assert (installed.read_bytes(), table.read_text()) == before
    installed.unlink()
    with pytest.warns(UserWarning, match="missing: its entry in the model table is dropped"):
        new = registry.register_weights(tmp_path / "b.pt", table, name="bmshj2018-hyperprior.pt")
    assert [m["sha256"] for m in json.loads(table.read_text())["models"]] == [new["sha256"]]


def test_replaced_weights_are_retired_and_still_found_by_their_hash(tmp_path, monkeypatch):
    """New weights of an architecture replace its entry; the old ones stay installed under a name of their own,
    retired: nothing encodes with them, but the containers made with them find them."""
    table = tmp_path / "w" / "models.json"
    table.parent.mkdir()
    monkeypatch.setattr(registry, "TABLE_FILE", table)
    old = registry.register_weights(_fake_weights(tmp_path / "a.pt", 1), table, name="bmshj2018-hyperprior.pt")
    (table.parent / "bmshj2018-hyperprior.decoder.npz").write_bytes(b"old decoder")
    new = registry.register_weights(_fake_weights(tmp_path / "b.pt", 2), table, name="bmshj2018-hyperprior.pt")
    retired = f"bmshj2018-hyperprior-{old['sha256'][:12]}.pt"
    assert sorted(p.name for p in table.parent.iterdir()) == sorted([
        "models.json", "bmshj2018-hyperprior.pt", "bmshj2018-hyperprior.decoder.npz", retired,
        f"bmshj2018-hyperprior-{old['sha256'][:12]}.decoder.npz"])
    assert registry.file_sha256(table.parent / retired) == old["sha256"]
    assert (table.parent / retired.replace(".pt", ".decoder.npz")).read_bytes() == b"old decoder"
    assert registry.lookup("bmshj2018-hyperprior", 2).sha256 == new["sha256"]
    assert {e.sha256 for e in registry.model_table()} == {new["sha256"]}
    assert {e.sha256 for e in registry.model_table(retired=True)} == {old["sha256"], new["sha256"]}
    found = registry.find_by_hash("bmshj2018-hyperprior", old["sha256"], 2)
    assert found.weights == retired and found.quality == 2 and found.path.exists()
    assert registry.find_by_hash("bmshj2018-hyperprior", old["sha256"], 3) is None
    registry.register_weights(tmp_path / "b.pt", table, name="bmshj2018-hyperprior.pt")  # the same again
    assert len(json.loads(table.read_text())["models"]) == 2
    registry.register_weights(tmp_path / "a.pt", table, name="bmshj2018-hyperprior.pt")  # back to the old
    rows = json.loads(table.read_text())["models"]
    assert [(m["sha256"], bool(m.get("retired"))) for m in rows] == [(old["sha256"], False), (new["sha256"], True)]
    # the old weights' retired copy went with its entry: every file is a table entry's (or its decoder)
    named = {m["weights"] for m in rows} | {m["weights"].replace(".pt", ".decoder.npz") for m in rows}
    assert {p.name for p in table.parent.iterdir()} - {"models.json"} <= named
    assert not (table.parent / retired).exists()
