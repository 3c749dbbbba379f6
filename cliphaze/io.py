"""Reading and writing images with errors that name the file.

Every image enters the library as a float32 tensor ``(3, h, w)`` in [0, 1]. The
conversions are fixed and documented here, so that no loader silently changes data:

- 8-bit RGB: divided by 255.
- 16-bit PNG (grayscale, gray+alpha, RGB or RGBA with 16 bits per channel): divided by 65535,
  keeping every bit (decoded with pypng; Pillow would cut colour PNGs to 8 bits).
- Grayscale (``L``, ``I;16``) and palette (``P``) images: converted to RGB (gray replicated to
  three channels; palette looked up). Dehazing models are trained on RGB.
- RGBA / LA: accepted only when the alpha channel is fully opaque (then dropped). An image with
  transparency raises :class:`ImageReadError`: there is no right colour behind a transparent
  pixel, so we refuse rather than guess.
- Anything Pillow cannot decode (truncated, not an image, CMYK, ...): :class:`ImageReadError`
  naming the file and the reason.
- Images as people see them: the EXIF orientation tag (set by cameras and phones that store the
  sensor's pixels unrotated) is applied, so a portrait photo is read upright, as every viewer
  shows it. An animated image (GIF, APNG, animated WebP, multi-page TIFF) gives its first frame
  and an :class:`AnimatedImageWarning` naming the file.
- Output is 8-bit (PNG, JPEG quality 95, ...), also for 16-bit input: the models are trained on
  8-bit photos, and an 8-bit result opens everywhere.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

if TYPE_CHECKING:  # torch is imported where it is used, so `cliphaze --help` works without it
    import torch

__all__ = ["ImageReadError", "AnimatedImageWarning", "read_image", "save_image", "IMAGE_SUFFIXES", "list_images",
           "to_tensor", "to_pil", "apply_orientation"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


class ImageReadError(ValueError):
    """An image file that cannot be used; the message names the file and the problem."""


class AnimatedImageWarning(UserWarning):
    """An image file with several frames: only the first was read (the message names the file)."""


def apply_orientation(arr: np.ndarray, orientation: int | None) -> np.ndarray:
    """Turn an ``(h, w, c)`` array as stored into the image as shown, for an EXIF orientation tag.

    The tag (1-8) says how the stored pixels must be flipped or rotated for display: 1 none,
    2 mirror left-right, 3 rotate 180, 4 mirror top-bottom, 5 transpose, 6 rotate 90 clockwise,
    7 transverse, 8 rotate 90 counter-clockwise (the same table as ``PIL.ImageOps.exif_transpose``,
    which ``tests/test_io.py`` compares against). Any other value leaves the array unchanged.
    """
    if orientation == 2:
        arr = arr[:, ::-1]
    elif orientation == 3:
        arr = arr[::-1, ::-1]
    elif orientation == 4:
        arr = arr[::-1]
    elif orientation == 5:
        arr = arr.transpose(1, 0, 2)
    elif orientation == 6:
        arr = np.rot90(arr, -1)
    elif orientation == 7:
        arr = arr[::-1, ::-1].transpose(1, 0, 2)
    elif orientation == 8:
        arr = np.rot90(arr, 1)
    return np.ascontiguousarray(arr)


def _orientation_and_frames(path: Path) -> tuple[int | None, int]:
    """EXIF orientation tag (None when absent) and number of frames of an image file."""
    try:
        with Image.open(path) as im:
            orientation = im.getexif().get(0x0112)
            return (int(orientation) if orientation else None), int(getattr(im, "n_frames", 1) or 1)
    except Exception:  # unreadable files are reported by the decoder that follows
        return None, 1


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Image files directly inside ``folder`` (by suffix, case-insensitive), sorted by name."""
    folder = Path(folder)
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _png_bit_depth(path: Path) -> int:
    """Bit depth from a PNG's IHDR chunk (8 when the file is not a PNG)."""
    with open(path, "rb") as f:
        head = f.read(26)
    if len(head) == 26 and head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR":
        return head[24]
    return 8


def _read_png16(path: Path) -> np.ndarray:
    """Decode a 16-bit PNG keeping all bits (Pillow would reduce colour PNGs to 8 bits)."""
    import png

    with open(path, "rb") as f:
        width, height, rows, info = png.Reader(file=f).asDirect()
        planes = info["planes"]
        arr = np.vstack([np.asarray(r, dtype=np.uint16) for r in rows]).reshape(height, width, planes)
    if planes in (2, 4):  # gray+alpha or RGBA
        if arr[..., -1].min() < 65535:
            raise ImageReadError(
                f"{path}: has transparent pixels (alpha channel below its maximum); "
                "flatten it onto a background before dehazing"
            )
        arr = arr[..., :-1]
    if arr.shape[2] == 1:
        arr = arr.repeat(3, axis=2)
    return (arr.astype(np.float64) / 65535.0).astype(np.float32)


def _read_array(path: Path) -> np.ndarray:
    """Decode ``path`` to an (h, w, 3) float32 array in [0, 1] following the module's rules."""
    try:
        if path.suffix.lower() == ".png" and _png_bit_depth(path) == 16:
            return _read_png16(path)
        with Image.open(path) as im:
            im.seek(0)
            im.load()
            mode = im.mode
            if mode in ("I;16", "I;16B", "I;16L", "I"):
                arr = np.asarray(im, dtype=np.float64)
                maxval = 65535.0 if (mode != "I" or arr.max(initial=0) > 255) else 255.0
                arr = np.clip(arr / maxval, 0.0, 1.0)[..., None].repeat(3, axis=2)
                return arr.astype(np.float32)
            if mode == "F":
                raise ImageReadError(f"{path}: floating-point images (mode F) are not supported; save as 8- or 16-bit PNG")
            if mode == "P":
                im = im.convert("RGBA") if "transparency" in im.info else im.convert("RGB")
                mode = im.mode
            if mode == "CMYK":
                raise ImageReadError(f"{path}: CMYK images are not supported; convert it to RGB first")
            if mode in ("RGBA", "LA", "PA"):
                alpha = np.asarray(im.getchannel("A"))
                if alpha.min() < 255:
                    raise ImageReadError(
                        f"{path}: has transparent pixels (alpha channel with values < 255); "
                        "flatten it onto a background (e.g. with an image editor) before dehazing"
                    )
                im = im.convert("RGB")
            elif mode != "RGB":
                im = im.convert("RGB")
            arr8 = np.asarray(im)
    except ImageReadError:
        raise
    except Exception as err:  # any decoder failure (truncated, not an image, bad chunk) names the file
        raise ImageReadError(f"{path}: cannot be read as an image ({err.__class__.__name__}: {err})") from err
    return arr8.astype(np.float32) / 255.0


def read_image(path: str | os.PathLike) -> torch.Tensor:
    """Read an image file as a float32 tensor ``(3, h, w)`` in [0, 1].

    Args:
        path: image file (PNG, JPEG, BMP, TIFF, WebP).

    Returns:
        RGB tensor ``(3, h, w)``, float32, values in [0, 1].

    Raises:
        ImageReadError: missing, unreadable or unsupported file (the message names it).

    Warns:
        AnimatedImageWarning: the file has several frames (the first is returned).
    """
    path = Path(path)
    if not path.exists():
        raise ImageReadError(f"{path}: no such file")
    if not path.is_file():
        raise ImageReadError(f"{path}: is not a file")
    arr = _read_array(path)
    orientation, frames = _orientation_and_frames(path)
    if frames > 1:
        warnings.warn(AnimatedImageWarning(f"{path}: animated image with {frames} frames; only the first frame is used"),
                      stacklevel=2)
    arr = apply_orientation(arr, orientation)
    import torch

    return torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1).contiguous()


def to_tensor(image) -> torch.Tensor:
    """PIL image, (h, w, 3) uint8/float array or (3, h, w) tensor -> float32 (3, h, w) in [0, 1]."""
    import torch

    if isinstance(image, torch.Tensor):
        t = image
        if t.dtype == torch.uint8:
            t = t.float() / 255.0
        return t.float()
    if isinstance(image, Image.Image):
        image = np.asarray(image.convert("RGB"))
    arr = np.asarray(image)
    if arr.ndim == 2:
        arr = arr[..., None].repeat(3, axis=2)
    if arr.dtype == np.uint8:
        arr = arr.astype(np.float32) / 255.0
    elif arr.dtype == np.uint16:
        arr = arr.astype(np.float32) / 65535.0
    return torch.from_numpy(np.ascontiguousarray(arr[..., :3], dtype=np.float32)).permute(2, 0, 1).contiguous()


def to_pil(image: torch.Tensor) -> Image.Image:
    """float (3, h, w) or (1, h, w) tensor in [0, 1] -> 8-bit PIL image (rounded, clamped)."""
    t = image.detach().float().clamp(0, 1).cpu()
    if t.ndim == 4:
        if t.shape[0] != 1:
            raise ValueError(f"to_pil takes one image, got a batch of {t.shape[0]}")
        t = t[0]
    arr = (t.permute(1, 2, 0).numpy() * 255.0 + 0.5).astype(np.uint8)
    if arr.shape[2] == 1:
        return Image.fromarray(arr[..., 0], mode="L")
    return Image.fromarray(arr, mode="RGB")


def save_image(image: torch.Tensor, path: str | os.PathLike) -> Path:
    """Save a (3, h, w) or (1, h, w) tensor in [0, 1] as an 8-bit image; parent folders are created.

    The file is written to a temporary name and renamed, so an interrupted save never leaves a
    half-written image under the final name.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = _SAVE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"{path}: cannot save an image with suffix {path.suffix or '(none)'!r}; "
                         f"use one of {', '.join(IMAGE_SUFFIXES)}")
    pil = to_pil(image)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        pil.save(tmp, format=fmt, **({"quality": 95} if fmt == "JPEG" else {}))
        os.replace(tmp, path)
    finally:  # interrupted or failed: leave neither a partial file nor the temporary one
        if tmp.exists():
            tmp.unlink()
    return path


_SAVE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".bmp": "BMP", ".tif": "TIFF", ".tiff": "TIFF",
                 ".webp": "WEBP"}
