"""Speed and memory of sar-codec against JPEG 2000 (GDAL/OpenJPEG), on generated scenes.

    python benchmarks/bench_codec.py speed [--size 1024] [--model ARCH] [--quality Q] [--device auto]
    python benchmarks/bench_codec.py memory [--mpix 10 30 100]
    python benchmarks/bench_codec.py ar-decode [--tiles 256]
    python benchmarks/bench_codec.py coder [--size 1024] [--model ARCH] [--quality Q] [--threads 1 2]
    python benchmarks/bench_codec.py startup CONTAINER [--runs 7]
    python benchmarks/bench_codec.py fast-exact [SCENE ...] [--size 512]
    python benchmarks/bench_codec.py pipeline [--size 1024] [--rounds 3]
    python benchmarks/bench_codec.py browse [--width 2900] [--height 1400] [--screen 1920x1080] [--model ARCH]
                                            [--quality Q] [--device auto]

``speed``: one run on the same synthetic dual-pol scene (``sar_codec.sample``, sigma0 dB): sar-codec encode and
decode MPix/s end to end (read, code, write; encode also with ``reproducible=True``), and JPEG 2000 encode and
decode MPix/s of the same normalised 12-bit data at the rate sar-codec reached, with PSNR of both.
``memory``: peak RSS (VmHWM) of ``compress_scene`` in a fresh process on generated single-polarisation GRD-like
scenes of growing size. ``ar-decode``: mbt2018 decoding of many tiles, batched across tiles versus one tile at a
time (outputs compared) versus CompressAI's own per-sample loop. ``coder``: the rANS entropy coder alone
(CompressAI's C++ coder, called by the tile codec on the host whatever the device), timed inside a whole-scene
encode and decode of the same synthetic scene, also with several scenes coded at once in threads: it bounds what
one process reaches when the transforms run on a GPU.
``startup``: wall time of whole ``sar-codec`` processes that should answer at once (``--help``, ``--version``,
``info``, ``verify`` without ``--decode``, an option error), median and range of ``--runs``, and whether each
imported torch.
``fast-exact``: each scene (default: the real sen1floods11 chips in ../shared/data when present, and a generated
scene) compressed with the default model, then decoded with the floating-point synthesis (the default) and with
``exact=True``: decode seconds of both, the PSNR of the fast decode against the exact one and of each against the
scene (on the scene's own [0, 1] mapping, as ``speed``), and the largest difference between them in dB.
``pipeline``: whole-scene encode and decode of a generated scene with the block pipeline on (one block coded in
a worker thread while the caller reads or writes the next, ``sar_codec.pipeline.DEPTH`` 1) and off (0),
alternating, ``--rounds`` times each; medians and ranges.
``browse``: what a viewer (QGIS) waits for, reading through
GDAL in a fresh process per format: the first render of the whole scene fitted to 1920 x 1080, a full-resolution
1920 x 1080 view in the middle then a pan by half a screen (in a second fresh process, the model loaded first), and
the peak resident set; for the .sarc (through the VRT
of ``sar-codec vrt``, as QGIS reads it), a JPEG 2000 of the same rate (GDAL JP2OpenJPEG) and a lossless COG of the
same synthetic GRD-like scene (uint16 amplitude, VV + VH).
Prints one JSON object per measurement.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _emit(**row) -> None:
    print(json.dumps(row), flush=True)


def _timed(fn, *args, **kwargs):
    t = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t


def _jp2(norm: np.ndarray, quality: float) -> tuple[float, float, int, np.ndarray]:
    """Encode seconds, decode seconds, bytes and decoded [0, 1] image of one 12-bit JPEG 2000 file."""
    import warnings

    from rasterio.errors import NotGeoreferencedWarning
    from rasterio.io import MemoryFile

    from sar_codec.baselines import JP2_BITS, quantise

    q = quantise(norm, JP2_BITS)
    opts = {"quality": f"{quality:.6g}", "nbits": JP2_BITS, "reversible": "NO", "gmljp2": "NO", "geojp2": "NO"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        t0 = time.perf_counter()
        with MemoryFile() as mf:
            with mf.open(driver="JP2OpenJPEG", width=q.shape[1], height=q.shape[0], count=1, dtype=q.dtype,
                         **opts) as dst:
                dst.write(q, 1)
            data = mf.read()
        t1 = time.perf_counter()
        with MemoryFile(data) as mf, mf.open() as src:
            dec = src.read(1)
        t2 = time.perf_counter()
    return t1 - t0, t2 - t1, len(data), dec / float(2**JP2_BITS - 1)


def speed(args) -> None:
    import torch

    from sar_codec import codec
    from sar_codec.baselines import match_rate
    from sar_codec.metrics import psnr
    from sar_codec.radiometry import fit_mapping
    from sar_codec.sample import write_sample
    from sar_codec.scene import open_scene

    with tempfile.TemporaryDirectory() as tmp:
        src = write_sample(Path(tmp) / "scene.tif", "db", args.size)
        mpix = args.size * args.size * 2 / 1e6
        codec.compress_scene(src, Path(tmp) / "warm.sarc", architecture=args.model, quality=args.quality,
                             device=args.device)  # loads and compiles the model once
        r, t_enc = _timed(codec.compress_scene, src, Path(tmp) / "s.sarc", architecture=args.model,
                          quality=args.quality, device=args.device)
        r_exact, t_exact = _timed(codec.compress_scene, src, Path(tmp) / "exact.sarc", architecture=args.model,
                                  quality=args.quality, device=args.device, reproducible=True)
        _, t_dec = _timed(codec.decompress_scene, r.output, Path(tmp) / "back.tif", device=args.device)
        with open_scene(src) as a, open_scene(Path(tmp) / "back.tif") as b:
            x, y = a.read(0, 0, args.size, args.size), b.read(0, 0, args.size, args.size)
        valid = np.isfinite(x)
        norms, decoded = [], []
        for band in range(2):
            m = fit_mapping(np.where(valid[band], x[band], np.nan))
            norms.append(m.forward(np.where(valid[band], x[band], np.nanmean(x[band]))))
            decoded.append(m.forward(np.where(valid[band], y[band], np.nanmean(x[band]))))
        learned_psnr = float(np.mean([psnr(n, d, valid[i]) for i, (n, d) in enumerate(zip(norms, decoded))]))
        _emit(bench="speed", codec=f"sar-codec {args.model} q{r.quality}", device=codec.pick_device(args.device),
              threads=torch.get_num_threads(), mpix=mpix, bpp=r.bpp, psnr=learned_psnr,
              encode_mpix_s=mpix / t_enc, decode_mpix_s=mpix / t_dec,
              reproducible_encode_mpix_s=mpix / t_exact, reproducible_bpp=r_exact.bpp)
        matched = match_rate("jpeg2000", norms, r.bpp)
        enc = dec = nbytes = 0.0
        jp2_psnr = []
        for i, n in enumerate(norms):
            te, td, nb, d = _jp2(n, matched.param)
            enc, dec, nbytes = enc + te, dec + td, nbytes + nb
            jp2_psnr.append(psnr(n, d, valid[i]))
        _emit(bench="speed", codec="jpeg2000 (GDAL JP2OpenJPEG, 12-bit)", mpix=mpix, bpp=nbytes * 8 / (mpix * 1e6),
              psnr=float(np.mean(jp2_psnr)), encode_mpix_s=mpix / enc, decode_mpix_s=mpix / dec,
              sar_codec_over_jp2_encode=(mpix / t_enc) / (mpix / enc),
              sar_codec_over_jp2_decode=(mpix / t_dec) / (mpix / dec))


def _make_grd(path: Path, side: int) -> None:
    """A single-polarisation uint16 GRD-like scene written window by window (never whole in memory)."""
    import rasterio
    from rasterio.transform import from_origin
    from rasterio.windows import Window

    rng = np.random.default_rng(0)
    profile = {"driver": "GTiff", "width": side, "height": side, "count": 1, "dtype": "uint16", "nodata": 0,
               "tiled": True, "blockxsize": 512, "blockysize": 512, "BIGTIFF": "IF_SAFER",
               "crs": "EPSG:32631", "transform": from_origin(500000.0, 5000000.0, 10.0, 10.0)}
    with rasterio.open(path, "w", **profile) as dst:
        for r in range(0, side, 256):
            h = min(256, side - r)
            field = 400 * np.sqrt(10 ** ((-10 + 3 * np.sin(np.arange(side) / 97.0))[None, :] / 10))
            dn = field * np.sqrt(rng.gamma(4.4, 1 / 4.4, (h, side)))
            dst.write(np.clip(dn, 1, 65535).astype("uint16")[None], window=Window(0, r, side, h))


# Runs compress_scene in a fresh process; records the resident set at every tenth of the work (the first
# tenth is the histogram pass) and the peak. The peak is the process's own high-water mark (VmHWM): Linux
# carries ru_maxrss across fork and exec, so a child's ru_maxrss is at least its parent's resident set at
# fork time (here, the scene generator's), which is not the codec's memory.
_MEMORY_CHILD = """
import json, sys, time
from sar_codec.codec import compress_scene

def status_mib(key):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) / 1024 for line in f if line.startswith(key + ":"))

trace = []
def progress(fraction):
    if fraction >= (len(trace) + 1) / 10:
        trace.append(round(status_mib("VmRSS"), 1))

t = time.time()
compress_scene(sys.argv[1], sys.argv[2], device=sys.argv[3], progress=progress)
print(json.dumps({"seconds": time.time() - t, "peak_rss_mib": status_mib("VmHWM"), "rss_mib_at_tenths": trace}))
"""


def memory(args) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for mpix in args.mpix:
            side = int(round((mpix * 1e6) ** 0.5))
            src = Path(tmp) / f"grd_{side}.tif"
            _make_grd(src, side)
            out_path = src.with_suffix(".sarc")
            out = subprocess.run([sys.executable, "-c", _MEMORY_CHILD, str(src), str(out_path), args.device],
                                 capture_output=True, text=True, check=True)
            child = json.loads(out.stdout)
            _emit(bench="memory", mpix=side * side / 1e6, side=side, peak_rss_mib=child["peak_rss_mib"],
                  seconds=child["seconds"], encode_mpix_s=side * side / 1e6 / child["seconds"],
                  rss_mib_at_tenths=child["rss_mib_at_tenths"])
            src.unlink()
            out_path.unlink()


def ar_decode(args) -> None:
    import torch
    from compressai.models import JointAutoregressiveHierarchicalPriors

    from sar_codec.registry import load_codec, lookup

    entry = lookup("mbt2018", args.quality)
    c = load_codec(entry, "cpu")
    rng = np.random.default_rng(0)
    tiles = np.clip(rng.normal(0.5, 0.12, (args.tiles, 1, 64, 64)), 0, 1)
    q = entry.quality - 1
    batched_stream = c.compress(tiles, q)
    batched, t_batched = _timed(c.decompress, batched_stream, args.tiles, q, 64)
    streams = [c.compress(tiles[i : i + 1], q) for i in range(args.tiles)]
    t = time.perf_counter()
    single = np.concatenate([c.decompress(s, 1, q, 64) for s in streams])
    t_single = time.perf_counter() - t
    _emit(bench="ar-decode", what="sar-codec mbt2018, one stream for all tiles (batched)", tiles=args.tiles,
          seconds=t_batched, tiles_per_s=args.tiles / t_batched)
    _emit(bench="ar-decode", what="sar-codec mbt2018, one tile at a time", tiles=args.tiles, seconds=t_single,
          tiles_per_s=args.tiles / t_single, identical_output=bool(np.array_equal(batched, single)))
    ref = JointAutoregressiveHierarchicalPriors(N=entry.config["N"], M=entry.config["M"])
    ref.g_a[0] = torch.nn.Conv2d(1, entry.config["N"], 5, 2, 2)  # 1 SAR channel, as ours
    ref.g_s[-1] = torch.nn.ConvTranspose2d(entry.config["N"], 1, 5, 2, 2, 1)
    ref.update(force=True)
    ref.eval()
    x = torch.from_numpy(tiles).float()
    with torch.no_grad():
        enc = [ref.compress(x[i : i + 1]) for i in range(args.tiles)]
        t = time.perf_counter()
        for e in enc:
            ref.decompress(e["strings"], e["shape"])
        t_ref = time.perf_counter() - t
    _emit(bench="ar-decode", what="CompressAI mbt2018 decompress, per-sample loop (float, same N/M)",
          tiles=args.tiles, seconds=t_ref, tiles_per_s=args.tiles / t_ref,
          batched_speedup_vs_compressai=t_ref / t_batched)


class _Timed:
    """Wraps a rANS coder object and adds the seconds spent in its coding calls to ``spent``."""

    def __init__(self, inner, spent: list[float]):
        self._inner, self._spent = inner, spent

    def __getattr__(self, name):
        attr = getattr(self._inner, name)
        if name not in ("encode_with_indexes", "decode_stream"):
            return attr

        def timed(*a):
            t = time.perf_counter()
            try:
                return attr(*a)
            finally:
                self._spent.append(time.perf_counter() - t)
        return timed


def coder(args) -> None:
    import threading

    import torch

    from sar_codec import codec
    from sar_codec.models import latent_coders
    from sar_codec.sample import write_sample

    spent: list[float] = []
    encoder, decoder = latent_coders.RansEncoder, latent_coders.RansDecoder
    latent_coders.RansEncoder = lambda: _Timed(encoder(), spent)
    latent_coders.RansDecoder = lambda: _Timed(decoder(), spent)
    with tempfile.TemporaryDirectory() as tmp:
        src = write_sample(Path(tmp) / "scene.tif", "db", args.size)
        mpix = args.size * args.size * 2 / 1e6
        kw = {"architecture": args.model, "quality": args.quality, "device": "cpu"}
        codec.compress_scene(src, Path(tmp) / "warm.sarc", **kw)
        for what in ("encode", "decode"):
            spent.clear()
            if what == "encode":
                r, total = _timed(codec.compress_scene, src, Path(tmp) / "s.sarc", **kw)
            else:
                _, total = _timed(codec.decompress_scene, r.output, Path(tmp) / "back.tif", device="cpu")
            _emit(bench="coder", what=f"rANS {what} inside a whole-scene {what}", model=args.model, bpp=r.bpp,
                  mpix=mpix, coder_seconds=sum(spent), total_seconds=total, coder_share=sum(spent) / total,
                  coder_mpix_s=mpix / sum(spent))
        for n in args.threads:  # the coder on n threads at once: does it release the GIL?
            torch.set_num_threads(1)
            spent.clear()
            outs = [Path(tmp) / f"t{n}_{i}.tif" for i in range(n)]
            jobs = [threading.Thread(target=codec.decompress_scene, args=(r.output, o), kwargs={"device": "cpu"})
                    for o in outs]
            t = time.perf_counter()
            for j in jobs:
                j.start()
            for j in jobs:
                j.join()
            wall = time.perf_counter() - t
            _emit(bench="coder", what=f"{n} whole-scene decodes at once in threads (1 torch thread each)",
                  mpix=mpix * n, wall_seconds=wall, coder_seconds=sum(spent), decode_mpix_s=mpix * n / wall)


def _normalised_pair(src: Path, decoded: list[Path]) -> tuple[np.ndarray, list[np.ndarray], np.ndarray, list]:
    """Scene and decodes in dB on the scene's own [0, 1] mapping per band, and the valid mask."""
    from sar_codec.radiometry import fit_mapping, to_db
    from sar_codec.scene import open_scene

    with open_scene(src) as a:
        info = a.info
        x = to_db(a.read(0, 0, info.height, info.width), info.units)
        valid = a.valid_mask(a.read(0, 0, info.height, info.width))
    ys = []
    for path in decoded:
        with open_scene(path) as b:
            ys.append(to_db(b.read(0, 0, info.height, info.width), info.units))
    maps = [fit_mapping(np.where(valid[i], x[i], np.nan)) for i in range(x.shape[0])]
    norm = np.stack([m.forward(np.where(valid[i], x[i], 0.0)) for i, m in enumerate(maps)])
    dec = [np.stack([m.forward(np.where(valid[i], y[i], 0.0)) for i, m in enumerate(maps)]) for y in ys]
    return norm, dec, valid, [x] + ys


def fast_exact(args) -> None:
    from sar_codec import codec
    from sar_codec.metrics import psnr
    from sar_codec.sample import write_sample

    shared = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "sen1floods11-dualpol-db"
    scenes = [Path(p) for p in args.scenes] or sorted(shared.glob("*.tif"))
    with tempfile.TemporaryDirectory() as tmp:
        if not args.scenes:
            scenes.append(write_sample(Path(tmp) / "generated.tif", "db", args.size))
        for src in scenes:
            sarc = Path(tmp) / f"{src.stem}.sarc"
            r = codec.compress_scene(src, sarc, device=args.device)
            fast, t_fast = _timed(codec.decompress_scene, sarc, Path(tmp) / "fast.tif", device=args.device,
                                  overwrite=True)
            exact, t_exact = _timed(codec.decompress_scene, sarc, Path(tmp) / "exact.tif", device=args.device,
                                    overwrite=True, exact=True)
            norm, (f, e), valid, (_, f_db, e_db) = _normalised_pair(src, [fast, exact])
            both = valid & np.isfinite(f_db) & np.isfinite(e_db)
            _emit(bench="fast-exact", scene=src.name, model=f"{r.architecture} q{r.quality}", bpp=r.bpp,
                  mpix=r.pixels / 1e6, decode_s_fast=t_fast, decode_s_exact=t_exact, speedup=t_exact / t_fast,
                  psnr_fast_vs_exact=float(np.mean([psnr(e[b], f[b], valid[b]) for b in range(len(f))])),
                  psnr_exact=float(np.mean([psnr(norm[b], e[b], valid[b]) for b in range(len(f))])),
                  psnr_fast=float(np.mean([psnr(norm[b], f[b], valid[b]) for b in range(len(f))])),
                  max_abs_diff_db=float(np.abs(f_db - e_db)[both].max()),
                  mean_abs_diff_db=float(np.abs(f_db - e_db)[both].mean()),
                  identical_fraction=float((f_db == e_db)[both].mean()))


def pipeline(args) -> None:
    from sar_codec import codec
    from sar_codec import pipeline as pipe
    from sar_codec.sample import write_sample

    with tempfile.TemporaryDirectory() as tmp:
        src = write_sample(Path(tmp) / "scene.tif", "db", args.size)
        mpix = args.size * args.size * 2 / 1e6
        kw = {"device": "cpu", "overwrite": True}
        codec.compress_scene(src, Path(tmp) / "s.sarc", **kw)  # loads the model once
        times: dict[tuple[str, int], list[float]] = {}
        for _ in range(args.rounds):
            for depth in (0, 1):
                pipe.DEPTH = depth
                _, te = _timed(codec.compress_scene, src, Path(tmp) / "s.sarc", **kw)
                _, td = _timed(codec.decompress_scene, Path(tmp) / "s.sarc", Path(tmp) / "back.tif", **kw)
                times.setdefault(("encode", depth), []).append(te)
                times.setdefault(("decode", depth), []).append(td)
        for (what, depth), ts in sorted(times.items()):
            _emit(bench="pipeline", what=what, depth=depth, mpix=mpix, rounds=args.rounds,
                  median_mpix_s=mpix / float(np.median(ts)), range_mpix_s=[mpix / max(ts), mpix / min(ts)])


# Runs the CLI as `sar-codec ARGS` does, then says which heavy packages it imported.
_STARTUP_CHILD = """
import sys
from sar_codec_cli.main import cli
try:
    cli(sys.argv[1:], prog_name="sar-codec")
except SystemExit:
    pass
print("imported:", [m for m in ("torch", "compressai", "rasterio") if m in sys.modules], file=sys.stderr)
"""


def startup(args) -> None:
    commands = [["--help"], ["--version"], ["info", args.container], ["verify", args.container],
                ["compress", args.container, "--device", "tpu"]]
    for argv in commands:
        walls, imported = [], ""
        for _ in range(args.runs):
            t = time.perf_counter()
            out = subprocess.run([sys.executable, "-c", _STARTUP_CHILD, *argv], capture_output=True, text=True)
            walls.append(time.perf_counter() - t)
            imported = out.stderr.strip().splitlines()[-1]
        _emit(bench="startup", command=" ".join(["sar-codec", *argv[:1]]), runs=args.runs,
              median_s=float(np.median(walls)), min_s=min(walls), max_s=max(walls), imported=imported)


# One format in a fresh process, read as a viewer does through GDAL; the OS file cache is warm (the files were just
# written), GDAL's and the codec's caches are cold.
_BROWSE_CHILD = """
import json, sys, time
t0 = time.perf_counter()
from osgeo import gdal
from sar_codec import vrt
vrt.enable_in_process()
gdal.UseExceptions()

def vm(key):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) / 1024 for line in f if line.startswith(key + ":"))

ds = gdal.Open(sys.argv[1])
w, h = ds.RasterXSize, ds.RasterYSize
sw, sh = (int(v) for v in sys.argv[3].split("x"))
if sys.argv[2] == "first":  # the whole scene fitted to the screen, from a cold start
    scale = min(sw / w, sh / h)
    ds.ReadAsArray(buf_xsize=max(1, round(w * scale)), buf_ysize=max(1, round(h * scale)))
    print(json.dumps({"first_render_s": time.perf_counter() - t0, "peak_rss_mib": vm("VmHWM")}))
else:  # a full-resolution screen in the middle, then half a screen to the right; the model is loaded first
    ds.ReadAsArray(w - 1, h - 1, 1, 1)
    vw, vh = min(sw, w), min(sh, h)
    x, y = (w - vw) // 2 - min(vw // 4, (w - vw) // 2), (h - vh) // 2
    t = time.perf_counter(); ds.ReadAsArray(x, y, vw, vh); full = time.perf_counter() - t
    x2 = min(w - vw, x + vw // 2)
    t = time.perf_counter(); ds.ReadAsArray(x2, y, vw, vh); pan = time.perf_counter() - t
    print(json.dumps({"full_res_view_s": full, "pan_s": pan, "pan_pixels": x2 - x, "peak_rss_mib": vm("VmHWM")}))
"""


def browse(args) -> None:
    import rasterio

    from sar_codec.codec import compress_scene
    from sar_codec.sample import write_sample
    from sar_codec.vrt import write_vrt

    with tempfile.TemporaryDirectory() as tmp:
        square = write_sample(Path(tmp) / "square.tif", "grd", max(args.width, args.height))
        src = Path(tmp) / "scene.tif"
        subprocess.run(["gdal_translate", "-q", "-srcwin", "0", "0", str(args.width), str(args.height), str(square),
                        str(src)], check=True)
        square.unlink()
        sarc, enc = _timed(compress_scene, src, Path(tmp) / "scene.sarc", architecture=args.model,
                           quality=args.quality, device=args.device)
        with rasterio.open(src) as ds:
            raw_bytes = ds.width * ds.height * ds.count * 2
        percent = max(0.01, 100.0 * sarc.bytes / raw_bytes)  # JPEG 2000 at the same size as the container
        jp2, cog = Path(tmp) / "scene.jp2", Path(tmp) / "scene_cog.tif"
        subprocess.run(["gdal_translate", "-q", "-of", "JP2OpenJPEG", "-co", f"QUALITY={percent:.3f}",
                        "-co", "BLOCKXSIZE=512", "-co", "BLOCKYSIZE=512", str(src), str(jp2)], check=True)
        subprocess.run(["gdal_translate", "-q", "-of", "COG", "-co", "COMPRESS=DEFLATE", "-co", "PREDICTOR=2",
                        str(src), str(cog)], check=True)
        targets = [("sar-codec (.sarc through its VRT)", write_vrt(sarc.output), sarc.bytes),
                   ("jpeg2000 (GDAL JP2OpenJPEG, same size)", jp2, jp2.stat().st_size),
                   ("cog (DEFLATE, lossless)", cog, cog.stat().st_size)]
        for name, path, nbytes in targets:
            row = {}
            for mode in ("first", "view"):  # each in a fresh process: GDAL's and the codec's caches start cold
                out = subprocess.run([sys.executable, "-c", _BROWSE_CHILD, str(path), mode, args.screen],
                                     capture_output=True, text=True, check=True)
                child = json.loads(out.stdout)
                row[f"peak_rss_mib_{mode}"] = child.pop("peak_rss_mib")
                row.update(child)
            _emit(bench="browse", format=name, width=args.width, height=args.height, bands=2, bytes=nbytes,
                  screen=args.screen, **row, **({"encode_seconds": enc} if path.suffix == ".vrt" else {}))


def main() -> int:
    from sar_codec.registry import DEFAULT_ARCHITECTURE, DEFAULT_QUALITY  # no torch: the table only

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="bench", required=True)
    s = sub.add_parser("speed")
    s.add_argument("--size", type=int, default=1024)
    s.add_argument("--model", default=DEFAULT_ARCHITECTURE)
    s.add_argument("--quality", type=int, default=DEFAULT_QUALITY)
    s.add_argument("--device", default="auto")
    m = sub.add_parser("memory")
    m.add_argument("--mpix", type=float, nargs="+", default=[10.0, 30.0, 100.0])
    m.add_argument("--device", default="auto")
    a = sub.add_parser("ar-decode")
    a.add_argument("--tiles", type=int, default=256)
    a.add_argument("--quality", type=int, default=DEFAULT_QUALITY)
    c = sub.add_parser("coder")
    c.add_argument("--size", type=int, default=1024)
    c.add_argument("--model", default=DEFAULT_ARCHITECTURE)
    c.add_argument("--quality", type=int, default=DEFAULT_QUALITY)
    c.add_argument("--threads", type=int, nargs="*", default=[1, 2])
    st = sub.add_parser("startup")
    st.add_argument("container", help="a .sarc file for info and verify")
    st.add_argument("--runs", type=int, default=7)
    fe = sub.add_parser("fast-exact")
    fe.add_argument("scenes", nargs="*", help="scenes to code (default: the shared real chips and a generated one)")
    fe.add_argument("--size", type=int, default=512, help="side of the generated scene")
    fe.add_argument("--device", default="cpu")
    pp = sub.add_parser("pipeline")
    pp.add_argument("--size", type=int, default=1024)
    pp.add_argument("--rounds", type=int, default=3)
    b = sub.add_parser("browse")
    b.add_argument("--width", type=int, default=2900)  # wider and taller than a 1920 x 1080 screen, so that
    b.add_argument("--height", type=int, default=1400)  # the first render uses overviews and a pan moves 960 px
    b.add_argument("--model", default=DEFAULT_ARCHITECTURE)
    b.add_argument("--quality", type=int, default=DEFAULT_QUALITY)
    b.add_argument("--device", default="auto")
    b.add_argument("--screen", default="1920x1080", help="the viewer's canvas, WIDTHxHEIGHT")
    args = ap.parse_args()
    benches = {"speed": speed, "memory": memory, "ar-decode": ar_decode, "coder": coder, "startup": startup,
               "fast-exact": fast_exact, "pipeline": pipeline, "browse": browse}
    benches[args.bench](args)
    _emit(bench="done", max_rss_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return 0


if __name__ == "__main__":
    sys.exit(main())
