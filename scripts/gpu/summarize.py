#!/usr/bin/env python3
"""Prints peer_bench.sh's results compactly: each rmlx bench line (model, device, prefill and
decode tok/s, host ms a decode token, graph counters) under its variant marker, then llama-bench's
rows. Usage: summarize.py OUT_DIR"""
import json, os, sys

out = sys.argv[1] if len(sys.argv) > 1 else "/tmp/out"
path = os.path.join(out, "rmlx.jsonl")
if os.path.exists(path):
    for line in open(path):
        line = line.strip()
        if not line:
            continue
        if line.startswith("#"):
            print(line)
            continue
        try:
            j = json.loads(line)
        except ValueError:
            continue
        ms = j.get("decode_ms_per_token", {})
        print(f"rmlx {os.path.basename(str(j.get('model', '?')))[:24]:24} pp {j.get('prefill_tok_s', 0):9.1f}"
              f" tg {j.get('decode_tok_s', 0):7.1f}  host ms/tok " +
              " ".join(f"{k} {v:.2f}" for k, v in ms.items() if isinstance(v, (int, float))) +
              f"  graphs {j.get('cuda_graphs', '')}")
path = os.path.join(out, "llama.json")
if os.path.exists(path):
    text = open(path).read()
    # llama-bench -o json writes one JSON array per run, concatenated.
    dec, i = json.JSONDecoder(), 0
    while i < len(text):
        while i < len(text) and text[i] in " \n\r\t":
            i += 1
        if i >= len(text):
            break
        try:
            arr, i = dec.raw_decode(text, i)
        except ValueError:
            break
        for r in arr:
            print(f"llama {os.path.basename(r.get('model_filename', '?'))[:24]:24} pp {r.get('n_prompt')} tg {r.get('n_gen')}"
                  f" avg_ts {r.get('avg_ts', 0):9.1f}")
