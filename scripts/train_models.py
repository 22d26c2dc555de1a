"""Train the shipped models on ../shared/data, one after the other (the recipe behind sar_codec/weights).

mbt2018-mean trains first from scratch; the other architectures start from its transforms (same shapes), which
buys quality per CPU-hour.
Usage: python scripts/train_models.py [--minutes-first 30] [--minutes 20] [--threads N] [ARCH ...]
(several architectures can train side by side, one thread each, in separate invocations).
The shipped M=192 models: --M 192 --init self grows each M=96 model and trains it further.
A run resumes from runs/ARCH/checkpoint.pt; give a larger budget to train an existing run further.
"""

import argparse
import sys
from pathlib import Path

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
    ap = argparse.ArgumentParser()
    ap.add_argument("archs", nargs="*", default=ORDER)
    ap.add_argument("--minutes-first", type=float, default=30.0)
    ap.add_argument("--minutes", type=float, default=20.0)
    ap.add_argument("--runs", type=Path, default=ROOT / "runs")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--M", type=int, default=192, help="latent channels")
    ap.add_argument("--lambdas", type=float, nargs="+", default=None, help="one lambda per quality")
    ap.add_argument("--suffix", default="", help="appended to the weights and run names, e.g. -m192")
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
        cfg = TrainConfig(arch, SOURCES, weights / f"{arch}{args.suffix}.pt", args.runs / f"{arch}{args.suffix}",
                          minutes=args.minutes_first if first else args.minutes, M=args.M,
                          init_from=init if init is not None and init.exists() else None, **extra)
        train(cfg, log=lambda m, a=arch: print(f"[{a}] {m}", flush=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
