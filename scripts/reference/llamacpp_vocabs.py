#!/usr/bin/env python3
"""Tokenizer references for llama.cpp's test vocabularies (models/ggml-vocab-*.gguf).

The vocab-only GGUFs and their `.inp` test strings ship in llama.cpp's source tree (also inside
the llama-cpp-python sdist: `pip download --no-deps --no-binary :all: llama-cpp-python`, then
unpack vendor/llama.cpp/models/). For each supported vocab this script
  - dumps tokenizer.ggml.* to /tmp/rmlx_vocabs/<name>.json (a GgufVocab; not committed),
  - tokenizes the .inp strings plus extra texts with llama.cpp (special tokens parsed),
  - writes crates/rmlx-lm/tests/fixtures/vocabs/<name>.json: {"pre", "model", "cases": [{text, ids}]}.

Usage: python3 scripts/reference/llamacpp_vocabs.py /path/to/llama.cpp/models
"""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from smollm2_llamacpp import TEXTS, fuzz_texts, read_gguf_vocab  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "crates/rmlx-lm/tests/fixtures/vocabs"
DUMP = Path("/tmp/rmlx_vocabs")
NAMES = ["llama-bpe", "llama-spm", "qwen2", "gpt-2", "phi-3", "starcoder", "refact", "command-r",
         "falcon", "mpt", "deepseek-coder"]


def main():
    from llama_cpp import Llama

    models = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/llvocab")
    OUT.mkdir(parents=True, exist_ok=True)
    DUMP.mkdir(parents=True, exist_ok=True)
    for name in NAMES:
        gguf = models / f"ggml-vocab-{name}.gguf"
        if not gguf.exists():
            print(f"skip {name}: no {gguf}")
            continue
        vocab = read_gguf_vocab(str(gguf))
        with open(DUMP / f"{name}.json", "w") as f:
            json.dump(vocab, f, ensure_ascii=False)
        inp = models / f"ggml-vocab-{name}.gguf.inp"
        texts = inp.read_text().split("\n__ggml_vocab_test__\n") if inp.exists() else []
        texts = [t for t in texts if t] + TEXTS + fuzz_texts(n=100, seed=1)
        llm = Llama(model_path=str(gguf), vocab_only=True, verbose=False)
        cases = [{"text": t, "ids": llm.tokenize(t.encode(), add_bos=False, special=True)} for t in texts]
        with open(OUT / f"{name}.json", "w") as f:
            json.dump({"model": vocab["model"], "pre": vocab["pre"], "cases": cases}, f, ensure_ascii=False)
        print(f"{name}: {vocab['model']}/{vocab['pre']}, {len(cases)} cases")


if __name__ == "__main__":
    main()
