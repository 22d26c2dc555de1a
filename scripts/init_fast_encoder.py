"""The start file of bmshj2018-hyperprior-fast's training (stage 7 of scripts/train_models.py).

Usage: python scripts/init_fast_encoder.py [OUT]   (default: runs/fast-init.pt)

Everything but the analysis is bmshj2018-hyperprior-light's (the shipped weights), so that the trained model's
streams decode with that model's decoder. The light analysis keeps the full analysis's last two convolutions and
the GDNs before them (they see the same quarter-resolution features); its first layer, one 8x8 stride-4
convolution in place of two 5x5 stride-2 ones, starts fresh.
"""

import sys
from pathlib import Path

import torch

from sar_codec.models.architectures import build_model
from sar_codec.registry import lookup

# light analysis layer <- full analysis layer: conv(k8, s4), GDN, conv, GDN, conv <- -, GDN 3, conv 4, GDN 5, conv 6
KEPT = {"g_a.1.": "g_a.3.", "g_a.2.": "g_a.4.", "g_a.3.": "g_a.5.", "g_a.4.": "g_a.6."}


def main() -> int:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/fast-init.pt")
    blob = torch.load(lookup("bmshj2018-hyperprior-light", 1).path, weights_only=True)
    state, config = blob["state_dict"], blob["meta"]["config"]
    torch.manual_seed(0)
    fresh = build_model("bmshj2018-hyperprior-fast", **config).state_dict()
    start = {k: v for k, v in state.items() if not k.startswith("g_a.")}
    for k, v in fresh.items():
        if k.startswith("g_a."):
            src = next((old + k[len(new) :] for new, old in KEPT.items() if k.startswith(new)), None)
            start[k] = state[src] if src is not None else v.half() if v.is_floating_point() else v
    blob["state_dict"] = start
    blob["meta"] = dict(blob["meta"], architecture="bmshj2018-hyperprior-fast")
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(blob, out)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
