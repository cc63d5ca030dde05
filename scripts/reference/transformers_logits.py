#!/usr/bin/env python3
"""Reference logits from Hugging Face transformers (float32, eager attention) for tiny random
checkpoints, committed as fixtures under crates/rmlx-lm/tests/fixtures/.

  make-llama ROOT [--seed S]   write tiny random Llama / Llama-3 / Qwen2 / Qwen3 / Mistral
                               checkpoints with transformers itself (needs torch)
  make-gpt-oss ROOT TOOL       write tiny gpt-oss checkpoints with the shared
                               make_gpt_oss_checkpoint.py (only numpy)
  logits ROOT                  for every ROOT/*/config.json: run transformers on tokens.json and
                               write logits.npy (float32 [T, vocab]); for gpt-oss also the
                               dequantized experts of layer 0 (experts_l0_*.npy)

Runs where torch and transformers are installed (the H100 machine has both); CPU is enough.
"""
import json, os, subprocess, sys

import numpy as np


def tokens_for(vocab, n, seed):
    rng = np.random.default_rng(seed)
    return [int(t) for t in rng.integers(0, vocab, size=n)]


LLAMA_COMMON = dict(vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                    num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                    rms_norm_eps=1e-5, initializer_range=0.1)


def make_llama(root, seed):
    import torch
    from transformers import (LlamaConfig, LlamaForCausalLM, MistralConfig, MistralForCausalLM,
                              Qwen2Config, Qwen2ForCausalLM, Qwen3Config, Qwen3ForCausalLM)
    variants = {
        "llama": (LlamaConfig, LlamaForCausalLM, dict(tie_word_embeddings=True), 10000.0, None),
        "llama3": (LlamaConfig, LlamaForCausalLM, dict(tie_word_embeddings=False), 500000.0,
                   {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                    "high_freq_factor": 4.0, "original_max_position_embeddings": 16}),
        "qwen2": (Qwen2Config, Qwen2ForCausalLM, dict(tie_word_embeddings=False), 1e6, None),
        "qwen3": (Qwen3Config, Qwen3ForCausalLM, dict(tie_word_embeddings=True, head_dim=32), 1e6, None),
        "mistral": (MistralConfig, MistralForCausalLM, dict(sliding_window=8, tie_word_embeddings=False), 1e4, None),
    }
    for i, (name, (cfg_cls, model_cls, extra, theta, scaling)) in enumerate(variants.items()):
        torch.manual_seed(seed + i)
        kw = dict(LLAMA_COMMON, **extra)
        cfg = cfg_cls(**kw)
        rope = {"rope_type": "default", "rope_theta": theta}
        if scaling:
            rope.update(scaling)
        if hasattr(cfg, "rope_parameters"):      # transformers 5.x
            cfg.rope_parameters = rope
        else:                                     # transformers 4.x
            cfg.rope_theta = theta
            cfg.rope_scaling = scaling
        if name == "qwen2":
            cfg.use_sliding_window = False
        model = model_cls(cfg).float().eval()
        with torch.no_grad():  # norms at 1 are too easy: randomize them around 1
            for n, p in model.named_parameters():
                if "norm" in n:
                    p.copy_(1.0 + 0.1 * torch.randn_like(p))
                if n.endswith("bias"):
                    p.copy_(0.1 * torch.randn_like(p))
        out = os.path.join(root, name)
        model.save_pretrained(out)
        with open(os.path.join(out, "tokens.json"), "w") as f:
            json.dump(tokens_for(cfg.vocab_size, 24, seed + 100 + i), f)
        print("wrote", out)


GPT_OSS_VARIANTS = {
    # sliding window shorter than the sequence, GQA 2, top-2 of 4 experts, sharded files
    "gpt_oss_tiny_sharded": ["--preset", "tiny", "--shard-gb", "0.00006"],
    # GQA 3, top-2 of 2 experts, window 3, three layers, one file
    "gpt_oss_gqa3": ["--preset", "tiny", "--single-file", "--heads", "6", "--kv-heads", "2",
                     "--experts", "2", "--top-k", "2", "--sliding-window", "3", "--layers", "3"],
    # no GQA, head_dim 32, top-3 of 5 experts, window 6
    "gpt_oss_wide": ["--preset", "tiny", "--single-file", "--heads", "4", "--kv-heads", "4",
                     "--head-dim", "32", "--hidden", "96", "--intermediate", "32", "--experts", "5",
                     "--top-k", "3", "--sliding-window", "6"],
    # expert rows of 9 and 10 MXFP4 blocks (hidden 288, intermediate 320): the CPU kernels'
    # runs of 8 blocks plus lone blocks, which the narrower checkpoints never reach
    "gpt_oss_long_rows": ["--preset", "tiny", "--single-file", "--heads", "4", "--kv-heads", "2",
                          "--head-dim", "32", "--hidden", "288", "--intermediate", "320",
                          "--experts", "3", "--top-k", "2", "--sliding-window", "5"],
}


def make_gpt_oss(root, tool, seed):
    for i, (name, args) in enumerate(GPT_OSS_VARIANTS.items()):
        out = os.path.join(root, name)
        subprocess.run([sys.executable, tool, out, "--seed", str(seed + i), "--threads", "1"] + args, check=True)
        cfg = json.load(open(os.path.join(out, "config.json")))
        with open(os.path.join(out, "tokens.json"), "w") as f:
            json.dump(tokens_for(cfg["vocab_size"], 20, seed + 200 + i), f)


def logits(root):
    import torch
    from transformers import AutoModelForCausalLM
    torch.set_grad_enabled(False)
    for name in sorted(os.listdir(root)):
        d = os.path.join(root, name)
        if not os.path.exists(os.path.join(d, "config.json")):
            continue
        cfg = json.load(open(os.path.join(d, "config.json")))
        kw = dict(dtype=torch.float32, attn_implementation="eager")
        if cfg.get("model_type") == "gpt_oss":
            from transformers import Mxfp4Config
            kw["quantization_config"] = Mxfp4Config(dequantize=True)
        model = AutoModelForCausalLM.from_pretrained(d, device_map="cpu", **kw)
        if cfg.get("model_type") == "gpt_oss":
            e = model.model.layers[0].mlp.experts
            # Dequantized as transformers does it (bf16), before .float(): our MXFP4 oracle.
            np.save(os.path.join(d, "experts_l0_gate_up_proj.npy"), e.gate_up_proj.detach().float().numpy())
            np.save(os.path.join(d, "experts_l0_down_proj.npy"), e.down_proj.detach().float().numpy())
        # transformers dequantizes MXFP4 experts to bf16 even when asked for float32: cast all.
        model = model.float().eval()
        toks = json.load(open(os.path.join(d, "tokens.json")))
        out = model(torch.tensor([toks])).logits[0].float().numpy()
        np.save(os.path.join(d, "logits.npy"), out.astype(np.float32))
        print(name, out.shape, float(np.abs(out).mean()))


if __name__ == "__main__":
    cmd = sys.argv[1]
    seed = int(os.environ.get("SEED", "0"))
    if cmd == "make-llama":
        make_llama(sys.argv[2], seed)
    elif cmd == "make-gpt-oss":
        make_gpt_oss(sys.argv[2], sys.argv[3], seed)
    elif cmd == "logits":
        logits(sys.argv[2])
    else:
        sys.exit(__doc__)
