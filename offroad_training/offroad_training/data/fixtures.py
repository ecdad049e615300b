"""Small dataset trees in each source dataset's real layout (for tests and ``bench/``).

Each writer takes frames ``(group, name, rgb, raw_labels)`` where ``group`` is the RELLIS-3D
sequence, the RUGD sequence or ``"<split>/<scenario>"`` for GOOSE, and ``raw_labels`` is what the
dataset stores: uint8 ids (RELLIS-3D, GOOSE) or an RGB colour image (RUGD).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import cv2
import numpy as np

from offroad_training.data.mappings import get_mapping

Frame = tuple[str, str, np.ndarray, np.ndarray]


def _write_rgb(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
        raise OSError(f"cannot write {path}")


def _write_raw(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), image):
        raise OSError(f"cannot write {path}")


def textured_image(width: int, height: int, seed: int) -> np.ndarray:
    """A photo-like (smooth, noisy) RGB uint8 image, deterministic per seed."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (max(2, height // 16), max(2, width // 16), 3), dtype=np.uint8)
    base = cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)
    noise = rng.normal(0, 6, (height, width, 1))
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def stripes(values: Sequence[int], width: int, height: int) -> np.ndarray:
    """uint8 (H, W) label image of vertical bands, one per value, left to right."""
    cols = np.arange(width) * len(values) // width
    return np.broadcast_to(np.asarray(values, np.uint8)[cols], (height, width)).copy()


def rugd_colour(ids: np.ndarray, extra: dict[int, tuple[int, int, int]] | None = None
                ) -> np.ndarray:
    """RGB colour labels of RUGD class indices (``extra``: index -> colour of no class)."""
    colours = {c.id: c.rgb for c in get_mapping("rugd").classes}
    colours.update(extra or {})
    lut = np.zeros((256, 3), np.uint8)
    for index, rgb in colours.items():
        lut[index] = rgb
    return lut[ids]


RELLIS_DOWNLOAD_DIRS = ("Rellis_3D_pylon_camera_node", "Rellis_3D_pylon_camera_node_label_id",
                        "Rellis_3D_image_split")
"""The download's image, label-id and split zips, each extracted into its own directory."""


def write_rellis3d(root: Path, frames: Iterable[Frame],
                   splits: dict[str, list[tuple[str, str]]] | None = None,
                   layout: str = "merged") -> Path:
    """RELLIS-3D images, label ids and (``splits``) ``<split>.lst`` files.

    ``layout="merged"``: ``root/Rellis-3D/<seq>/pylon_camera_node{,_label_id}/``, lists in the
    root. ``layout="download"``: the zips extracted side by side, as downloaded:
    ``root/Rellis_3D_pylon_camera_node/Rellis-3D/<seq>/pylon_camera_node/``,
    ``root/Rellis_3D_pylon_camera_node_label_id/Rellis-3D/<seq>/pylon_camera_node_label_id/``
    and ``root/Rellis_3D_image_split/<split>.lst``.
    """
    if layout not in ("merged", "download"):
        raise ValueError(f"layout {layout!r} is not 'merged' or 'download'")
    images_dir, labels_dir, split_dir = RELLIS_DOWNLOAD_DIRS
    download = layout == "download"
    image_base = root / images_dir / "Rellis-3D" if download else root / "Rellis-3D"
    label_base = root / labels_dir / "Rellis-3D" if download else root / "Rellis-3D"
    for seq, name, rgb, ids in frames:
        _write_rgb(image_base / seq / "pylon_camera_node" / f"{name}.jpg", rgb)
        _write_raw(label_base / seq / "pylon_camera_node_label_id" / f"{name}.png", ids)
    lists = root / split_dir if download else root
    for split, members in (splits or {}).items():
        lines = [f"{seq}/pylon_camera_node/{name}.jpg {seq}/pylon_camera_node_label_id/{name}.png"
                 for seq, name in members]
        lists.mkdir(parents=True, exist_ok=True)
        (lists / f"{split}.lst").write_text("\n".join(lines) + "\n")
    return root


def write_rugd(root: Path, frames: Iterable[Frame], colormap: bool = True) -> Path:
    """``root/RUGD_frames-with-annotations/<seq>/<name>.png`` + ``RUGD_annotations/...``."""
    for seq, name, rgb, colour in frames:
        _write_rgb(root / "RUGD_frames-with-annotations" / seq / f"{name}.png", rgb)
        _write_rgb(root / "RUGD_annotations" / seq / f"{name}.png", colour)
    if colormap:
        lines = [f"{c.id} {c.name} {c.rgb[0]} {c.rgb[1]} {c.rgb[2]}"  # type: ignore[index]
                 for c in get_mapping("rugd").classes]
        (root / "RUGD_annotations").mkdir(parents=True, exist_ok=True)
        (root / "RUGD_annotations" / "RUGD_annotation-colormap.txt").write_text(
            "\n".join(lines) + "\n")
    return root


def write_goose(root: Path, frames: Iterable[Frame], csv_mapping: bool = True,
                image_suffix: str = "_windshield_vis", bom: bool = False) -> Path:
    """``root/images/<split>/<scenario>/<name><suffix>.png`` + ``labels/.../<name>_labelids``.

    Frames of split ``test`` get no label file (GOOSE does not release them). ``bom``: write
    ``goose_label_mapping.csv`` with a UTF-8 byte-order mark (as spreadsheet tools save it).
    """
    for group, name, rgb, ids in frames:
        split, scenario = group.split("/")
        _write_rgb(root / "images" / split / scenario / f"{name}{image_suffix}.png", rgb)
        if split != "test":
            _write_raw(root / "labels" / split / scenario / f"{name}_labelids.png", ids)
    if csv_mapping:
        rows = ["class_name,label_key,has_instance,hex"]
        rows += [f"{c.name},{c.id},False,#000000" for c in get_mapping("goose").classes]
        (root / "goose_label_mapping.csv").write_text("\n".join(rows) + "\n",
                                                      encoding="utf-8-sig" if bom else "utf-8")
    return root
