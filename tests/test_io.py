"""Image reading: the documented conversions, and errors that name the file."""

import numpy as np
import pytest
import torch
from PIL import Image

from cliphaze.io import ImageReadError, read_image, save_image


def test_rgb8_roundtrip(tmp_path):
    arr = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    Image.fromarray(arr).save(tmp_path / "a.png")
    t = read_image(tmp_path / "a.png")
    assert t.shape == (3, 5, 7) and t.dtype == torch.float32
    torch.testing.assert_close(t, torch.from_numpy(arr).permute(2, 0, 1).float() / 255)
    save_image(t, tmp_path / "b.png")
    assert np.array_equal(np.asarray(Image.open(tmp_path / "b.png")), arr)


def test_grayscale_is_replicated(tmp_path):
    Image.fromarray(np.full((4, 4), 128, np.uint8), mode="L").save(tmp_path / "g.png")
    t = read_image(tmp_path / "g.png")
    assert t.shape == (3, 4, 4)
    assert torch.allclose(t, torch.full_like(t, 128 / 255))


def test_gray16_keeps_precision(tmp_path):
    arr = np.array([[0, 1000], [40000, 65535]], dtype=np.uint16)
    Image.fromarray(arr).save(tmp_path / "g16.png")
    t = read_image(tmp_path / "g16.png")
    torch.testing.assert_close(t[0], torch.from_numpy(arr.astype(np.float32) / 65535))


def _write_png16(path, arr):
    """A 16-bit colour PNG written by the spec (Pillow cannot write one)."""
    import png

    h, w, c = arr.shape
    png.Writer(w, h, bitdepth=16, greyscale=False, alpha=c == 4).write(open(path, "wb"), arr.reshape(h, w * c).tolist())


def test_rgb16_keeps_precision(tmp_path):
    arr = np.random.default_rng(1).integers(0, 65536, (3, 4, 3)).astype(np.uint16)
    _write_png16(tmp_path / "c16.png", arr)
    t = read_image(tmp_path / "c16.png")
    torch.testing.assert_close(t, torch.from_numpy(arr.astype(np.float32) / 65535).permute(2, 0, 1))


def test_rgba16_with_transparency_refused(tmp_path):
    arr = np.full((2, 2, 4), 65535, np.uint16)
    arr[0, 0, 3] = 0
    _write_png16(tmp_path / "t16.png", arr)
    with pytest.raises(ImageReadError, match=r"t16\.png.*transparent"):
        read_image(tmp_path / "t16.png")


def test_opaque_rgba_drops_alpha_transparent_rgba_refused(tmp_path):
    arr = np.zeros((3, 3, 4), np.uint8)
    arr[..., 0] = 200
    arr[..., 3] = 255
    Image.fromarray(arr, mode="RGBA").save(tmp_path / "opaque.png")
    assert torch.allclose(read_image(tmp_path / "opaque.png")[0], torch.full((3, 3), 200 / 255))
    arr[0, 0, 3] = 10
    Image.fromarray(arr, mode="RGBA").save(tmp_path / "alpha.png")
    with pytest.raises(ImageReadError, match=r"alpha\.png.*transparent"):
        read_image(tmp_path / "alpha.png")


def test_corrupt_and_missing_files_name_the_file(tmp_path):
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    with pytest.raises(ImageReadError, match=r"broken\.png"):
        read_image(tmp_path / "broken.png")
    with pytest.raises(ImageReadError, match=r"nothere\.jpg: no such file"):
        read_image(tmp_path / "nothere.jpg")
    (tmp_path / "notes.jpg").write_text("hello")
    with pytest.raises(ImageReadError, match=r"notes\.jpg"):
        read_image(tmp_path / "notes.jpg")


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_matches_pillow(tmp_path, orientation):
    """Every EXIF orientation gives the image as viewers show it (reference: ImageOps.exif_transpose)."""
    from PIL import ImageOps

    from cliphaze.io import apply_orientation

    arr = np.random.default_rng(orientation).integers(0, 256, (4, 6, 3), dtype=np.uint8)
    im = Image.fromarray(arr)
    exif = im.getexif()
    exif[0x0112] = orientation
    im.save(tmp_path / "o.png", exif=exif.tobytes())
    with Image.open(tmp_path / "o.png") as reopened:
        expected = np.asarray(ImageOps.exif_transpose(reopened).convert("RGB"))
    assert np.array_equal(apply_orientation(arr, orientation), expected)
    t = read_image(tmp_path / "o.png")
    torch.testing.assert_close(t, torch.from_numpy(expected.copy()).permute(2, 0, 1).float() / 255)


def test_animated_image_gives_first_frame_with_a_warning(tmp_path):
    from cliphaze.io import AnimatedImageWarning

    frames = [Image.fromarray(np.full((4, 5, 3), v, np.uint8)) for v in (10, 200)]
    frames[0].save(tmp_path / "a.webp", save_all=True, append_images=frames[1:], lossless=True)
    with pytest.warns(AnimatedImageWarning, match=r"a\.webp: animated image with 2 frames"):
        t = read_image(tmp_path / "a.webp")
    assert torch.allclose(t, torch.full_like(t, 10 / 255))


def test_save_image_refuses_unknown_suffix_and_leaves_nothing(tmp_path):
    with pytest.raises(ValueError, match=r"photo\.foo.*suffix"):
        save_image(torch.rand(3, 4, 4), tmp_path / "photo.foo")
    assert list(tmp_path.iterdir()) == []
