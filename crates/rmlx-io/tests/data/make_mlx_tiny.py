#!/usr/bin/env python3
"""Writes mlx_tiny/: a tiny MLX-quantized checkpoint (as mlx_lm saves one) for rmlx-io's tests.

Needs `pip install "mlx[cpu]"`. Layers: affine 4-bit g64 (model default), an 8-bit g32 override,
an MLX mxfp4 layer with 3-D (experts) weights, and a plain bf16 norm. Also checks the fact the
loader relies on: MLX mxfp4 u32 weights hold exactly Hugging Face MXFP4 block bytes (low nibble
= even element, LUT below, scale 2^(s-127)).
"""
import json, os
import numpy as np
import mlx.core as mx

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "mlx_tiny")
os.makedirs(out, exist_ok=True)
mx.random.seed(0)
t = {}
for name, shape, gs, bits, mode in [
    ("model.embed_tokens", (16, 128), 64, 4, "affine"),
    ("model.layers.0.mlp.down_proj", (8, 64), 32, 8, "affine"),
    ("model.layers.0.mlp.experts", (2, 8, 64), 32, 4, "mxfp4"),
]:
    w = mx.random.normal(shape).astype(mx.bfloat16)
    q = mx.quantize(w, group_size=gs, bits=bits, mode=mode)
    t[name + ".weight"], t[name + ".scales"] = q[0], q[1]
    if mode == "affine":
        t[name + ".biases"] = q[2]
    else:
        ref = np.array(mx.dequantize(*q, group_size=gs, bits=bits, mode=mode).astype(mx.float32))
        b = np.array(q[0]).view(np.uint8).reshape(*shape[:-1], shape[-1] // 32, 16)
        s = np.array(q[1]).astype(np.int32)
        lut = np.array([0, .5, 1, 1.5, 2, 3, 4, 6, -0., -.5, -1, -1.5, -2, -3, -4, -6], np.float32)
        v = np.stack([lut[b & 15], lut[b >> 4]], -1).reshape(*b.shape[:-1], 32)
        v = (v * 2.0 ** (s - 127)[..., None]).reshape(shape)
        assert np.array_equal(v, ref), "MLX mxfp4 bytes differ from the HF MXFP4 layout"
t["model.norm.weight"] = mx.ones((128,)).astype(mx.bfloat16)
mx.save_safetensors(os.path.join(out, "model.safetensors"), t, metadata={"format": "mlx"})
quant = {"group_size": 64, "bits": 4, "mode": "affine",
         "model.layers.0.mlp.down_proj": {"group_size": 32, "bits": 8},
         "model.layers.0.mlp.experts": {"group_size": 32, "bits": 4, "mode": "mxfp4"}}
cfg = {"model_type": "llama", "quantization": quant, "quantization_config": quant}
with open(os.path.join(out, "config.json"), "w") as f:
    json.dump(cfg, f, indent=2)
print({k: (v.dtype, v.shape) for k, v in t.items()})
