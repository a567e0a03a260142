"""Decoding, encoding and resizing of images and masks (no Kedro needed).

Conventions used everywhere in the project:
- images are ``H x W x 3`` ``uint8`` arrays in RGB order;
- hard masks are ``H x W`` ``uint8`` arrays holding 0 or 255;
- soft masks (refined masks) are ``H x W`` ``uint8`` arrays in 0..255, read as probabilities / 255.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path, PurePosixPath

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from sewer_segmentation.errors import BadInputError
from sewer_segmentation.io.files import atomic_write_bytes

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")


def has_image_extension(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS)


def image_id_of(relative_path: str) -> str:
    """``sub/frame 1.jpg`` -> ``sub__frame 1``: the flat id every derived file of an image is named by."""
    path = PurePosixPath(relative_path)
    return "__".join([*path.parent.parts, path.stem])


def by_image_id(partitions) -> dict:
    """Partitions keyed by file name -> the same loaders keyed by image id (image files only)."""
    return {image_id_of(pid): load for pid, load in partitions.items() if has_image_extension(pid)}


#: Frames above this many pixels are refused (PIL's decompression-bomb limit): a CCTV frame is far
#: smaller, and decoding a 100-megapixel file per image would exhaust memory in a DataLoader worker.
MAX_PIXELS = Image.MAX_IMAGE_PIXELS or 89_478_485


def _decode_with_pil(data: bytes, source: str, mode: str) -> np.ndarray:
    """Decode fully (``load()``), so truncated files fail here instead of yielding grey bands."""
    if not data:
        raise BadInputError(f"{source}: empty file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # sizes are checked below
            with Image.open(io.BytesIO(data)) as img:
                width, height = img.size
                if width * height > MAX_PIXELS:
                    raise BadInputError(_too_large(source, width * height, f"{width}x{height} = "))
                img.load()
                # Phones and some CCTV exporters store frames sideways with an EXIF Orientation tag; labelling
                # tools (and browsers, where VIA runs) show them turned, so polygons and boxes are drawn turned.
                ImageOps.exif_transpose(img, in_place=True)
                return _to_mode(img, mode)
    except Image.DecompressionBombError as exc:  # over twice the limit: PIL refuses before we see the size
        raise BadInputError(_too_large(source, None, "")) from exc
    except UnidentifiedImageError as exc:
        raise BadInputError(f"{source}: unreadable image (not a JPEG, PNG or BMP file, or corrupt header)") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise BadInputError(f"{source}: unreadable or truncated image ({exc})") from exc


def _too_large(source: str, pixels: int | None, size: str) -> str:
    found = f" ({size}{pixels / 1e6:.0f} megapixels)" if pixels else ""
    return f"{source}: image too large{found}; the limit is {MAX_PIXELS / 1e6:.0f} megapixels. Downscale it first."


def _to_mode(img: Image.Image, mode: str) -> np.ndarray:
    """PIL image -> uint8 array in ``mode``; 16-bit and 32-bit grey frames are scaled down to 8 bits
    (PIL's own conversion clips them, turning a 16-bit frame all white). ``mode="max"``: one channel,
    the strongest of a colour image's channels (a grey image as it is)."""
    if mode == "max":
        if img.mode in ("L", "1", "F") or img.mode.startswith("I"):
            return _to_mode(img, "L")
        return np.asarray(img.convert("RGB")).max(axis=2)
    if img.mode.startswith("I") or img.mode == "F":
        values = np.asarray(img).astype(np.float64)
        top = 65535.0 if img.mode.startswith("I;16") or values.max(initial=0) > 255 else 255.0
        grey = np.clip(np.round(values / top * 255), 0, 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2) if mode == "RGB" else grey
    return np.asarray(img.convert(mode))


def decode_image(data: bytes, source: str = "<bytes>") -> np.ndarray:
    """Bytes of a JPEG/PNG/BMP file -> RGB uint8 array. Raises BadInputError naming ``source``."""
    return _decode_with_pil(data, source, "RGB")


def decode_mask(data: bytes, source: str = "<bytes>", threshold: int | None = 128) -> np.ndarray:
    """Bytes of a mask file -> uint8 mask.

    With ``threshold`` the mask is binarized to 0/255 (JPEG-compressed box masks hold values near, not
    at, 0 and 255) by its strongest channel, so a box drawn in colour (red on black, a palette PNG) is
    a box, not the dim grey its luminance would be; masks stored as 0/1 are read as such. With
    ``threshold=None`` the grey levels are kept (soft masks).
    """
    if threshold is None:
        return _decode_with_pil(data, source, "L")
    grey = _decode_with_pil(data, source, "max")
    if grey.max(initial=0) == 1:  # a 0/1 label image: 1 is foreground
        return (grey * 255).astype(np.uint8)
    return np.where(grey >= threshold, 255, 0).astype(np.uint8)


def read_file(path: str | Path, kind: str = "image", threshold: int = 128) -> np.ndarray:
    """An image file as ``ImageDataset`` of that ``kind`` loads it: ``image`` (RGB uint8), ``mask`` (0/255 at
    ``threshold``) or ``soft_mask`` (grey levels kept). Ray workers read frames by path with it."""
    data = Path(path).read_bytes()
    if kind == "image":
        return decode_image(data, str(path))
    return decode_mask(data, str(path), threshold if kind == "mask" else None)


def encode_image(array: np.ndarray, extension: str = ".png", quality: int = 95) -> bytes:
    """RGB image or single-channel mask -> encoded bytes (PNG is lossless; use it for masks)."""
    if array.ndim == 3 and array.shape[2] == 3:
        array = cv2.cvtColor(array, cv2.COLOR_RGB2BGR)
    params = [cv2.IMWRITE_JPEG_QUALITY, quality] if extension.lower() in (".jpg", ".jpeg") else []
    ok, buffer = cv2.imencode(extension, np.ascontiguousarray(array), params)
    if not ok:
        raise ValueError(f"could not encode an array of shape {array.shape} as {extension}")
    return buffer.tobytes()


def write_file(path: str | Path, array: np.ndarray) -> None:
    """An image or mask written as ``ImageDataset`` saves it: encoded by the path's extension (PNG when it
    has none), written atomically. Ray workers write masks with it, so both engines write the same bytes."""
    path = Path(path)
    atomic_write_bytes(path, encode_image(array, path.suffix or ".png"))


def resize_image(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Area interpolation when shrinking (no aliasing), linear when enlarging."""
    if image.shape[:2] == (height, width):
        return image
    shrinking = height * width < image.shape[0] * image.shape[1]
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)


def resize_mask(mask: np.ndarray, height: int, width: int) -> np.ndarray:
    """Linear interpolation keeps soft values soft; hard masks become soft only along edges."""
    if mask.shape[:2] == (height, width):
        return mask
    return cv2.resize(mask, (width, height), interpolation=cv2.INTER_LINEAR)


def to_uint8(values: np.ndarray) -> np.ndarray:
    """Values in [0, 1] (probabilities, soft masks, weights) -> uint8 0..255."""
    return np.round(np.clip(values, 0, 1) * 255).astype(np.uint8)


def binarize(mask: np.ndarray) -> np.ndarray:
    """A uint8 soft mask or probability map -> 0/255 mask, thresholded at half range (128)."""
    return np.where(mask >= 128, 255, 0).astype(np.uint8)


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two masks thresholded at half their range; two empty masks agree perfectly (1.0)."""
    a, b = a > 127, b > 127
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)
