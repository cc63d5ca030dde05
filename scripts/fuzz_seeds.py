#!/usr/bin/env python3
"""Writes the hand-made seed inputs (seed_*) of the fuzz targets under crates/rmlx-fuzz/corpus/.

Seeds are small valid (and a few nearly valid) inputs in each target's input format, so the
fuzzers start deep inside the parsers. Formats (see crates/rmlx-fuzz/src): text files joined by
NUL bytes, or length-prefixed binary files (safetensors_index); model_config and tokenizer_text
start with a selector byte; gguf_vocab is structured (`arbitrary`). Inputs the fuzzers found
(found_*, crash_*) are added by hand next to these. Run from anywhere: python3 scripts/fuzz_seeds.py
"""
import json
import os
import random
import struct

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
CORPUS = os.path.join(ROOT, "crates/rmlx-fuzz/corpus")
FIX = os.path.join(ROOT, "crates/rmlx-lm/tests/fixtures")


def write(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, "seed_" + name), "wb") as f:
        f.write(data)


def join(*parts):
    return b"\0".join(p.encode() if isinstance(p, str) else p for p in parts)


def read(rel, mode="r"):
    with open(os.path.join(FIX, rel), mode) as f:
        return f.read()


def safetensors(tensors):
    """tensors: [(name, dtype, shape, bytes)] -> file bytes (data 8-byte aligned)."""
    header, data = {}, b""
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    h = json.dumps(header).encode()
    h += b" " * (-(8 + len(h)) % 8)
    return struct.pack("<Q", len(h)) + h + data


def prefixed(*parts, fields=5):
    """`fields` length-prefixed fields (u32 LE), the last one unprefixed: split::prefixed."""
    parts = [p.encode() if isinstance(p, str) else p for p in parts]
    parts += [b""] * (fields - len(parts))
    return b"".join(struct.pack("<I", len(p)) + p for p in parts[:-1]) + parts[-1]


def index(weight_map):
    return json.dumps({"metadata": {"total_size": 0}, "weight_map": weight_map})


def safetensors_index():
    a = safetensors([("x.weight", "F32", [2, 2], bytes(16)), ("x.bias", "F16", [2], bytes(4))])
    b = safetensors([("y", "BF16", [3], bytes(6))])
    both = {"x.weight": "a.safetensors", "x.bias": "a.safetensors", "y": "b.safetensors"}
    write("safetensors_index", "two_shards", prefixed(index(both), "", a, b))
    write("safetensors_index", "missing_shard", prefixed(index({**both, "z": "c.safetensors"}), "", a, b))
    write("safetensors_index", "wrong_shard", prefixed(index({"y": "a.safetensors"}), "", a, b))
    write("safetensors_index", "outside_dir", prefixed(index({"y": "../b.safetensors"}), "", a, b))
    write("safetensors_index", "duplicate", prefixed(index({"y": "b.safetensors", "x.bias": "c.safetensors"}), "", a, b, b))
    # MLX affine 4-bit, group 32: (N=2, K=64) packed as u32 (2, 8), f16 scales/biases (2, 2).
    q = safetensors([("l.weight", "U32", [2, 8], bytes(64)), ("l.scales", "F16", [2, 2], bytes(8))])
    r = safetensors([("l.biases", "F16", [2, 2], bytes(8))])
    cfg = json.dumps({"model_type": "llama", "quantization": {"group_size": 32, "bits": 4}})
    m = {"l.weight": "a.safetensors", "l.scales": "a.safetensors", "l.biases": "b.safetensors"}
    write("safetensors_index", "mlx_affine", prefixed(index(m), cfg, q, r))
    cfg8 = json.dumps({"quantization": {"group_size": 64, "bits": 8, "l": {"group_size": 32, "bits": 4}}})
    write("safetensors_index", "mlx_per_layer", prefixed(index(m), cfg8, q, r))
    # MXFP4 experts (E=1, N=2, K=32): blocks (1, 2, 1, 16), E8M0 scales (1, 2, 1).
    e = safetensors([("e.gate_up_proj_blocks", "U8", [1, 2, 1, 16], bytes(32)),
                     ("e.gate_up_proj_scales", "U8", [1, 2, 1], bytes([127, 127]))])
    cfgx = json.dumps({"quantization_config": {"quant_method": "mxfp4"}})
    mx = {"e.gate_up_proj_blocks": "a.safetensors", "e.gate_up_proj_scales": "a.safetensors"}
    write("safetensors_index", "mxfp4", prefixed(index(mx), cfgx, e))


# Weight sets of the model_config target, in the order of model_config::WEIGHTS (the last two
# are GGUF files, whose input is a JSON object of metadata edits).
WEIGHTS = ["hf/llama", "hf/llama3", "hf/mistral", "hf/qwen2", "hf/qwen3", "hf/gpt_oss_gqa3",
           "formats/llama-mlx4", "formats/qwen2-mlx4", "formats/llama-q8", "formats/qwen2-q8"]


def model_config():
    for i, d in enumerate(WEIGHTS):
        if d.endswith("-q8"):
            continue
        write("model_config", d.replace("/", "_"), bytes([i]) + read(d + "/config.json", "rb"))
    gguf = lambda name, i, cache, edits: write("model_config", name,
                                               bytes([i + len(WEIGHTS) * cache]) + json.dumps(edits).encode())
    gguf("gguf_llama_q8_as_is", 8, 0, {})
    gguf("gguf_qwen2_q8_as_is_q4", 9, 4, {})
    gguf("gguf_llama_linear_rope_bf16", 8, 1, {"llama.rope.scaling.type": "linear", "llama.rope.scaling.factor": 2.0,
                                               "llama.rope.freq_base": 500000.0})
    gguf("gguf_qwen2_no_kv_heads", 9, 0, {"qwen2.attention.head_count_kv": None, "qwen2.context_length": 2})
    gguf("gguf_llama_tokens_as_numbers", 8, 0, {"tokenizer.ggml.tokens": [1, 2, 3], "llama.vocab_size": None})
    llama = json.loads(read("hf/llama/config.json"))

    def variant(name, weights, cache, **changes):
        c = dict(json.loads(read(WEIGHTS[weights] + "/config.json")))
        for k, v in changes.items():
            if v is None:
                c.pop(k, None)
            else:
                c[k] = v
        write("model_config", name, bytes([weights + len(WEIGHTS) * cache]) + json.dumps(c).encode())

    variant("llama_linear_q8", 0, 3, rope_parameters={"rope_type": "linear", "factor": 2.0, "rope_theta": 10000.0})
    variant("llama_yarn_q4", 0, 4, rope_parameters={"rope_type": "yarn", "factor": 4.0, "rope_theta": 10000.0,
                                                   "original_max_position_embeddings": 128, "truncate": False})
    variant("llama_v4_keys_bf16", 0, 1, rope_parameters=None, rope_theta=500000.0,
            rope_scaling={"type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                          "original_max_position_embeddings": 64})
    variant("mistral_window_2_f16", 2, 2, sliding_window=2)
    variant("qwen2_no_bias_k8v4", 3, 5, attention_bias=False)
    variant("gpt_oss_no_layer_types_q8", 5, 3, layer_types=None, sliding_window=2)
    variant("mlx4_group64", 6, 0, quantization={"group_size": 64, "bits": 4})
    assert llama["model_type"] == "llama"


# A WordLevel, a SentencePiece-like BPE with byte fallback, a Unigram and a WordPiece tokenizer.
WORDLEVEL = {
    "version": "1.0", "added_tokens": [{"id": 0, "content": "[UNK]", "special": True, "single_word": False,
                                        "lstrip": False, "rstrip": False, "normalized": False}],
    "normalizer": {"type": "Sequence", "normalizers": [{"type": "NFC"}, {"type": "Lowercase"}]},
    "pre_tokenizer": {"type": "Whitespace"}, "post_processor": None, "decoder": None,
    "model": {"type": "WordLevel", "vocab": {"[UNK]": 0, "hello": 1, "world": 2, "!": 3}, "unk_token": "[UNK]"},
}
SPM_BPE = {
    "version": "1.0",
    "added_tokens": [{"id": 0, "content": "<unk>", "special": True, "single_word": False, "lstrip": False,
                      "rstrip": False, "normalized": False},
                     {"id": 1, "content": "<s>", "special": True, "single_word": False, "lstrip": False,
                      "rstrip": False, "normalized": False}],
    "normalizer": {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "\u2581"},
                                                       {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"}]},
    "pre_tokenizer": None,
    "post_processor": {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                                                                {"Sequence": {"id": "A", "type_id": 0}}],
                       "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
                       "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}},
    "decoder": {"type": "Sequence", "decoders": [{"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "},
                                                 {"type": "ByteFallback"}, {"type": "Fuse"},
                                                 {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
    "model": {"type": "BPE", "dropout": None, "unk_token": "<unk>", "byte_fallback": True, "fuse_unk": True,
              "vocab": {"<unk>": 0, "<s>": 1, "<0x41>": 2, "<0xE2>": 3, "<0x82>": 4, "<0xAC>": 5,
                        "\u2581": 6, "h": 7, "i": 8, "\u2581h": 9, "\u2581hi": 10},
              "merges": ["\u2581 h", "\u2581h i"]},
}
UNIGRAM = {
    "version": "1.0", "added_tokens": [], "normalizer": None,
    "pre_tokenizer": {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always", "split": True},
    "post_processor": None, "decoder": {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always", "split": True},
    "model": {"type": "Unigram", "unk_id": 0, "byte_fallback": False,
              "vocab": [["<unk>", 0.0], ["\u2581", -1.0], ["a", -2.0], ["b", -2.0], ["\u2581ab", -1.5]]},
}
WORDPIECE = {
    "version": "1.0", "added_tokens": [], "normalizer": {"type": "BertNormalizer", "clean_text": True,
                                                         "handle_chinese_chars": True, "strip_accents": None,
                                                         "lowercase": True},
    "pre_tokenizer": {"type": "BertPreTokenizer"}, "post_processor": None,
    "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": True},
    "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
              "max_input_chars_per_word": 100, "vocab": {"[UNK]": 0, "play": 1, "##ing": 2, "the": 3}},
}


def tokenizer_json():
    h = "harmony/"
    write("tokenizer_json", "harmony", join(read(h + "tokenizer.json"), read(h + "tokenizer_config.json"),
                                            read(h + "chat_template.jinja"), read(h + "generation_config.json"),
                                            "<|start|>user<|message|>Hi 👋<|end|>", bytes(range(0, 40))))
    cfg = json.dumps({"bos_token": {"content": "<s>"}, "eos_token": "</s>", "add_bos_token": True,
                      "chat_template": "{% for m in messages %}{{ bos_token }}{{ m.content }}{% endfor %}"})
    gen = json.dumps({"eos_token_id": [0, 1]})
    for name, t in [("wordlevel", WORDLEVEL), ("spm_bpe", SPM_BPE), ("unigram", UNIGRAM), ("wordpiece", WORDPIECE)]:
        write("tokenizer_json", name, join(json.dumps(t, ensure_ascii=False), cfg, "", gen,
                                           "Hello world! hi ab playing €A", bytes([1, 0, 2, 0, 3, 0, 200, 0])))


TEXTS = ["Hello world", " leading and  double  spaces\t\n\n", "Äpfel ½ 日本語 🦀👩‍👩‍👧", "<|endoftext|><s></s><|im_start|>",
         "def f(x):\n    return x ** 2  # 12345", "\u2581\u2581 <0x41> \ufffd"]


def tokenizer_text():
    for i, name in enumerate(["gpt-2", "llama-spm", "phi-3", "deepseek-coder", "harmony"]):
        write("tokenizer_text", name, bytes([i]) + join(TEXTS[i % len(TEXTS)], bytes(range(7, 47))))
    write("tokenizer_text", "gpt-2_all_texts", bytes([0]) + join("".join(TEXTS), b"\xff\xff\x00\x01"))


def chat_template():
    fx = json.loads(read("smollm2/chat_render.json"))
    msgs = json.dumps([{"role": "system", "content": "# Be brief"}, {"role": "user", "content": " hi "},
                       {"role": "assistant", "content": "yo", "thinking": "t",
                        "tool_calls": [{"function": {"name": "f", "arguments": {"a": [1, 2.5]}}}]},
                       {"role": "tool", "name": "f", "content": {"r": 1}}])
    tools = json.dumps({"tools": [{"type": "function", "function": {"name": "f", "description": " d ",
                                                                    "parameters": {"type": "object"}}}],
                        "date_string": "2026-12-01", "reasoning_effort": "low"})
    for name, src in fx["templates"].items():
        write("chat_template", name, join(src, msgs, tools))
    write("chat_template", "harmony_fixture", join(read("harmony/chat_template.jinja"), msgs, ""))
    llama3 = ("{{- bos_token }}{%- for message in messages %}{{- '<|start_header_id|>' + message['role'] + "
              "'<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' }}{%- endfor %}"
              "{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}")
    write("chat_template", "llama3_like", join(llama3, json.dumps([{"role": "user", "content": "x"}]), ""))
    mistral = ("{%- if messages[0]['role'] == 'system' %}{%- set system = messages[0]['content'] %}"
               "{%- set loop_messages = messages[1:] %}{%- else %}{%- set loop_messages = messages %}{%- endif %}"
               "{{- bos_token }}{%- for message in loop_messages %}{%- if (message['role'] == 'user') != "
               "(loop.index0 % 2 == 0) %}{{- raise_exception('roles must alternate') }}{%- endif %}"
               "{%- if message['role'] == 'user' %}{{- '[INST] ' + message['content'] + ' [/INST]' }}"
               "{%- else %}{{- message['content'] + eos_token }}{%- endif %}{%- endfor %}")
    write("chat_template", "mistral_like", join(mistral, "", ""))
    write("chat_template", "macros_and_filters",
          join("{% macro r(x, d) %}{% if d > 0 %}[{{ r(x, d - 1) }}]{% else %}{{ x | tojson(indent=2) }}{% endif %}"
               "{% endmacro %}{% set ns = namespace(n=0) %}{% for m in messages | selectattr('role', 'equalto', 'user') %}"
               "{% set ns.n = ns.n + 1 %}{{ r(m, 3) }}{{ m.content.split(' ') | map('upper') | join('-') }}"
               "{{ '%s-%d' | format(m.role, loop.index) }}{{ m | pprint | length }}{% endfor %}{{ ns.n }}"
               "{{ range(3) | list | sum }}{{ strftime_now('%Y') | length }}", msgs, tools))


HARMONY_IDS = {"<|start|>": 0xF7, "<|end|>": 0xF8, "<|message|>": 0xF9, "<|channel|>": 0xFA, "<|return|>": 0xFB,
               "<|call|>": 0xFC, "<|constrain|>": 0xFD, "<|startoftext|>": 0xFE, "<|endoftext|>": 0xFF}


def harmony_tokens(parts):
    out = b""
    for p in parts:
        out += bytes([HARMONY_IDS[p]]) if p in HARMONY_IDS else p.encode()
    assert all(b < 0xF7 for p in parts if p not in HARMONY_IDS for b in p.encode())
    return out


def harmony():
    write("harmony", "analysis_final", harmony_tokens(
        ["<|channel|>", "analysis", "<|message|>", "User asks 2+2.", "<|end|>", "<|start|>", "assistant",
         "<|channel|>", "final", "<|message|>", "4", "<|return|>"]))
    write("harmony", "tool_call", harmony_tokens(
        ["<|start|>", "assistant to=functions.f", "<|channel|>", "commentary ", "<|constrain|>", "json",
         "<|message|>", '{"a": 1}', "<|call|>"]))
    write("harmony", "unterminated", harmony_tokens(["<|channel|>", "final", "<|message|>", "partial ans"]))
    write("harmony", "plain_text", b"no channels at all")


def gguf_vocab():
    # Structured input (arbitrary): any bytes decode to some vocabulary; the fuzzer's coverage
    # feedback does the rest. Fixed random bytes keep the seeds reproducible.
    for i, n in enumerate([64, 256, 1024, 4096]):
        write("gguf_vocab", f"random_{n}", random.Random(i).randbytes(n))


if __name__ == "__main__":
    safetensors_index()
    model_config()
    tokenizer_json()
    tokenizer_text()
    chat_template()
    harmony()
    gguf_vocab()
