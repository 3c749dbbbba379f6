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
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image

__all__ = ["ImageReadError", "read_image", "save_image", "IMAGE_SUFFIXES", "list_images", "to_tensor", "to_pil"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


class ImageReadError(ValueError):
    """An image file that cannot be used; the message names the file and the problem."""


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

    width, height, rows, info = png.Reader(filename=str(path)).asDirect()
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
    """
    path = Path(path)
    if not path.exists():
        raise ImageReadError(f"{path}: no such file")
    if not path.is_file():
        raise ImageReadError(f"{path}: is not a file")
    arr = _read_array(path)
    return torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1).contiguous()


def to_tensor(image) -> torch.Tensor:
    """PIL image, (h, w, 3) uint8/float array or (3, h, w) tensor -> float32 (3, h, w) in [0, 1]."""
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
    tmp = path.with_name(f".{path.name}.tmp")
    fmt = {".jpg": "JPEG", ".jpeg": "JPEG"}.get(path.suffix.lower(), None)
    pil = to_pil(image)
    if fmt == "JPEG":
        pil.save(tmp, format="JPEG", quality=95)
    else:
        pil.save(tmp, format=(path.suffix.lstrip(".").upper() or "PNG").replace("TIF", "TIFF").replace("TIFFF", "TIFF"))
    os.replace(tmp, path)
    return path
