"""Real calibration and evaluation inputs for the model zoo: photos, written text, text drawn onto photos.

Calibration and evaluation never share a source: each split has its own photos (scikit-image and
scikit-learn sample images) and its own half of ``data/sentences.txt``. Views are crops, flips and
scales drawn from a seeded generator, so a rebuild gives the same arrays.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

SENTENCES = Path(__file__).resolve().parent / "data" / "sentences.txt"
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)

#: Distinct photos per split (grey ones are repeated into three channels).
PHOTOS = {
    "calib": ("astronaut", "rocket", "motorcycle_left", "hubble_deep_field", "camera", "coins", "brick", "china"),
    "eval": ("coffee", "chelsea", "motorcycle_right", "retina", "immunohistochemistry", "moon", "gravel", "flower"),
}


def _photo(name: str) -> np.ndarray:
    import skimage.data
    from sklearn.datasets import load_sample_image

    if name in ("china", "flower"):
        image = load_sample_image(f"{name}.jpg")
    elif name.startswith("motorcycle_"):
        left, right, _ = skimage.data.stereo_motorcycle()
        image = left if name.endswith("left") else right
    else:
        image = getattr(skimage.data, name)()
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    return np.ascontiguousarray(image[..., :3])


def photos(split: str) -> list[np.ndarray]:
    """The split's photos as RGB uint8 arrays."""
    return [_photo(name) for name in PHOTOS[split]]


def sentences(split: str) -> list[str]:
    """Half of the written sentences: the first half calibrates, the second evaluates."""
    lines = [line.strip() for line in SENTENCES.read_text(encoding="utf-8").splitlines()]
    lines = [line for line in lines if line and not line.startswith("#")]
    half = len(lines) // 2
    return lines[:half] if split == "calib" else lines[half:]


def views(images: list[np.ndarray], count: int, size: tuple[int, int], seed: int) -> np.ndarray:
    """``count`` crops (35-100% of the short side), some flipped, resized to ``size`` (H, W): [N, H, W, 3] uint8."""
    rng = np.random.default_rng(seed)
    out = np.empty((count, size[0], size[1], 3), np.uint8)
    for i in range(count):
        image = images[i % len(images)]
        h, w = image.shape[:2]
        side = int(min(h, w) * rng.uniform(0.35, 1.0))
        aspect = size[1] / size[0]
        ch, cw = min(h, side), min(w, int(side * aspect))
        top, left = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
        crop = image[top : top + ch, left : left + cw]
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        out[i] = np.asarray(Image.fromarray(np.ascontiguousarray(crop)).resize((size[1], size[0]), Image.BILINEAR))
    return out


def imagenet_nchw(images: np.ndarray) -> np.ndarray:
    """[N, H, W, 3] uint8 RGB -> ImageNet-normalised float32 NCHW."""
    x = (images.astype(np.float32) / 255.0 - IMAGENET_MEAN) / IMAGENET_STD
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def _font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)


def text_scenes(split: str, count: int, size: tuple[int, int], seed: int) -> np.ndarray:
    """Photos with 2-5 lines of the split's sentences drawn on them, as signs and captions are: [N, H, W, 3] uint8."""
    rng = np.random.default_rng(seed)
    backgrounds = views(photos(split), count, size, seed)
    lines = sentences(split)
    out = np.empty_like(backgrounds)
    for i, background in enumerate(backgrounds):
        image = Image.fromarray(background)
        draw = ImageDraw.Draw(image)
        for _ in range(int(rng.integers(2, 6))):
            words = lines[int(rng.integers(len(lines)))].split()
            start = int(rng.integers(0, max(1, len(words) - 3)))
            text = " ".join(words[start : start + int(rng.integers(2, 6))])
            font = _font(int(rng.integers(size[0] // 28, size[0] // 11)))
            x0, y0 = int(rng.integers(0, size[1] // 3)), int(rng.integers(0, size[0] - size[0] // 10))
            box = draw.textbbox((x0, y0), text, font=font)
            luminance = float(np.asarray(image.crop(box)).mean()) if box[2] > box[0] and box[3] > box[1] else 128.0
            if rng.random() < 0.4:  # a plate behind the text, as on a sign
                pad = font.size // 4
                plate = (245, 245, 235) if luminance < 128 else (30, 30, 40)
                draw.rectangle((box[0] - pad, box[1] - pad, box[2] + pad, box[3] + pad), fill=plate)
                luminance = 255 - luminance
            ink = (20, 20, 20) if luminance > 128 else (250, 250, 245)
            draw.text((x0, y0), text, font=font, fill=ink)
        out[i] = np.asarray(image)
    return out


def text_lines(split: str, count: int, height: int, width: int, seed: int) -> tuple[np.ndarray, list[str]]:
    """Cropped single text lines (a few words of a sentence) on photo-tinted paper, resized to ``height`` and
    left-aligned in ``width`` as an OCR recogniser expects: ([N, height, width, 3] uint8, texts).

    Columns past the text hold -1, the marker for "padding" that the caller normalises to zero."""
    rng = np.random.default_rng(seed)
    tints = views(photos(split), count, (8, 8), seed)
    lines = sentences(split)
    out = np.full((count, height, width, 3), -1, np.int16)
    texts: list[str] = []
    for i in range(count):
        words = lines[int(rng.integers(len(lines)))].split()
        start = int(rng.integers(0, max(1, len(words) - 2)))
        text = " ".join(words[start : start + int(rng.integers(1, 5))])
        font = _font(40)
        paper = tuple(int(v) for v in 200 + tints[i].reshape(-1, 3).mean(0) * 55 / 255)
        ink = tuple(int(v) for v in rng.integers(0, 70, 3))
        probe = ImageDraw.Draw(Image.new("RGB", (1, 1))).textbbox((0, 0), text, font=font)
        canvas = Image.new("RGB", (probe[2] + 16, probe[3] + 12), paper)
        ImageDraw.Draw(canvas).text((8, 4), text, font=font, fill=ink)
        new_w = min(width, max(1, round(canvas.width * height / canvas.height)))
        out[i, :, :new_w] = np.asarray(canvas.resize((new_w, height), Image.BILINEAR))
        texts.append(text)
    return out, texts
