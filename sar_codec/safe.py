"""SAFE products in and out of a container: every file of the product travels, and the product comes back.

Compressing a SAFE product (folder or ``.zip``) codes its measurement GeoTIFFs as the scene and stores every other
file (manifest, annotation, calibration and noise XMLs, previews, schemas) losslessly in extra block slots, one
block per file, described by the scene header key ``files``; the header key ``safe`` records, for each
measurement, what GDAL reports of it (size, dtype, georeferencing, tags, layout) so that it can be written again.
:func:`rebuild_product` writes the product back (folder or ``.zip``), atomically, with every stored file checked
against its SHA-256. The layout is documented in ``docs/container.md``.
"""

from __future__ import annotations

import hashlib
import lzma
import os
import re
import secrets
import shutil
import warnings
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ContainerError, InputError, OutputExistsError
from .progress import Cancelled, Progress
from .safe_discovery import MEASUREMENT_RE, is_safe_input, safe_root, zip_names
from .scene import Scene
from .scene_info import POL_RE

COMPRESSIONS = ("lzma", "zlib")


# --- reading a product ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProductMember:
    """One file of a SAFE product: its path inside the product (starting with the top ``.SAFE`` folder's name)
    and how to read its bytes."""

    path: str
    read: Callable[..., bytes]  # read(limit=None): the file's bytes, or its first ``limit`` bytes
    gdal_path: str  # what GDAL opens for it (a file path or a /vsizip/ path)

    @property
    def is_measurement(self) -> bool:
        """A measurement GeoTIFF: ``measurement/*.tif(f)`` right under the product's top folder."""
        return MEASUREMENT_RE.fullmatch(_strip_root(self.path)) is not None


def product_members(source: str | Path) -> tuple[str, list[ProductMember]]:
    """The top folder name and every file of a SAFE product given as its folder, ``manifest.safe`` or ``.zip``."""
    p = safe_root(source)
    if not p.exists():
        raise InputError(f"{p} does not exist; check the path.")
    if p.is_dir():
        files = sorted(f for f in p.rglob("*") if f.is_file())
        return p.name, [ProductMember(f"{p.name}/{f.relative_to(p).as_posix()}", _file_reader(f), str(f))
                        for f in files]
    names = [n for n in zip_names(p) if not n.endswith("/")]
    tops = {n.split("/", 1)[0] for n in names}
    root = tops.pop() if len(tops) == 1 and all("/" in n for n in names) else None
    members = []
    for n in sorted(names):
        path = n if root else f"{_root_from_zip(p)}/{n}"
        members.append(ProductMember(path, _zip_reader(p, n), f"/vsizip/{p.resolve()}/{n}"))
    return root or _root_from_zip(p), members


def _root_from_zip(p: Path) -> str:
    stem = p.name[: -len(".zip")] if p.name.lower().endswith(".zip") else p.name
    return stem if stem.upper().endswith(".SAFE") else f"{stem}.SAFE"


def _file_reader(path: Path) -> Callable[..., bytes]:
    def read(limit: int | None = None) -> bytes:
        with open(path, "rb") as f:
            return f.read(-1 if limit is None else limit)
    return read


def _zip_reader(archive: Path, name: str) -> Callable[..., bytes]:
    def read(limit: int | None = None) -> bytes:
        with zipfile.ZipFile(archive) as zf, zf.open(name) as f:
            return f.read(-1 if limit is None else limit)
    return read


def pack_file(data: bytes, compression: str = "lzma") -> bytes:
    """A stored file's block payload: its bytes compressed losslessly."""
    if compression == "lzma":
        return lzma.compress(data, preset=6)
    if compression == "zlib":
        return zlib.compress(data, 9)
    raise InputError(f"Unknown file compression {compression!r}; use one of {', '.join(COMPRESSIONS)}.")


def unpack_file(payload: bytes, record: dict, where: str) -> bytes:
    """Inverse of :func:`pack_file`, checked against the record's size and SHA-256."""
    name = record["path"]
    compression = record.get("compression", "lzma")
    if compression not in COMPRESSIONS:
        raise ContainerError(f"The stored file {name} in {where} uses compression {compression!r}, which this "
                             "sar-codec does not know; decode it with the version that made it.")
    try:
        data = lzma.decompress(payload) if compression == "lzma" else zlib.decompress(payload)
    except (lzma.LZMAError, zlib.error) as exc:
        raise ContainerError(f"The stored file {name} in {where} is corrupted (it does not decompress).") from exc
    if len(data) != int(record["size"]) or hashlib.sha256(data).hexdigest() != record["sha256"]:
        raise ContainerError(f"The stored file {name} in {where} is corrupted (its SHA-256 does not match).")
    return data


@dataclass
class StoredProduct:
    """What compressing a SAFE product adds to a scene container: header entries and the file payloads."""

    header: dict  # {"files": [...], "safe": {...}}
    payloads: list[bytes]  # block payloads, in the order of header["files"]
    georef: dict | None = None  # the annotation's GCPs, where the measurement has no georeferencing of its own

    @property
    def block_count(self) -> int:
        return len(self.payloads)


def store_product(source: str | Path | list, scene: Scene, first_block: int,
                  compression: str = "lzma") -> StoredProduct | None:
    """Pack every non-measurement file of the SAFE product ``source`` and describe its measurements.

    Returns None when ``source`` is not a SAFE product. ``scene`` is the opened scene of its measurements (its
    band names say which polarisation each band holds); files get block ids from ``first_block`` on.
    """
    if isinstance(source, (list, tuple)):
        if len(source) != 1:
            return None
        source = source[0]
    if not is_safe_input(source):
        return None
    root, members = product_members(source)
    files, payloads, measurements, omitted = [], [], [], []
    annotations: dict[str, bytes] = {}
    for m in members:
        if m.is_measurement:
            record = _measurement_record(m, scene)
            (measurements if record is not None else omitted).append(record or m.path)
            continue
        data = m.read()
        if re.fullmatch(r"annotation/[^/]+\.xml", _strip_root(m.path), re.IGNORECASE):
            annotations[m.path] = data
        files.append({"path": m.path, "size": len(data), "sha256": hashlib.sha256(data).hexdigest(),
                      "block": first_block + len(payloads), "compression": compression})
        payloads.append(pack_file(data, compression))
    if not measurements:
        raise InputError(f"{source} has no measurement file of the compressed polarisations; give a "
                         "Sentinel-1 SAFE product.")
    first = min(measurements, key=lambda r: r["band"])
    georef = None
    if not first["gcps"] and (first["transform"] is None or first["transform"] == [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]):
        stem = first["path"].rsplit("/", 1)[-1].rsplit(".", 1)[0]
        annotation = annotations.get(f"{root}/annotation/{stem}.xml")
        georef = annotation_georef(annotation, stem) if annotation else None
    return StoredProduct({"files": files, "safe": {"root": root, "measurements": measurements,
                                                   "omitted_measurements": omitted}}, payloads, georef)


def annotation_georef(annotation: bytes, name: str) -> dict | None:
    """The geolocation grid of a product annotation as scene georeferencing: GCPs (line, pixel, longitude,
    latitude, height) in EPSG:4326, as GDAL's SENTINEL1 driver reads them; None if it has none."""
    import xml.etree.ElementTree as ET

    from rasterio.crs import CRS

    try:
        points = ET.fromstring(annotation).findall(
            "./geolocationGrid/geolocationGridPointList/geolocationGridPoint")
        gcps = [[float(p.findtext("line")), float(p.findtext("pixel")), float(p.findtext("longitude")),
                 float(p.findtext("latitude")), float(p.findtext("height")), str(i + 1), ""]
                for i, p in enumerate(points)]
    except (ET.ParseError, TypeError, ValueError) as exc:
        raise InputError(f"The annotation {name} is not valid XML of the Sentinel-1 product schema; give an "
                         "intact SAFE product.") from exc
    if not gcps:
        return None
    return {"crs": None, "transform": None, "gcps": gcps, "gcp_crs": CRS.from_epsg(4326).to_wkt()}


def _measurement_record(member: ProductMember, scene: Scene) -> dict | None:
    """What GDAL reports of a measurement GeoTIFF, enough to write it again; None if not in the scene."""
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning

    match = POL_RE.search(member.path.rsplit("/", 1)[-1])
    pol = match.group(1).upper() if match else None
    names = [n.upper() for n in scene.info.band_names]
    if pol not in names:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(member.gdal_path) as ds:
            gcps, gcp_crs = ds.gcps
            profile = ds.profile
            bigtiff = _is_bigtiff(member)
            return {
                "path": member.path, "band": names.index(pol), "polarisation": pol,
                "width": ds.width, "height": ds.height, "dtype": ds.dtypes[0], "nodata": ds.nodata,
                "crs": ds.crs.to_wkt() if ds.crs else None,
                "transform": list(ds.transform)[:6] if not ds.transform.is_identity or ds.crs else None,
                "gcps": [[g.row, g.col, g.x, g.y, g.z, g.id, g.info] for g in gcps] or None,
                "gcp_crs": gcp_crs.to_wkt() if (gcps and gcp_crs) else None,
                "tags": ds.tags(), "band_tags": ds.tags(1), "description": ds.descriptions[0],
                "image_structure": ds.tags(ns="IMAGE_STRUCTURE"),
                "layout": {"tiled": bool(profile.get("tiled")), "blockxsize": profile.get("blockxsize"),
                           "blockysize": profile.get("blockysize"), "compress": profile.get("compress"),
                           "interleave": profile.get("interleave"), "bigtiff": bigtiff},
            }


def _is_bigtiff(member: ProductMember) -> bool:
    """Whether a measurement is a BigTIFF (its version word is 43, not 42)."""
    return member.read(4)[2:4] in (b"+\x00", b"\x00+")


# --- rebuilding a product ---------------------------------------------------------------------------------


def product_header(header: dict, path: str | Path) -> dict:
    """The ``safe`` entry of a container header; an InputError if the container was not made from a SAFE."""
    safe = header.get("safe")
    if not isinstance(safe, dict) or not isinstance(header.get("files"), list):
        raise InputError(f"{path} was not made from a SAFE product, so no product can be rebuilt from it; "
                         "decode it to a GeoTIFF instead.")
    return safe


def read_stored_file(container: Any, record: dict) -> bytes:
    """One stored file's bytes, checked; a ContainerError naming the file when its block or hash is bad."""
    try:
        payload = container.read_block(int(record["block"]))
    except ContainerError as exc:
        raise ContainerError(f"The stored file {record['path']} in {container.path} is corrupted "
                             f"(block {record['block']} fails its checksum).") from exc
    return unpack_file(payload, record, container.path)


def stored_files(container: Any) -> Iterator[tuple[dict, bytes]]:
    """Every stored file of a container with its checked bytes, in header order."""
    for record in container.header.get("files", []):
        yield record, read_stored_file(container, record)


def _check_member_path(path: str, where: str) -> str:
    parts = Path(path).parts
    if not parts or Path(path).is_absolute() or ".." in parts:
        raise ContainerError(f"{where} lists an unsafe product path {path!r}.")
    return path


def rebuild_product(container: str | Path, output: str | Path, *, device: str = "auto", overwrite: bool = False,
                    progress: Progress | None = None, cancelled: Cancelled | None = None) -> Path:
    """Write the SAFE product a container was made from to ``output``: a folder (the product's folder, e.g.
    ``restored/NAME.SAFE``), or a ``.zip`` holding ``NAME.SAFE/...`` as ESA's zips do.

    Every stored file comes back byte-identical (checked against its SHA-256 while writing); each measurement
    GeoTIFF is decoded with the original's size, dtype, georeferencing, tags and layout. The product is built
    under a temporary name beside ``output`` and renamed onto it only when complete.
    """
    from .device import pick_device
    from .gdal_env import bounded_gdal_cache
    from .scene_container import open_container

    output = Path(output)
    as_zip = output.suffix.lower() == ".zip"
    device = pick_device(device)
    opened = open_container(container)
    try:
        safe = product_header(opened.container.header, container)
        if output.exists() and not overwrite:
            raise OutputExistsError(f"{output} already exists; choose another path or allow overwriting.")
        if not output.parent.is_dir():
            raise InputError(f"The output folder {output.parent} does not exist; create it first.")
        work = output.parent / f".{output.name}.{secrets.token_hex(6)}.part"
        work.mkdir()
        try:
            root = work / "product"
            for record, data in stored_files(opened.container):
                target = root / _strip_root(_check_member_path(record["path"], str(container)))
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
            with bounded_gdal_cache():
                _write_measurements(opened, safe, root, device, progress, cancelled)
            if as_zip:
                built = work / "product.zip"
                _zip_folder(root, safe["root"], built)
            else:
                built = root
            _replace(built, output, overwrite)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    finally:
        opened.container.close()
    return output


def _strip_root(path: str) -> str:
    return path.split("/", 1)[1] if "/" in path else path


def _zip_folder(folder: Path, root_name: str, target: Path) -> None:
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as zf:
        for f in sorted(folder.rglob("*")):
            if f.is_file():
                zf.write(f, f"{root_name}/{f.relative_to(folder).as_posix()}")


def _replace(built: Path, output: Path, overwrite: bool) -> None:
    """Move the finished product onto ``output`` (replacing what is there only with ``overwrite``)."""
    if output.exists() or output.is_symlink():
        if not overwrite:
            raise OutputExistsError(f"{output} already exists; choose another path or allow overwriting.")
        old = output.parent / f".{output.name}.{secrets.token_hex(6)}.old"
        os.replace(output, old)
        try:
            os.replace(built, output)
        except BaseException:
            os.replace(old, output)
            raise
        if old.is_dir():
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.unlink()
    else:
        os.replace(built, output)


def _open_measurement(path: Path, record: dict) -> Any:
    import rasterio
    from affine import Affine
    from rasterio.control import GroundControlPoint
    from rasterio.crs import CRS
    from rasterio.errors import NotGeoreferencedWarning

    layout = record["layout"]
    options: dict[str, Any] = {"tiled": layout["tiled"], "bigtiff": "YES" if layout["bigtiff"] else "NO"}
    for key in ("blockxsize", "blockysize", "compress", "interleave"):
        if layout.get(key) is not None:
            options[key] = layout[key]
    predictor = record["image_structure"].get("PREDICTOR")
    if predictor:
        options["predictor"] = int(predictor)
    if not layout["tiled"]:
        options.pop("blockxsize", None)
    profile = dict(driver="GTiff", width=record["width"], height=record["height"], count=1,
                   dtype=record["dtype"], nodata=record["nodata"], **options)
    if record.get("crs") and not record.get("gcps"):
        profile["crs"] = CRS.from_wkt(record["crs"])
    if record.get("transform") is not None and not record.get("gcps"):
        profile["transform"] = Affine(*record["transform"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        dst = rasterio.open(path, "w", **profile)
    try:
        if record.get("gcps"):
            gcps = [GroundControlPoint(row=g[0], col=g[1], x=g[2], y=g[3], z=g[4], id=g[5], info=g[6])
                    for g in record["gcps"]]
            crs = record.get("gcp_crs") or record.get("crs")
            dst.gcps = (gcps, CRS.from_wkt(crs) if crs else None)
        if record["tags"]:
            dst.update_tags(**record["tags"])
        if record["band_tags"]:
            dst.update_tags(1, **record["band_tags"])
        if record.get("description"):
            dst.set_band_description(1, record["description"])
    except BaseException:
        dst.close()
        raise
    return dst


def _write_measurements(opened: Any, safe: dict, root: Path, device: str, progress: Progress | None,
                        cancelled: Cancelled | None) -> None:
    """Decode the scene once and write each band into its measurement GeoTIFF, one row of blocks at a time
    (whole rows, so that striped and compressed layouts are written once, without rewriting strips)."""
    from rasterio.windows import Window

    from .scene_container import decode_blocks
    from .tiling import Window as SceneWindow

    info = opened.info
    records = safe["measurements"]
    for r in records:
        if (r["width"], r["height"]) != (info.width, info.height) or not 0 <= int(r["band"]) < info.count:
            raise ContainerError(f"{opened.container.path} is corrupted (a measurement record disagrees with "
                                 "the scene).")
    outputs = []
    try:
        for r in records:
            target = root / _strip_root(_check_member_path(r["path"], str(opened.container.path)))
            target.parent.mkdir(parents=True, exist_ok=True)
            outputs.append(_open_measurement(target, r))
        block = opened.grid.block_size
        for row0 in range(0, info.height, block):
            height = min(block, info.height - row0)
            strip = SceneWindow(row0, 0, height, info.width)
            buffer = np.empty((info.count, height, info.width), dtype=info.dtype)
            for part, data in decode_blocks(opened, strip, device, None, cancelled):
                buffer[:, part.row_off - row0 : part.row_off - row0 + part.height,
                       part.col_off : part.col_off + part.width] = data
            for r, dst in zip(records, outputs):
                dst.write(buffer[int(r["band"])].astype(r["dtype"], copy=False), 1,
                          window=Window(0, row0, info.width, height))
            if progress is not None:
                progress((row0 + height) / info.height)
    finally:
        for dst in outputs:
            dst.close()
