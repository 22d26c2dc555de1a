"""Rate-distortion training of the variable-rate SAR models, resumable, on CPU or GPU.

Loss per sample: ``lambda_q * 255**2 * MSE + bpp`` (CompressAI's convention, in the codec's [0, 1] domain), with
the quality ``q`` drawn per sample, so one run trains every quality's gain vector; CompressAI's auxiliary loss
trains the entropy bottleneck's quantiles. Training is bounded by wall-clock minutes, checkpoints to
``run_dir/checkpoint.pt`` every few minutes and resumes from it; it ends by rounding parameters to float16
(the storage precision), computing the CDF tables (``update()``) and writing the weights file.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from .device import pick_device
from .errors import InputError
from .files import atomic_path
from .models.architectures import CDF_BUFFERS, DERIVED_BUFFERS, build_model, config_keys
from .tiling import check_tile_size
from .training_data import PatchSampler, Source, dev_patches, normalised_images

_ENTROPY_MODULES = ("entropy_bottleneck.", "entropy_bottlenecks.", "gaussian_conditional.")
LAMBDAS = (0.00015, 0.0004, 0.0009, 0.0023, 0.006, 0.015, 0.039, 0.1, 0.25)
_PER_QUALITY = ("log_gain", "log_inv_gain")


@dataclass
class TrainConfig:
    """What to train and for how long."""

    architecture: str
    sources: list[Source]
    out: Path
    run_dir: Path
    minutes: float = 20.0
    batch_size: int = 16
    patch_size: int = 64
    lr: float = 5e-4
    lr_per_quality: float | None = None  # peak rate of the gains and factorized densities (default: lr)
    lambdas: tuple[float, ...] = LAMBDAS
    N: int = 64
    M: int = 192
    L: int | None = None  # the light synthesis's channels (the light architectures only; None: their default)
    in_channels: int = 1
    seed: int = 0
    device: str = "auto"
    checkpoint_minutes: float = 3.0
    init_from: Path | None = None
    # Train only the parameters whose names start with one of these prefixes (e.g. ("g_s.",) for a new decoder
    # behind a frozen encoder and entropy model); the frozen modules run as at inference (rounding, no noise).
    train_only: tuple[str, ...] | None = None
    extra: dict = field(default_factory=dict)



def rd_terms(model, x: torch.Tensor, quality: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """Per-sample bits per pixel and MSE of a float forward pass."""
    out = model(x, quality)
    npix = x.shape[2] * x.shape[3]
    bpp = sum(torch.log(lik).flatten(1).sum(1) for lik in out["likelihoods"].values()) / (-math.log(2) * npix)
    mse = (out["x_hat"] - x).pow(2).flatten(1).mean(1)
    return bpp, mse, out


@torch.no_grad()
def evaluate(model, patches: torch.Tensor, n_qualities: int, batch: int = 256) -> list[dict]:
    """Estimated (likelihood) bpp and PSNR of each quality on fixed dev patches."""
    model.eval()
    rows = []
    for q in range(n_qualities):
        bpps, mses = [], []
        for i in range(0, len(patches), batch):
            x = patches[i : i + batch]
            bpp, mse, _ = rd_terms(model, x, torch.full((len(x),), q, dtype=torch.long, device=x.device))
            bpps.append(bpp)
            mses.append(mse)
        mse = torch.cat(mses).mean().item()
        rows.append({"quality": q + 1, "bpp": torch.cat(bpps).mean().item(), "psnr": 10 * math.log10(1 / mse)})
    model.train()
    return rows


def _grown_index(old: int, new: int, m_old: int, m_new: int) -> tuple[list[int], list[int]]:
    """Where the ``old`` entries of a dimension go in a grown one of size ``new``: chunk-wise where the
    dimension is k latent-sized chunks (scales | means, or hyper-parameters | context), else a leading slice."""
    for k in (1, 2, 4):
        if m_old != m_new and old == k * m_old and new == k * m_new:
            src = list(range(old))
            return src, [c * m_new + i for c in range(k) for i in range(m_old)]
    n = min(old, new)
    return list(range(n)), list(range(n))


def _nearest(lambdas: Sequence[float], lam: float) -> int:
    return min(range(len(lambdas)), key=lambda i: abs(math.log(lambdas[i] / lam)))


def _gain_rows(rows: Tensor, old: Sequence[float], new: Sequence[float]) -> Tensor:
    """Per-quality log-gain rows for the ``new`` lambdas from those trained for the ``old`` ones: a lambda both
    have keeps its row, another is interpolated (or extrapolated) linearly in log lambda from its neighbours."""
    if len(old) < 2:
        return torch.stack([rows[0]] * len(new))
    logs = [math.log(v) for v in old]
    out = []
    for lam in new:
        if lam in old:
            out.append(rows[list(old).index(lam)])
            continue
        b = min(max(sum(v < math.log(lam) for v in logs), 1), len(old) - 1)
        t = (math.log(lam) - logs[b - 1]) / (logs[b] - logs[b - 1])
        out.append(rows[b - 1] + t * (rows[b] - rows[b - 1]))
    return torch.stack(out)


def _per_quality_state(state: dict, old: Sequence[float], new: Sequence[float]) -> dict:
    """A state's per-quality entries re-indexed for the ``new`` lambdas: gain rows by :func:`_gain_rows`, and
    per-quality densities (``entropy_bottlenecks.Q.``) copied from the nearest old lambda's, or from the one
    shared density (``entropy_bottleneck.``) of a model that had one."""
    state = dict(state)
    for k in _PER_QUALITY:
        if k in state:
            state[k] = _gain_rows(state[k], old, new)
    shared = {k[len("entropy_bottleneck."):]: v for k, v in state.items() if k.startswith("entropy_bottleneck.")}
    per_q = [{k.split(".", 2)[2]: v for k, v in state.items() if k.startswith(f"entropy_bottlenecks.{i}.")}
             for i in range(len(old))]
    for j, lam in enumerate(new):
        src = per_q[_nearest(old, lam)] if per_q and per_q[0] else shared
        state.update({f"entropy_bottlenecks.{j}.{k}": v for k, v in src.items()})
    return state


def init_from_state(model, state: dict, grow: bool = True, lambdas: tuple[Sequence[float], Sequence[float]]
                    | None = None) -> list[str]:
    """Load a trained state into ``model``, also when ``model`` has a larger latent (M): entries of grown
    tensors are copied into their places (see :func:`_grown_index`); returns the names of grown tensors.
    ``grow=False`` (a state of another architecture) loads only the tensors whose shapes match.
    ``lambdas=(old, new)``: the state was trained for the ``old`` lambdas and the model has one quality per
    ``new`` one (see :func:`_per_quality_state`)."""
    if lambdas is not None:
        state = _per_quality_state(state, *lambdas)
    own = model.state_dict()
    last = max((k for k, v in state.items() if k.startswith("g_a.") and k.endswith(".weight") and v.dim() == 4),
               key=lambda k: int(k.split(".")[1]))  # the analysis's last convolution: the latent's channels
    m_old, m_new = state[last].shape[0], model.M
    in_dims = {f"{name}.weight": 0 if isinstance(mod, nn.ConvTranspose2d) else 1
               for name, mod in model.named_modules() if isinstance(mod, nn.Conv2d | nn.ConvTranspose2d)}
    new_state, grown = {}, []
    for k, v in state.items():
        if k not in own:
            continue
        target = own[k]
        v = v.to(target.dtype)
        if target.shape == v.shape:
            new_state[k] = v
            continue
        if not grow or target.dim() != v.dim() or k.endswith(CDF_BUFFERS + DERIVED_BUFFERS):
            continue
        t = target.clone()
        src, dst = zip(*(_grown_index(a, b, m_old, m_new) for a, b in zip(v.shape, t.shape)))
        if k in in_dims:  # new input channels start at zero: the grown model first computes what the old did
            d = in_dims[k]
            kept = torch.zeros(t.shape[d], dtype=torch.bool)
            kept[list(dst[d])] = True
            t.index_fill_(d, torch.nonzero(~kept).reshape(-1), 0.0)
        t[torch.meshgrid(*[torch.tensor(i, dtype=torch.long) for i in dst], indexing="ij")] = \
            v[torch.meshgrid(*[torch.tensor(i, dtype=torch.long) for i in src], indexing="ij")]
        new_state[k] = t
        grown.append(k)
    model.load_state_dict(new_state, strict=False)
    return grown


def _frozen_modules(model, train_only: tuple[str, ...] | None) -> list[nn.Module]:
    """Freeze every parameter outside ``train_only``; the top-level modules left with no trainable parameter."""
    if not train_only:
        return []
    for name, p in model.named_parameters():
        p.requires_grad_(name.startswith(train_only))
    frozen = [m for _, m in model.named_children() if not any(p.requires_grad for p in m.parameters())]
    if any(p.startswith(("g_a.", "h_a.")) for p in train_only):
        # an encoder trains behind a frozen decoder: the entropy models keep their noisy rate (the proxy that
        # carries gradients to the encoder), the synthesis gets rounded latents
        model.round_for_synthesis = True
        frozen = [m for name, m in model.named_children()
                  if m in frozen and not (name + ".").startswith(_ENTROPY_MODULES)]
    return frozen


def _train_mode(model, frozen: list[nn.Module]) -> None:
    model.train()
    for m in frozen:
        m.eval()


def _distortion_weights(config: TrainConfig) -> Tensor:
    """Per quality, the weight of the MSE in the loss: ``lambda * 255**2`` (CompressAI's rate-distortion loss).
    When only a decoder trains (``train_only`` without the entropy models), the rate is fixed and lambda would
    let the top qualities' MSE drown the others; each quality's MSE is then weighted by the inverse of the MSE
    the ``init_from`` model reached on its dev patches (from its weights' metadata), so that every quality's
    PSNR counts alike."""
    lambdas = torch.tensor(config.lambdas, dtype=torch.float32) * 255**2
    if not config.train_only or config.init_from is None or any(p.startswith(_ENTROPY_MODULES + ("g_a.", "h_"))
                                                                   for p in config.train_only):
        return lambdas
    meta = torch.load(config.init_from, map_location="cpu", weights_only=True).get("meta", {})
    rows = {r["quality"]: r["psnr"] for r in meta.get("dev_estimate", [])}
    if sorted(rows) != list(range(1, len(config.lambdas) + 1)):
        return lambdas
    return torch.tensor([10 ** (rows[q + 1] / 10) for q in range(len(config.lambdas))], dtype=torch.float32)


def _optimizers(model, lr: float, lr_per_quality: float | None = None):
    """Adam for the model (the per-quality gains and factorized densities may get their own peak rate: a
    fine-tune that adds qualities lets them move fast while the shared transforms move slowly) and Adam for the
    entropy bottlenecks' quantiles (CompressAI's auxiliary loss)."""
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    aux = {n for n, _ in params if n.endswith(".quantiles")}
    fast = {n for n, _ in params if n in _PER_QUALITY or n.startswith(_ENTROPY_MODULES)} - aux
    groups = [{"params": [p for n, p in params if n not in aux | fast], "base_lr": lr},
              {"params": [p for n, p in params if n in fast],
               "base_lr": lr if lr_per_quality is None else lr_per_quality}]
    aux_params = [p for n, p in params if n in aux]
    groups = [g for g in groups if g["params"]]
    return torch.optim.Adam(groups, lr=lr), torch.optim.Adam(aux_params, lr=1e-3) if aux_params else None


def _check_config(config: TrainConfig) -> None:
    """InputError for a configuration that cannot train: a crop side that is not a multiple of 64 (scenes are
    coded in tiles of the side the weights trained on), a synthesis width for an architecture without one."""
    check_tile_size(config.patch_size, "Patch size")
    if config.L is not None and "L" not in config_keys(config.architecture):
        raise InputError(f"{config.architecture} has no light synthesis: its width L applies to the light "
                         "architectures only.")


def train(config: TrainConfig, log: Callable[[str], None] = print) -> dict:
    """Train (or resume) ``config.architecture`` and write its weights file; returns a summary."""
    _check_config(config)
    device = pick_device(config.device)
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    ch = config.in_channels
    train_images = [im for s in config.sources for im in normalised_images(s, "train", rng, ch)]
    dev_images = [im for s in config.sources for im in normalised_images(s, "dev", rng, ch)]
    if not (train_images and dev_images):
        need = "images" if ch == 1 else f"files with {ch} bands (VV and VH)"
        raise InputError(f"Training needs {need} of at least 64x64 valid pixels in both the train and the dev "
                         "split of its sources (every 4th file is dev).")
    try:
        dev = torch.from_numpy(dev_patches(dev_images, config.patch_size))
    except ValueError as exc:  # no patch without nodata
        raise InputError(f"No dev image has a {config.patch_size}x{config.patch_size} patch without nodata.") from exc
    model_cfg = {"in_channels": config.in_channels, "N": config.N, "M": config.M, "n_qualities": len(config.lambdas)}
    if config.L is not None:
        model_cfg["L"] = config.L
    model = build_model(config.architecture, **model_cfg).to(device)
    frozen = _frozen_modules(model, config.train_only)
    opt, aux_opt = _optimizers(model, config.lr, config.lr_per_quality)
    config.run_dir.mkdir(parents=True, exist_ok=True)
    ckpt_path = config.run_dir / "checkpoint.pt"
    step, elapsed = 0, 0.0
    if ckpt_path.exists():
        ckpt = torch.load(ckpt_path, map_location=device, weights_only=True)
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["opt"])
        if aux_opt is not None:
            aux_opt.load_state_dict(ckpt["aux_opt"])
        step, elapsed = ckpt["step"], ckpt["elapsed"]
        log(f"resumed from {ckpt_path} at step {step} ({elapsed / 60:.1f} min)")
    elif config.init_from is not None:
        blob = torch.load(config.init_from, map_location=device, weights_only=True)
        meta = blob.get("meta", {})
        same_arch = meta.get("architecture") == config.architecture
        old_lambdas = meta.get("lambdas") or list(config.lambdas)
        grown = init_from_state(model, blob["state_dict"], grow=same_arch,
                                lambdas=(old_lambdas, list(config.lambdas)))
        log(f"initialised from {config.init_from}" + (f" (grown: {', '.join(grown)})" if grown else ""))

    sampler = PatchSampler(train_images, config.patch_size, seed=config.seed + step)
    dev = dev[torch.randperm(len(dev), generator=torch.Generator().manual_seed(0))[:dev_count(config.patch_size)]]
    dev = dev.to(device)
    log(f"{len(train_images)} training images ({sum(im.size for im in train_images) / 1e6:.1f} MP), "
        f"{len(dev_images)} dev images; device {device}, {torch.get_num_threads()} threads")
    weights = _distortion_weights(config).to(device)
    budget = config.minutes * 60.0
    start = time.monotonic() - elapsed
    last_ckpt = time.monotonic()
    log_file = open(config.run_dir / "log.jsonl", "a")
    running = []
    _train_mode(model, frozen)
    while (elapsed := time.monotonic() - start) < budget:
        frac = elapsed / budget
        decay = 0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * frac))
        lr = config.lr * decay
        for g in opt.param_groups:
            g["lr"] = g["base_lr"] * decay
        x = torch.from_numpy(sampler.sample(config.batch_size)).to(device)
        q = torch.randint(0, len(config.lambdas), (config.batch_size,), device=device)
        bpp, mse, _ = rd_terms(model, x, q)
        loss = (weights[q] * mse + bpp).mean()
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        aux_loss = model.aux_loss() if aux_opt is not None else torch.zeros(())
        if aux_opt is not None:
            aux_opt.zero_grad()
            aux_loss.backward()
            aux_opt.step()
        step += 1
        running.append((loss.item(), bpp.mean().item(), mse.mean().item()))
        if time.monotonic() - last_ckpt > config.checkpoint_minutes * 60:
            rows = evaluate(model, dev, len(config.lambdas))
            _train_mode(model, frozen)
            r = np.mean(running, axis=0)
            rec = {"step": step, "minutes": elapsed / 60, "lr": lr, "loss": r[0], "bpp": r[1], "mse": r[2],
                   "aux": aux_loss.item(), "dev": rows}
            log_file.write(json.dumps(rec) + "\n")
            log_file.flush()
            log(f"step {step} {elapsed / 60:.1f} min loss {r[0]:.3f} | "
                + " ".join(f"q{d['quality']}:{d['bpp']:.2f}/{d['psnr']:.2f}" for d in rows))
            running = []
            _save_checkpoint(ckpt_path, model, opt, aux_opt, step, elapsed)
            last_ckpt = time.monotonic()
    _save_checkpoint(ckpt_path, model, opt, aux_opt, step, time.monotonic() - start)
    rows = evaluate(model, dev, len(config.lambdas))
    summary = {
        "architecture": config.architecture,
        "config": model_cfg,
        "lambdas": list(config.lambdas),
        "steps": step,
        "minutes": (time.monotonic() - start) / 60,
        "batch_size": config.batch_size,
        "patch_size": config.patch_size,
        "device": str(device),
        "sources": [f"{s.path.name}:{s.units}:{s.speckle_looks}" for s in config.sources],
        "init_from": config.init_from.name if config.init_from is not None else None,
        "train_only": list(config.train_only) if config.train_only else None,
        "dev_estimate": rows,
    }
    export_weights(model, config.out, summary)
    log(f"wrote {config.out}: " + json.dumps(summary["dev_estimate"]))
    log_file.close()
    return summary


def dev_count(patch_size: int) -> int:
    """How many dev patches each evaluation runs: 512 of 64x64, as many pixels (at least 32) of larger ones."""
    return max(32, 512 * 64 * 64 // (patch_size * patch_size))


def _save_checkpoint(path: Path, model, opt, aux_opt, step: int, elapsed: float) -> None:
    with atomic_path(path) as tmp:
        torch.save({"model": model.state_dict(), "opt": opt.state_dict(),
                    "aux_opt": aux_opt.state_dict() if aux_opt else None, "step": step, "elapsed": elapsed}, tmp)


def export_weights(model, out: Path, meta: dict) -> None:
    """Round parameters to float16, compute the CDF tables and write the shipped weights file atomically."""
    model = model.to("cpu").eval()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.half().float())
    model.update(force=True)
    state = {
        k: (v.half() if v.is_floating_point() and not k.startswith(_ENTROPY_MODULES) else v)
        for k, v in model.state_dict().items() if not k.endswith(DERIVED_BUFFERS)
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        torch.save({"format": 1, "meta": meta, "state_dict": state}, tmp)
