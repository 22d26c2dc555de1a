"""Train the shipped models on ../shared/data (the recipe behind sar_codec/weights).

Usage: python scripts/train_models.py [ARCH ...] [--M 192] [--minutes 20] [--minutes-first 30] [--threads N]
       [--init self|FILE] [--suffix=-tag] [--lr 5e-4] [--lr-per-quality LR]
       [--lambdas L ...] [--install]
Without --init, mbt2018-mean trains first from scratch and the other architectures start from its transforms.
A run resumes from runs/ARCH[suffix]/checkpoint.pt; give a larger budget to train an existing run further. Its
weights are written beside it (runs/ARCH[suffix]/ARCH[suffix].pt), never over the installed ones; --install
copies them in.
Several architectures can train side by side, one thread each (--threads 1), in separate invocations.

The shipped weights came from these stages (docs/models.md gives the minutes):
  1. M = 96:  mbt2018-mean from scratch, then the three others from its transforms (--M 96).
  2. M = 192: mbt2018-mean and mbt2018 grown from their M = 96 weights (--M 192 --init self --suffix=-m192),
     then bmshj2018-hyperprior and bmshj2018-factorized from the grown, installed mbt2018-mean
     (--M 192 --init sar_codec/weights/mbt2018-mean.pt --suffix=-m192); each result installed (--install).
  3. Nine qualities (sar_codec.train.LAMBDAS; two below the old lowest): each model fine-tuned from its own
     stage-2 weights, two at a time, one thread each (--init self --suffix=-q9 --threads 1 --lr 1e-4, plus
     --lr-per-quality 1e-3 for all but bmshj2018-hyperprior; --minutes 45, bmshj2018-factorized 40), then
     installed. docs/models.md says what was done by hand in the factorized run.
  4. mbt2018 alone, from its stage-3 weights: --init self --suffix=-s4 --threads 1 --lr 1e-4
     --lr-per-quality 1e-3 --minutes 90, then installed.
  5. mbt2018-mean-light, the shallow decoder: its synthesis alone trained behind mbt2018-mean's frozen encoder
     and entropy model: mbt2018-mean-light --init sar_codec/weights/mbt2018-mean.pt --train-only g_s.
     --threads 1 --lr 1e-3 (docs/models.md gives the minutes), then installed.
  6. bmshj2018-hyperprior-light, the same behind bmshj2018-hyperprior, its synthesis starting from stage 5's:
       mkdir -p runs
       python -c "import torch; w = 'sar_codec/weights/'; h = torch.load(w + 'bmshj2018-hyperprior.pt');
       l = torch.load(w + 'mbt2018-mean-light.pt'); h['state_dict'].update({k: v for k, v in
       l['state_dict'].items() if k.startswith('g_s.')}); torch.save(h, 'runs/hyperprior-light-init.pt')"
     then bmshj2018-hyperprior-light --init runs/hyperprior-light-init.pt --train-only g_s. --threads 1
     --lr 1e-3 --minutes 85 --install.
  7. bmshj2018-hyperprior-fast, a light analysis behind bmshj2018-hyperprior-light's frozen entropy models and
     synthesis (the rate with additive noise, the synthesis on rounded latents):
       python scripts/init_fast_encoder.py runs/fast-init.pt
     then bmshj2018-hyperprior-fast --init runs/fast-init.pt --train-only g_a. --lr 1e-3 --minutes 70, then
     installed. (The shipped run's first layer started from an unseeded draw; the script seeds it.)
  8. bmshj2018-hyperprior-fast on 256-pixel crops, every tensor, from its stage-7 weights: --init
     sar_codec/weights/bmshj2018-hyperprior-fast.pt --suffix=-t256 --patch-size 256 --batch-size 4 --lr 1e-4
     --threads 2 --minutes 58, then installed (its table entry codes scenes in 256-pixel tiles).
  9. The same again from the stage-8 weights, longer: --suffix=-s9 --minutes 110 --checkpoint-minutes 10, then
     installed.
 10. Wider, from the stage-9 weights: the latent grown to 256 channels and the light synthesis to 64 (the layers
     that read the new channels start with zero weights on them, so the grown model first decodes what stage 9
     did; the new latent channels cost bits until training shrinks or uses them): --suffix=-s10w --M 256 --L 64
     --patch-size 256 --batch-size 4 --lr 1.5e-4 --threads 2 --minutes 135 --checkpoint-minutes 10, then installed.
 11. The same shape trained further from the stage-10 weights: --suffix=-s11 --M 256 --L 64 --patch-size 256
     --batch-size 4 --lr 1e-4 --threads 2 --minutes 110 --checkpoint-minutes 10, then installed.
--install also writes the model's torch-free decoder (sar_codec/weights/ARCH.decoder.npz); after changing the
fixed-point arithmetic, rewrite every one with `python -m sar_codec.models.decoder_export`.
"""

import argparse
import sys
from pathlib import Path

from sar_codec.models.decoder_export import write_decoder
from sar_codec.registry import lookup, register_weights
from sar_codec.train import TrainConfig, train
from sar_codec.training_data import Source

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
SOURCES = [
    Source(DATA / "volkov-vh-png", "amplitude"),
    Source(DATA / "ombria-vv-png", "db"),
    Source(DATA / "sen1floods11-dualpol-db", "db"),
    Source(DATA / "cnnspecklefilter-sigma0", "power", 4.4),
]
ORDER = ["mbt2018-mean", "bmshj2018-hyperprior", "mbt2018", "bmshj2018-factorized"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("archs", nargs="*", default=ORDER)
    ap.add_argument("--minutes-first", type=float, default=30.0)
    ap.add_argument("--minutes", type=float, default=20.0)
    ap.add_argument("--runs", type=Path, default=ROOT / "runs")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--M", type=int, default=192, help="latent channels")
    ap.add_argument("--L", type=int, default=None,
                    help="the light synthesis's channels (light architectures; default 48); grown like M: the layers "
                         "that read new channels start with zero weights on them")
    ap.add_argument("--lambdas", type=float, nargs="+", default=None, help="one lambda per quality")
    ap.add_argument("--lr", type=float, default=None, help="peak learning rate (default: TrainConfig's, 5e-4)")
    ap.add_argument("--lr-per-quality", type=float, default=None,
                    help="peak learning rate of the per-quality gains and factorized densities (default: --lr)")
    ap.add_argument("--suffix", default="", help="appended to the weights and run names, e.g. -m192")
    ap.add_argument("--train-only", nargs="+", default=None, metavar="PREFIX",
                    help="train only the parameters with these name prefixes (e.g. g_s.: a new decoder behind the "
                         "frozen encoder and entropy model of the --init weights)")
    ap.add_argument("--batch-size", type=int, default=None, help="patches per step (default: TrainConfig's, 16)")
    ap.add_argument("--patch-size", type=int, default=None,
                    help="side of the training crops (default: TrainConfig's, 64; larger crops let the transforms "
                         "and the hyperprior see across 64-pixel tiles)")
    ap.add_argument("--checkpoint-minutes", type=float, default=None, help="minutes between dev evaluations")
    ap.add_argument("--install", action="store_true",
                    help="copy the result to sar_codec/weights/ARCH.pt and register it in models.json (the "
                         "weights it replaces stay installed, retired, for the containers made with them)")
    ap.add_argument("--init", default=None,
                    help="start from this architecture's shipped weights ('self') or from a weights file; a "
                         "smaller latent (M) is grown into the new one (sar_codec.train.init_from_state)")
    args = ap.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    weights = ROOT / "sar_codec" / "weights"
    for arch in args.archs:
        first = arch == ORDER[0] and not args.suffix
        init = None if first else weights / f"{ORDER[0]}.pt"
        if args.init == "self":
            init = weights / f"{arch}.pt"
        elif args.init:
            init = Path(args.init)
        extra = {"lambdas": tuple(args.lambdas)} if args.lambdas else {}
        if args.lr:
            extra["lr"] = args.lr
        if args.lr_per_quality:
            extra["lr_per_quality"] = args.lr_per_quality
        if args.train_only:
            extra["train_only"] = tuple(args.train_only)
        if args.batch_size:
            extra["batch_size"] = args.batch_size
        if args.patch_size:
            extra["patch_size"] = args.patch_size
        if args.L:
            extra["L"] = args.L
        if args.checkpoint_minutes:
            extra["checkpoint_minutes"] = args.checkpoint_minutes
        run = args.runs / f"{arch}{args.suffix}"
        cfg = TrainConfig(arch, SOURCES, run / f"{arch}{args.suffix}.pt", run,
                          minutes=args.minutes_first if first else args.minutes, M=args.M,
                          init_from=init if init is not None and init.exists() else None, **extra)
        train(cfg, log=lambda m, a=arch: print(f"[{a}] {m}", flush=True))
        if args.install:
            shipped = weights / f"{arch}.pt"
            register_weights(cfg.out, name=shipped.name)
            decoder = write_decoder(lookup(arch, 1))  # the torch-free decoder's arrays, from the new weights
            print(f"[{arch}] installed {shipped.name} in the model table"
                  + (f" and wrote {decoder.name}" if decoder else ""), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
