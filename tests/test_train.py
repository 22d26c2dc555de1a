"""Training: a short run writes weights the codec can use, resumes from its checkpoint, and grows a latent."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from sar_codec.models.architectures import ARCHITECTURE_CLASSES, build_model, config_keys, model_from_state
from sar_codec.models.engine import TileCodec
from sar_codec.registry import load_model, lookup, model_table, register_weights
from sar_codec.train import LAMBDAS, TrainConfig, init_from_state, train
from sar_codec.training_data import Source


@pytest.mark.parametrize("arch", sorted(ARCHITECTURE_CLASSES))
def test_grown_latent_first_computes_what_the_smaller_model_did(arch: str) -> None:
    torch.manual_seed(0)
    small = build_model(arch, N=8, M=8).eval()
    with torch.no_grad():  # make the small model's every parameter count
        for p in small.parameters():
            p.add_(0.05 * torch.randn_like(p))
    big = build_model(arch, N=8, M=16).eval()
    grown = init_from_state(big, small.state_dict())
    last = len(big.g_a) - 1  # the analysis's last convolution makes the latent
    assert f"g_a.{last}.weight" in grown and "g_s.0.weight" in grown
    x = torch.rand(3, 1, 64, 64)
    q = torch.tensor([0, 3, 6])
    with torch.no_grad():
        a, b = small(x, q), big(x, q)
    assert torch.allclose(a["x_hat"], b["x_hat"], atol=1e-5)
    assert big.g_a[last].weight.shape[0] == 16
    assert torch.equal(big.g_a[last].weight[:8], small.g_a[last].weight)  # the old latent channels kept theirs


@pytest.mark.parametrize("arch", sorted(a for a in ARCHITECTURE_CLASSES if "L" in config_keys(a)))
def test_a_wider_light_synthesis_first_computes_what_the_narrower_did(arch: str) -> None:
    """Growing the latent (M) and the light synthesis's channels (L) together: the layers that read new channels
    start with zero weights on them, so the grown model first decodes what the smaller one did."""
    torch.manual_seed(0)
    small = build_model(arch, N=8, M=8, L=6).eval()
    with torch.no_grad():
        for p in small.parameters():
            p.add_(0.05 * torch.randn_like(p))
    big = build_model(arch, N=8, M=16, L=10).eval()
    grown = init_from_state(big, small.state_dict())
    assert {"g_s.0.weight", "g_s.1.gamma", "g_s.2.weight", "g_s.4.weight"} <= set(grown)
    assert big.g_s[4].weight.shape[0] == 10
    x = torch.rand(3, 1, 64, 64)
    q = torch.tensor([0, 3, 6])
    with torch.no_grad():
        a, b = small(x, q), big(x, q)
    assert torch.allclose(a["x_hat"], b["x_hat"], atol=1e-5)


@pytest.fixture(scope="module")
def db_folder(tmp_path_factory: pytest.TempPathFactory, make_raster) -> Path:
    folder = tmp_path_factory.mktemp("train_db")
    rng = np.random.default_rng(3)
    for i in range(4):  # file 0 is the dev split
        base = np.linspace(-22, -6, 128)[None, :] + rng.normal(0, 2.5, (128, 128))
        make_raster(folder / f"chip{i}.tif", base[None].astype("float32"))
    return folder


def test_short_run_writes_codec_weights_and_resumes(db_folder: Path, tmp_path: Path) -> None:
    out, run = tmp_path / "w" / "mbt2018-mean.pt", tmp_path / "run"
    cfg = TrainConfig("mbt2018-mean", [Source(db_folder, "db")], out, run, minutes=0.03, batch_size=4, N=8, M=8,
                      device="cpu")
    logs: list[str] = []
    first = train(cfg, log=logs.append)
    assert first["steps"] > 0 and out.exists() and (run / "checkpoint.pt").exists()
    assert len(first["dev_estimate"]) == len(LAMBDAS) and all(np.isfinite(r["bpp"]) for r in first["dev_estimate"])

    cfg.minutes = first["minutes"] + 0.03  # past the first run's end however slow the machine
    second = train(cfg, log=logs.append)
    assert any(m.startswith("resumed from") for m in logs)
    assert second["steps"] > first["steps"]

    table = tmp_path / "w" / "models.json"
    table.write_text(json.dumps({"models": []}))
    entry = register_weights(out, table)
    assert entry["config"] == {"in_channels": 1, "N": 8, "M": 8, "n_qualities": len(LAMBDAS)}
    model = model_from_state("mbt2018-mean", entry["config"], torch.load(out, weights_only=True)["state_dict"])
    codec = TileCodec(model.eval())
    tiles = np.clip(np.random.default_rng(0).normal(0.5, 0.1, (2, 1, 64, 64)), 0, 1)
    stream = codec.compress(tiles, 3)
    decoded = codec.decompress(stream, 2, 3, 64)
    assert decoded.shape == (2, 1, 64, 64)
    assert np.array_equal(decoded, codec.decompress(stream, 2, 3, 64))


def test_shipped_weights_load_and_match_their_table_config() -> None:
    table = model_table()
    for entry in {e.architecture: e for e in table}.values():
        blob = torch.load(entry.path, map_location="cpu", weights_only=True)
        assert blob["meta"]["config"] == entry.config  # the table describes what the file holds
        analysis = [v for k, v in blob["state_dict"].items() if k.startswith("g_a.") and k.endswith(".weight")]
        assert analysis[0].shape[0] == entry.config["N"] and analysis[-1].shape[0] == entry.config["M"]
        assert len(blob["meta"]["lambdas"]) == sum(e.architecture == entry.architecture for e in table)
        assert load_model(lookup(entry.architecture, 1)).M == entry.config["M"]  # its SHA-256 checked too


def test_two_channel_training_uses_band_pairs_and_is_not_installable(tmp_path: Path, make_raster) -> None:
    from sar_codec.errors import InputError

    rng = np.random.default_rng(5)
    for i in range(4):
        vv = np.linspace(-14, -4, 96)[None, :] + rng.normal(0, 2.5, (96, 96))
        make_raster(tmp_path / f"pair{i}.tif", np.stack([vv, vv - 7 + rng.normal(0, 2.5, (96, 96))]).astype("f4"))
    out = tmp_path / "two.pt"
    cfg = TrainConfig("bmshj2018-hyperprior", [Source(tmp_path, "db")], out, tmp_path / "run", minutes=0.02,
                      batch_size=2, N=8, M=8, in_channels=2, device="cpu")
    summary = train(cfg, log=lambda m: None)
    assert summary["config"]["in_channels"] == 2 and summary["steps"] > 0
    table = tmp_path / "models.json"
    table.write_text(json.dumps({"models": []}))
    with pytest.raises(InputError, match="2-channel"):
        register_weights(out, table)
    assert json.loads(table.read_text()) == {"models": []}


def test_two_channel_training_needs_dual_band_files(db_folder: Path, tmp_path: Path) -> None:
    from sar_codec.errors import InputError

    cfg = TrainConfig("mbt2018-mean", [Source(db_folder, "db")], tmp_path / "x.pt", tmp_path / "run",
                      minutes=0.01, N=8, M=8, in_channels=2, device="cpu")
    with pytest.raises(InputError, match="2 bands"):
        train(cfg, log=lambda m: None)


def test_another_architectures_state_loads_only_matching_shapes() -> None:
    torch.manual_seed(0)
    mean = build_model("mbt2018-mean", N=8, M=8)
    hyper = build_model("bmshj2018-hyperprior", N=8, M=8)
    before = {k: v.clone() for k, v in hyper.state_dict().items()}
    assert init_from_state(hyper, mean.state_dict(), grow=False) == []
    after = hyper.state_dict()
    assert torch.equal(after["g_a.0.weight"], mean.state_dict()["g_a.0.weight"])  # shared transform loaded
    assert torch.equal(after["h_s.4.weight"], before["h_s.4.weight"])  # different hyper-synthesis kept its own


def _perturbed(arch: str, **config):
    model = build_model(arch, N=8, M=8, **config).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model


@pytest.mark.parametrize("arch", ["bmshj2018-factorized", "bmshj2018-hyperprior"])
def test_added_qualities_keep_the_trained_ones(arch: str) -> None:
    torch.manual_seed(1)
    old, new = [0.001, 0.01, 0.1], [0.0003, 0.001, 0.01, 0.1]
    small = _perturbed(arch, n_qualities=3)
    big = build_model(arch, N=8, M=8, n_qualities=4).eval()
    init_from_state(big, small.state_dict(), lambdas=(old, new))
    x = torch.rand(3, 1, 64, 64)
    with torch.no_grad():
        a, b = small(x, torch.tensor([0, 1, 2])), big(x, torch.tensor([1, 2, 3]))
        assert torch.allclose(a["x_hat"], b["x_hat"], atol=1e-6)
        assert torch.allclose(a["likelihoods"]["y"], b["likelihoods"]["y"], atol=1e-6)
        # the new lowest quality is extrapolated in log lambda: a smaller gain than quality 1's
        assert (big.log_gain[0] < big.log_gain[1]).all()


def test_factorized_densities_start_from_a_shared_one() -> None:
    """A factorized state with one density for all qualities (the old layout) seeds every quality's own."""
    torch.manual_seed(2)
    model = _perturbed("bmshj2018-factorized", n_qualities=3)
    shared = {k.replace("entropy_bottlenecks.1.", "entropy_bottleneck."): v for k, v in model.state_dict().items()
              if not k.startswith(("entropy_bottlenecks.0.", "entropy_bottlenecks.2."))}
    fresh = build_model("bmshj2018-factorized", N=8, M=8, n_qualities=3).eval()
    init_from_state(fresh, shared, lambdas=([0.001, 0.01, 0.1], [0.001, 0.01, 0.1]))
    for eb in fresh.entropy_bottlenecks:
        assert torch.equal(eb.quantiles, model.entropy_bottlenecks[1].quantiles)
    x, q = torch.rand(2, 1, 64, 64), torch.tensor([1, 1])
    with torch.no_grad():
        assert torch.allclose(fresh(x, q)["likelihoods"]["y"], model(x, q)["likelihoods"]["y"], atol=1e-6)


def test_per_quality_parameters_get_their_own_learning_rate() -> None:
    from sar_codec.train import _optimizers

    model = build_model("bmshj2018-factorized", N=8, M=8, n_qualities=3)
    opt, aux = _optimizers(model, 1e-4, 1e-3)
    slow, fast = opt.param_groups
    assert slow["base_lr"] == 1e-4 and fast["base_lr"] == 1e-3
    assert any(p is model.log_gain for p in fast["params"]) and any(p is model.g_a[0].weight for p in slow["params"])
    densities = {id(p) for eb in model.entropy_bottlenecks for n, p in eb.named_parameters() if n != "quantiles"}
    assert densities <= {id(p) for p in fast["params"]}
    assert {id(p) for p in aux.param_groups[0]["params"]} == {id(eb.quantiles) for eb in model.entropy_bottlenecks}


def test_train_only_changes_the_decoder_and_keeps_the_stream(db_folder: Path, tmp_path: Path) -> None:
    """A light decoder trained behind a frozen encoder: every parameter but the synthesis keeps its value, so the
    new model codes the very stream of the model it came from."""
    base_out, light_out = tmp_path / "mbt2018-mean.pt", tmp_path / "mbt2018-mean-light.pt"
    common = dict(minutes=0.03, batch_size=4, N=8, M=8, device="cpu")
    train(TrainConfig("mbt2018-mean", [Source(db_folder, "db")], base_out, tmp_path / "r1", **common), log=str)
    cfg = TrainConfig("mbt2018-mean-light", [Source(db_folder, "db")], light_out, tmp_path / "r2",
                      init_from=base_out, train_only=("g_s.",), lr=1e-2, **common)
    summary = train(cfg, log=str)
    assert summary["steps"] > 0 and summary["train_only"] == ["g_s."]
    base = torch.load(base_out, weights_only=True)["state_dict"]
    light = torch.load(light_out, weights_only=True)["state_dict"]
    shared = [k for k in light if not k.startswith("g_s.")]
    assert shared and all(k in base and torch.equal(light[k], base[k]) for k in shared)
    # the decoder did train: it differs from its initial state (train() seeds torch with config.seed, 0)
    torch.manual_seed(0)
    fresh = build_model("mbt2018-mean-light", in_channels=1, N=8, M=8, n_qualities=len(LAMBDAS)).state_dict()
    decoder = [k for k in light if k.startswith("g_s.") and light[k].is_floating_point()]
    assert any(not torch.equal(light[k], fresh[k].half()) for k in decoder)


@pytest.mark.parametrize(("light_name", "base_name", "own"), [
    ("mbt2018-mean-light", "mbt2018-mean", "g_s."),
    ("bmshj2018-hyperprior-light", "bmshj2018-hyperprior", "g_s.")])
def test_shipped_light_models_share_everything_but_one_transform_with_their_base(light_name, base_name, own) -> None:
    """A light decoder writes its base model's streams, a light encoder's streams decode with its base model's
    decoder: every tensor outside the transform it trained is the same."""
    light, base = (lookup(a, 1) if any(e.architecture == a for e in model_table()) else None
                   for a in (light_name, base_name))
    if light is None or base is None:
        pytest.skip(f"{light_name} or {base_name} is not installed")
    a = torch.load(base.path, weights_only=True)["state_dict"]
    b = torch.load(light.path, weights_only=True)["state_dict"]
    shared = [k for k in b if not k.startswith(own)]
    assert len(shared) > 30 and all(torch.equal(a[k], b[k]) for k in shared)
    assert b["g_s.4.weight"].shape == (48, 1, 8, 8)  # the wide last layer: 48 channels to 1, 8x8, stride 4


def test_the_shipped_default_has_light_transforms_and_codes_the_tiles_it_was_trained_on() -> None:
    """bmshj2018-hyperprior-fast: the light analysis and synthesis; its weights (stages 8 to 11) trained on 256-pixel
    crops, so its table entry codes scenes in 256-pixel tiles; stage 10 widened its latent to 256 channels and its
    synthesis to 64."""
    entry = lookup("bmshj2018-hyperprior-fast", 1)
    blob = torch.load(entry.path, weights_only=True)
    assert (entry.config["M"], entry.config["L"]) == (256, 64)
    assert blob["state_dict"]["g_a.0.weight"].shape == (64, 1, 8, 8)  # one 8x8 stride-4 layer from the pixels
    assert blob["state_dict"]["g_s.4.weight"].shape == (64, 1, 8, 8)  # and its mirror to them
    assert blob["state_dict"]["g_s.0.weight"].shape == (256, 64, 5, 5)  # the latent's 256 channels in
    assert entry.tile_size == blob["meta"]["patch_size"] == 256


def test_an_encoder_trains_behind_a_frozen_decoder() -> None:
    """Training only the analysis keeps the entropy models' noisy rate (the gradient's path) and gives the
    synthesis the rounded latent, straight through: the distortion reaches the analysis, nothing else moves."""
    from sar_codec.train import _ENTROPY_MODULES, _frozen_modules, _train_mode

    torch.manual_seed(0)
    model = build_model("bmshj2018-hyperprior-fast", in_channels=1, N=8, M=8, n_qualities=2)
    model.update(force=True)
    frozen = _frozen_modules(model, ("g_a.",))
    _train_mode(model, frozen)
    assert model.round_for_synthesis and model.g_s in frozen and model.h_s in frozen
    assert all(not m.training for m in frozen)
    assert all(m.training for name, m in model.named_children() if (name + ".").startswith(_ENTROPY_MODULES))
    x = torch.rand(2, 1, 64, 64)
    q = torch.tensor([0, 1])
    out = model(x, q)
    (out["x_hat"] - x).pow(2).mean().backward()  # the distortion alone
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for n, p in model.named_parameters()
               if n.startswith("g_a.") and n.endswith("weight"))
    assert all(p.grad is None for n, p in model.named_parameters() if not n.startswith("g_a."))
    with torch.no_grad():  # what the synthesis saw: the rounded, gained latent
        g, ig = model.gains(q)
        assert torch.allclose(out["x_hat"], model.g_s(torch.round(model.g_a(x) * g) * ig), atol=1e-5)
