#!/usr/bin/env python3
"""Goldens for crates/models/src/vision: transformers' ViT and CLIP image
processors (PIL backend) on three deterministic test images.

Run by hand with the reference environment (transformers 5, Pillow, numpy):

    ~/.cache/ipfs-accelerate/refenv/bin/python scripts/make-vision-goldens.py

Writes crates/models/tests/goldens/vision/:
  inputs   nonsquare.png (RGB 320x200), alpha.png (RGBA 150x180),
           photo.jpg (RGB 240x320, quality 90) and photo_pil.png (Pillow's
           decoding of photo.jpg, so the processor can be tested apart from
           the JPEG decoder, whose IDCT differs between libjpeg and zune-jpeg)
  outputs  <image>.<processor>.png (photo_pil.png has no outputs of its own:
           it must give the photo.* ones): the processor's pixel_values before
           rescale/normalize (uint8, exactly invertible: checked below), and
           goldens.json: the configs, shapes, per-channel sums and a sparse
           sample of the float32 pixel_values for every case.
Keeping the float tensors as 8-bit PNGs keeps the goldens a few hundred KB
while every pixel is still checked.
"""
import json
import os

import numpy as np
from PIL import Image, ImageDraw
import transformers
from transformers import CLIPImageProcessorPil, ViTImageProcessorPil

OUT = os.path.join(os.path.dirname(__file__), "..", "crates", "models", "tests", "goldens", "vision")


def make_inputs():
    # Non-square RGB: gradients plus hard edges and a fine checkerboard, so a
    # resampler that antialiases differently shows up.
    w, h = 320, 200
    y, x = np.mgrid[0:h, 0:w]
    rgb = np.stack([x * 255 // (w - 1), y * 255 // (h - 1), ((x + y) * 3) % 256], -1).astype(np.uint8)
    rgb[40:80, 40:200] = ((x[40:80, 40:200] // 2 + y[40:80, 40:200] // 2) % 2 * 255)[..., None]
    img = Image.fromarray(rgb, "RGB")
    d = ImageDraw.Draw(img)
    d.ellipse((180, 90, 300, 190), fill=(250, 30, 60))
    d.line((0, 199, 319, 0), fill=(0, 0, 255), width=3)
    img.save(os.path.join(OUT, "nonsquare.png"))

    # RGBA with a radial alpha ramp and coloured pixels under transparency:
    # dropping alpha and compositing over white differ everywhere.
    w, h = 150, 180
    y, x = np.mgrid[0:h, 0:w]
    r = np.sqrt((x - 75.0) ** 2 + (y - 90.0) ** 2)
    alpha = np.clip(255 - r * 2.5, 0, 255).astype(np.uint8)
    rgba = np.stack([(x * 7) % 256, (y * 5) % 256, 255 - (x + y) % 256, alpha], -1).astype(np.uint8)
    Image.fromarray(rgba, "RGBA").save(os.path.join(OUT, "alpha.png"))

    # JPEG: smooth gradients and a few shapes (what a photo compresses like).
    w, h = 240, 320
    y, x = np.mgrid[0:h, 0:w]
    rgb = np.stack([128 + 100 * np.sin(x / 17.0), 128 + 100 * np.cos(y / 23.0), (x + 2 * y) % 256], -1)
    img = Image.fromarray(rgb.astype(np.uint8), "RGB")
    d = ImageDraw.Draw(img)
    d.rectangle((30, 40, 120, 150), fill=(20, 200, 20))
    d.ellipse((100, 180, 220, 300), fill=(240, 240, 40))
    img.save(os.path.join(OUT, "photo.jpg"), quality=90)
    Image.open(os.path.join(OUT, "photo.jpg")).convert("RGB").save(os.path.join(OUT, "photo_pil.png"))


VIT = {
    "image_processor_type": "ViTImageProcessor",
    "do_resize": True,
    "size": {"height": 224, "width": 224},
    "resample": 2,
    "do_rescale": True,
    "rescale_factor": 1 / 255,
    "do_normalize": True,
    "image_mean": [0.5, 0.5, 0.5],
    "image_std": [0.5, 0.5, 0.5],
}
# openai/clip-vit-base-patch32's preprocessor_config.json.
CLIP = {
    "image_processor_type": "CLIPImageProcessor",
    "do_resize": True,
    "size": {"shortest_edge": 224},
    "resample": 3,
    "do_center_crop": True,
    "crop_size": {"height": 224, "width": 224},
    "do_rescale": True,
    "rescale_factor": 0.00392156862745098,
    "do_normalize": True,
    "image_mean": [0.48145466, 0.4578275, 0.40821073],
    "image_std": [0.26862954, 0.26130258, 0.27577711],
    "do_convert_rgb": True,
}


def run(name, image, processor_name, cls, config):
    kwargs = {k: v for k, v in config.items() if k != "image_processor_type"}
    proc = cls(**kwargs)
    pv = proc(images=image, return_tensors="np")["pixel_values"][0].astype(np.float32)
    mean = np.array(config["image_mean"], np.float32)[:, None, None]
    std = np.array(config["image_std"], np.float32)[:, None, None]
    u8 = np.rint((pv * std + mean) / np.float32(config["rescale_factor"])).clip(0, 255).astype(np.uint8)
    again = (((u8.astype(np.float64) * config["rescale_factor"]).astype(np.float32) - mean) / std).astype(np.float32)
    assert np.array_equal(again, pv), f"{name}/{processor_name}: uint8 round trip is not exact"
    out_png = f"{name}.{processor_name}.png"
    Image.fromarray(np.moveaxis(u8, 0, -1), "RGB").save(os.path.join(OUT, out_png))
    rng = np.random.default_rng(9)
    c, h, w = pv.shape
    idx = [(int(rng.integers(c)), int(rng.integers(h)), int(rng.integers(w))) for _ in range(48)]
    return {
        "image": name,
        "processor": processor_name,
        "pixels_png": out_png,
        "shape": list(pv.shape),
        "channel_sums": [float(pv[i].astype(np.float64).sum()) for i in range(c)],
        "sample": [[ci, yi, xi, float(pv[ci, yi, xi])] for ci, yi, xi in idx],
    }


def main():
    os.makedirs(OUT, exist_ok=True)
    make_inputs()
    cases = []
    for name, file in [("nonsquare", "nonsquare.png"), ("alpha", "alpha.png"), ("photo", "photo.jpg")]:
        image = Image.open(os.path.join(OUT, file))
        image.load()
        # ViT's processor has no do_convert_rgb: its pipeline's load_image
        # converts to RGB first, dropping alpha. CLIP composites over white.
        cases.append(run(name, image.convert("RGB"), "vit", ViTImageProcessorPil, VIT))
        cases.append(run(name, image, "clip", CLIPImageProcessorPil, CLIP))
    meta = {
        "generator": "scripts/make-vision-goldens.py",
        "transformers": transformers.__version__,
        "pillow": Image.__version__,
        "configs": {"vit": VIT, "clip": CLIP},
        "cases": cases,
    }
    with open(os.path.join(OUT, "goldens.json"), "w") as f:
        json.dump(meta, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
