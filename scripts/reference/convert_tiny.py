#!/usr/bin/env python3
"""Re-encode a tiny Hugging Face Llama/Qwen checkpoint (made by transformers_logits.py) in the
other formats rmlx loads, so tests can check that every format of the same weights gives the
same logits:

  gguf   ROOT/NAME  -> ROOT/NAME-gguf/model.gguf      F32 tensors, llama.cpp names, q/k rows
                                                      permuted as convert_hf_to_gguf.py does
  q8     ROOT/NAME  -> ROOT/NAME-q8/model.gguf        Q8_0 matrices (gguf package quantizer),
                                                      and ROOT/NAME-q8-deq/ (HF, dequantized
                                                      by the gguf package) for transformers
  mlx4   ROOT/NAME  -> ROOT/NAME-mlx4/                MLX affine 4-bit, group 32 (packing as
                                                      mlx.core.quantize), and ROOT/NAME-mlx4-deq/

The *-deq directories get reference logits from transformers (transformers_logits.py logits).
Needs numpy and gguf==0.19.0 (no torch).
"""
import json, os, shutil, struct, sys

import numpy as np
import gguf


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        assert info["dtype"] == "F32", (name, info["dtype"])
        a, b = info["data_offsets"]
        out[name] = np.frombuffer(data[a:b], dtype=np.float32).reshape(info["shape"]).copy()
    return out


def write_safetensors(path, tensors):
    header, blobs, off = {}, [], 0
    for name, arr in tensors.items():
        arr = np.ascontiguousarray(arr)
        dt = {np.float32: "F32", np.uint32: "U32"}[arr.dtype.type]
        header[name] = {"dtype": dt, "shape": list(arr.shape), "data_offsets": [off, off + arr.nbytes]}
        blobs.append(arr.tobytes())
        off += arr.nbytes
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def permute(w, n_head, n_head_kv):
    """convert_hf_to_gguf.py's LlamaModel.permute (for llama's interleaved rope)."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


GGUF_NAMES = {"input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm",
              "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
              "self_attn.o_proj": "attn_output", "self_attn.q_norm": "attn_q_norm",
              "self_attn.k_norm": "attn_k_norm", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
              "mlp.down_proj": "ffn_down"}


def gguf_name(hf):
    fixed = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
             "lm_head.weight": "output.weight"}
    if hf in fixed:
        return fixed[hf]
    rest = hf[len("model.layers."):]
    layer, leaf = rest.split(".", 1)
    module, kind = leaf.rsplit(".", 1)
    return f"blk.{layer}.{GGUF_NAMES[module]}.{kind}"


def to_gguf(src, dst_file, qtype):
    cfg = json.load(open(os.path.join(src, "config.json")))
    t = read_safetensors(os.path.join(src, "model.safetensors"))
    arch = cfg["model_type"]
    rope = cfg.get("rope_parameters") or {"rope_theta": cfg.get("rope_theta", 10000.0)}
    assert rope.get("rope_type", "default") == "default", "GGUF conversion here handles plain rope only"
    w = gguf.GGUFWriter(dst_file, arch)
    nh, nkv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    w.add_context_length(cfg["max_position_embeddings"])
    w.add_embedding_length(cfg["hidden_size"])
    w.add_block_count(cfg["num_hidden_layers"])
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_head_count(nh)
    w.add_head_count_kv(nkv)
    w.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
    w.add_rope_freq_base(rope["rope_theta"])
    w.add_key_length(cfg.get("head_dim") or cfg["hidden_size"] // nh)
    w.add_vocab_size(cfg["vocab_size"])
    deq = {}
    for name, arr in t.items():
        if arch == "llama" and name.endswith("q_proj.weight"):
            arr = permute(arr, nh, nh)
        if arch == "llama" and name.endswith("k_proj.weight"):
            arr = permute(arr, nh, nkv)
        if qtype is not None and arr.ndim == 2:
            q = gguf.quants.quantize(arr, qtype)
            w.add_tensor(gguf_name(name), q, raw_dtype=qtype)
            back = gguf.quants.dequantize(q, qtype).reshape(arr.shape).astype(np.float32)
        else:
            w.add_tensor(gguf_name(name), arr)
            back = arr
        # Undo the permutation for the HF-layout reference copy.
        if arch == "llama" and name.endswith(("q_proj.weight", "k_proj.weight")):
            n = nh if name.endswith("q_proj.weight") else nkv
            back = back.reshape(n, back.shape[0] // n // 2, 2, *back.shape[1:]).swapaxes(1, 2).reshape(back.shape)
        deq[name] = back
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return cfg, deq


def mlx_affine(w, bits=4, group=32):
    """mlx.core.quantize (affine): per group scale = (max - min) / (2^bits - 1), bias = min,
    q = round((w - bias) / scale); values packed little-endian into u32, first element lowest."""
    rows, cols = w.shape
    g = w.reshape(rows, cols // group, group)
    wmin, wmax = g.min(-1, keepdims=True), g.max(-1, keepdims=True)
    n = 2 ** bits - 1
    scale = np.maximum((wmax - wmin) / n, 1e-8)
    q = np.clip(np.round((g - wmin) / scale), 0, n).astype(np.uint32).reshape(rows, cols)
    per = 32 // bits
    packed = np.zeros((rows, cols // per), dtype=np.uint32)
    for i in range(per):
        packed |= q[:, i::per] << (bits * i)
    deq = (q.reshape(rows, cols // group, group) * scale + wmin).reshape(rows, cols).astype(np.float32)
    return packed, scale[..., 0].astype(np.float32), wmin[..., 0].astype(np.float32), deq


def to_mlx4(src, dst):
    cfg = json.load(open(os.path.join(src, "config.json")))
    t = read_safetensors(os.path.join(src, "model.safetensors"))
    out, deq = {}, {}
    for name, arr in t.items():
        if arr.ndim == 2 and name.endswith(".weight"):
            p, s, b, d = mlx_affine(arr)
            base = name[: -len(".weight")]
            out[name], out[base + ".scales"], out[base + ".biases"] = p, s, b
            deq[name] = d
        else:
            out[name] = deq[name] = arr
    os.makedirs(dst, exist_ok=True)
    write_safetensors(os.path.join(dst, "model.safetensors"), out)
    qcfg = dict(cfg, quantization={"group_size": 32, "bits": 4})
    json.dump(qcfg, open(os.path.join(dst, "config.json"), "w"), indent=2)
    return cfg, deq


def write_deq(src, dst, cfg, deq):
    os.makedirs(dst, exist_ok=True)
    write_safetensors(os.path.join(dst, "model.safetensors"), deq)
    json.dump(cfg, open(os.path.join(dst, "config.json"), "w"), indent=2)
    shutil.copy(os.path.join(src, "tokens.json"), dst)


if __name__ == "__main__":
    mode, src = sys.argv[1], sys.argv[2].rstrip("/")
    if mode == "gguf":
        os.makedirs(src + "-gguf", exist_ok=True)
        to_gguf(src, os.path.join(src + "-gguf", "model.gguf"), None)
        shutil.copy(os.path.join(src, "tokens.json"), src + "-gguf")
    elif mode == "q8":
        os.makedirs(src + "-q8", exist_ok=True)
        cfg, deq = to_gguf(src, os.path.join(src + "-q8", "model.gguf"), gguf.GGMLQuantizationType.Q8_0)
        shutil.copy(os.path.join(src, "tokens.json"), src + "-q8")
        write_deq(src, src + "-q8-deq", cfg, deq)
    elif mode == "mlx4":
        cfg, deq = to_mlx4(src, src + "-mlx4")
        shutil.copy(os.path.join(src, "tokens.json"), src + "-mlx4")
        write_deq(src, src + "-mlx4-deq", cfg, deq)
    else:
        sys.exit(__doc__)
