"""llama.cpp's perplexity on a text file, same protocol as `rmlx perplexity`.

Tokenize the whole file with the model's tokenizer (BOS only if the model adds it), cut it into
non-overlapping chunks of --ctx tokens, set each chunk's first token to BOS when the model adds
BOS, and score positions ctx/2 … ctx-2 predicting the next token; ppl = exp(mean NLL).
--kv q8_0 / q4_0 sets llama.cpp's quantized K/V cache (GGML types 8 / 2, needs flash attention).

usage: perplexity_llamacpp.py MODEL.gguf TEXT [--ctx 512] [--threads 2] [--kv f16|q8_0|q4_0]
"""
import argparse
import json
import math
import time

import numpy as np
from llama_cpp import Llama

p = argparse.ArgumentParser()
p.add_argument("model")
p.add_argument("text")
p.add_argument("--ctx", type=int, default=512)
p.add_argument("--threads", type=int, default=2)
p.add_argument("--kv", default="f16", choices=["f16", "q8_0", "q4_0"])
a = p.parse_args()

ggml_type = {"f16": 1, "q8_0": 8, "q4_0": 2}[a.kv]
llm = Llama(
    model_path=a.model,
    n_ctx=a.ctx,
    n_batch=a.ctx,
    logits_all=True,
    n_threads=a.threads,
    type_k=ggml_type,
    type_v=ggml_type,
    flash_attn=a.kv != "f16",
    verbose=False,
)
text = open(a.text, encoding="utf-8").read()
add_bos = llm._model.add_bos_token()
tokens = llm.tokenize(text.encode("utf-8"), add_bos=add_bos)
n_chunks = len(tokens) // a.ctx
first = a.ctx // 2
nll, count = 0.0, 0
t0 = time.time()
for c in range(n_chunks):
    chunk = list(tokens[c * a.ctx : (c + 1) * a.ctx])
    if add_bos:
        chunk[0] = llm.token_bos()
    llm.reset()
    llm.eval(chunk)
    logits = np.asarray(llm.scores[: a.ctx], dtype=np.float64)
    for i in range(first, a.ctx - 1):
        row = logits[i]
        m = row.max()
        nll += m + math.log(np.exp(row - m).sum()) - row[chunk[i + 1]]
        count += 1
print(json.dumps({"ppl": math.exp(nll / count), "tokens": count, "chunks": n_chunks,
                  "ctx": a.ctx, "kv_cache": a.kv, "file_tokens": len(tokens),
                  "add_bos": bool(add_bos), "seconds": time.time() - t0}))
