#!/usr/bin/env python3
"""MLX-quantized checkpoints and their logits, made by mlx-lm itself, for
crates/rmlx-lm/tests/mlx_reference.rs.

For Llama (untied lm_head) and Qwen3 (tied embeddings, q_norm/k_norm) this builds a tiny random
model with mlx-lm's own model classes (float32; norms randomized around 1), quantizes it with
`mlx_lm.utils.quantize_model` (affine, 4 and 8 bits, group sizes 32 and 64: embeddings, every
projection and the lm_head), saves it with `save_model`/`save_config` as `mlx_lm.convert` does,
and runs the quantized model on a fixed token sequence. Each fixture directory holds
config.json, model.safetensors (+ index), tokens.json and logits.npy (float32 [T, vocab]).

Everything stays float32 (scales, biases, norms, activations), so the logits are MLX's
arithmetic alone: float activations times weights dequantized as scale·q + bias.

Run (Linux, CPU): pip install "mlx[cpu]" mlx-lm   (tested with mlx 0.32.4, mlx-lm 0.32.2)
                  python3 scripts/reference/mlx_quantized.py
"""
import json
import os
import sys
from pathlib import Path

import mlx.core as mx
import mlx.nn as nn
import numpy as np
from mlx.utils import tree_flatten, tree_map_with_path
from mlx_lm.utils import _get_classes, quantize_model, save_config, save_model

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "crates/rmlx-lm/tests/fixtures/mlx"
TOKENS = 16

COMMON = dict(vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
              num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
              rms_norm_eps=1e-5)
MODELS = {
    "llama": dict(COMMON, model_type="llama", architectures=["LlamaForCausalLM"],
                  head_dim=16, rope_theta=10000.0, tie_word_embeddings=False),
    "qwen3": dict(COMMON, model_type="qwen3", architectures=["Qwen3ForCausalLM"],
                  head_dim=32, rope_theta=1e6, tie_word_embeddings=True),
}
QUANTS = [(4, 32), (4, 64), (8, 32), (8, 64)]


def random_model(config, seed):
    """mlx-lm's model for `config`, float32, with random weights (norms around 1)."""
    model_cls, args_cls = _get_classes(config)
    model = model_cls(args_cls.from_dict(config))
    mx.random.seed(seed)

    def init(path, p):
        if "norm" in path:
            return 1.0 + 0.1 * mx.random.normal(p.shape)
        return 0.1 * mx.random.normal(p.shape)

    model.update(tree_map_with_path(init, model.parameters()))
    model.set_dtype(mx.float32)
    mx.eval(model.parameters())
    return model


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    for i, (arch, config) in enumerate(MODELS.items()):
        rng = np.random.default_rng(100 + i)
        tokens = [int(t) for t in rng.integers(0, config["vocab_size"], size=TOKENS)]
        for bits, group in QUANTS:
            model = random_model(config, seed=10 + i)
            model, qconfig = quantize_model(model, dict(config), group_size=group, bits=bits)
            quantized = [k for k, v in tree_flatten(model.parameters()) if k.endswith(".scales")]
            assert any("embed_tokens" in k for k in quantized), "embeddings not quantized"
            assert all(v.dtype == mx.float32 for _, v in tree_flatten(model.parameters())
                       if v.dtype != mx.uint32), "not float32 throughout"
            d = OUT / f"{arch}-{bits}bit-g{group}"
            save_model(d, model)
            save_config(qconfig, d / "config.json")
            logits = model(mx.array([tokens]))[0].astype(mx.float32)
            np.save(d / "logits.npy", np.array(logits))
            with open(d / "tokens.json", "w") as f:
                json.dump(tokens, f)
            print(d.relative_to(ROOT), len(quantized), "quantized layers,",
                  "logits", logits.shape, float(mx.abs(logits).mean()))


if __name__ == "__main__":
    sys.exit(main())
