#!/usr/bin/env python3
"""A tiny gpt-oss checkpoint (random weights, vocab 300) with a byte-level tokenizer that
carries the harmony special tokens and a harmony chat template, for testing rmlx's chat
rendering and channel parsing without the real o200k vocabulary.

  python3 make_harmony_fixture.py OUT_DIR /path/to/make_gpt_oss_checkpoint.py
"""
import json, os, subprocess, sys

SPECIALS = ["<|start|>", "<|end|>", "<|message|>", "<|channel|>", "<|return|>", "<|call|>",
            "<|constrain|>", "<|startoftext|>", "<|endoftext|>"]

TEMPLATE = (
    "{%- for m in messages -%}"
    "{%- if m.role == 'assistant' -%}<|start|>assistant<|channel|>final<|message|>{{ m.content }}<|end|>"
    "{%- else -%}<|start|>{{ m.role }}<|message|>{{ m.content }}<|end|>{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}<|start|>assistant{%- endif -%}"
)


def bytes_to_unicode():
    """GPT-2's byte → printable character table."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


def main(out, tool):
    subprocess.run([sys.executable, tool, out, "--preset", "tiny", "--single-file", "--vocab", "300", "--seed", "7",
                    "--threads", "1"], check=True)
    b2u = bytes_to_unicode()
    vocab = {b2u[b]: b for b in range(256)}
    added = []
    for i, s in enumerate(SPECIALS):
        vocab[s] = 256 + i
        added.append({"id": 256 + i, "content": s, "single_word": False, "lstrip": False, "rstrip": False,
                      "normalized": False, "special": True})
    tok = {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": added, "normalizer": None,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
        "post_processor": None,
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                  "vocab": vocab, "merges": []},
    }
    json.dump(tok, open(os.path.join(out, "tokenizer.json"), "w"), ensure_ascii=False)
    json.dump({"bos_token": "<|startoftext|>", "eos_token": "<|return|>", "pad_token": "<|endoftext|>",
               "add_bos_token": False}, open(os.path.join(out, "tokenizer_config.json"), "w"), indent=2)
    json.dump({"eos_token_id": [256 + SPECIALS.index("<|return|>"), 256 + SPECIALS.index("<|call|>"),
                                256 + SPECIALS.index("<|endoftext|>")]},
              open(os.path.join(out, "generation_config.json"), "w"), indent=2)
    open(os.path.join(out, "chat_template.jinja"), "w").write(TEMPLATE)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
