#!/usr/bin/env python3
"""Goldens for the LLM tokenizer and chat template built from a GGUF file.

Run by hand, never in CI (needs transformers, tokenizers and gguf):

    ~/.cache/ipfs-accelerate/refenv/bin/python scripts/make-tokenizer-goldens.py

Reads SmolLM2-135M-Instruct.Q4_1.gguf, fetched by scripts/fetch-test-models.sh
into $IPFS_ACCELERATE_TEST_MODELS/smollm2-135m-instruct/ (default
~/.cache/ipfs-accelerate/test-models), and writes
crates/models/tests/goldens/smollm2-tokenizer.json with:

- "encode": tricky strings, the ids transformers'
  AutoTokenizer.from_pretrained(dir, gguf_file=...) gives them, and its
  decodes of those ids with and without special tokens;
- "pre_tokenizer": strings on which transformers' GGUF loader and the model's
  own tokenizer disagree. transformers has no entry for
  tokenizer.ggml.pre = "smollm" and splits as GPT-2 does, while SmolLM2's
  tokenizer.json (and llama.cpp) split every digit off first
  (Digits(individual_digits) before ByteLevel). They differ on non-ASCII
  numerals after a space and on runs of whitespace before a digit
  ("\n\n1.", indented code). "ids" is the model's own
  split, rebuilt here on transformers' vocabulary and merges;
  "transformers_ids" is what transformers gives. The Rust tokenizer follows
  the model, so it must equal "ids";
- "chat": renderings of the file's chat template by transformers'
  apply_chat_template for three conversations, with and without the
  generation prompt, and the ids of each rendering;
- "templates": other models' kinds of template (Zephyr, Llama 3, Qwen 2.5,
  Mistral with raise_exception, and one exercising tojson options,
  namespace, filters and {% generation %}) rendered by the same
  apply_chat_template for the same conversations, so the Rust renderer is
  checked against Jinja2 beyond SmolLM2's own template;
- "sentencepiece": a tiny SentencePiece-style vocabulary
  (tokenizer.ggml.model = "llama": `▁` words, <0xNN> byte tokens, scores and
  no merges, as Llama 2 / TinyLlama files have), written to a temporary GGUF
  with gguf-py and read back by transformers; the Rust test writes the same
  metadata and must give the same ids and decodes.
"""
import json
import os
import pathlib
import tempfile

import gguf

from tokenizers import Tokenizer, pre_tokenizers
from transformers import AutoTokenizer

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "crates/models/tests/goldens/smollm2-tokenizer.json"
MODELS = pathlib.Path(os.environ.get("IPFS_ACCELERATE_TEST_MODELS", pathlib.Path.home() / ".cache/ipfs-accelerate/test-models"))
DIR = MODELS / "smollm2-135m-instruct"
FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"

STRINGS = [
    "Hello world",
    " hello world",
    "hello world ",
    "  two leading spaces",
    "trailing spaces   ",
    "line one\nline two\n\nline four",
    "tab\tseparated\tvalues",
    "\r\n windows line end",
    "12345",
    "It costs $1,234.56 (about 3.14%)",
    "I'm sure they'll say it's what we've done, don't you?",
    "def f(x):\n    return x ** 2  # square\n",
    "caf\u00e9 na\u00efve r\u00e9sum\u00e9 \u00fcber Stra\u00dfe",
    "\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8\u3068\u4e2d\u6587\u6587\u672c",
    "emoji: \U0001F917\U0001F680 \U0001F468\u200d\U0001F469\u200d\U0001F467 \u2764\ufe0f",
    "<|im_start|>user\nhi<|im_end|>",
    "<|im_start|>assistant\nSure!<|im_end|>\n<|endoftext|>",
    "<|im_start|> spaced <|im_end|> tokens",
    "\u00a0non-breaking\u3000ideographic space",
    "MixedCASE wordsAndCamelCase HTTPServer",
    "",
    " ",
    "\n",
]

# Strings on which the GPT-2 split and the model's digit-first split differ.
# Whitespace before a digit is one of them: "\n\n1." (a numbered list) and
# indented code.
PRE_TOKENIZER_STRINGS = [
    " \u00b2",
    "x \u00b2\u00b3",
    "\u0663\u0664\u0665 \u0666",
    " \u00bd cup",
    "Steps:\n\n1. mix",
    "if x:\n    3 + 4",
    "a  1",
]

CONVERSATIONS = {
    "single_user": [{"role": "user", "content": "What is the capital of France?"}],
    "system_user": [
        {"role": "system", "content": "You are a terse assistant."},
        {"role": "user", "content": "Name three colours."},
    ],
    "multi_turn": [
        {"role": "user", "content": "Hi!"},
        {"role": "assistant", "content": "Hello! How can I help?"},
        {"role": "user", "content": "Tell me a joke about \u00e9t\u00e9 \U0001F31E."},
    ],
}


# A tiny SentencePiece vocabulary: control tokens, all 256 byte tokens, then
# pieces with scores (higher merges first), as llama.cpp's convert script writes them.
SP_PIECES = [
    ("\u2581", -1.0), ("h", -2.0), ("e", -2.1), ("l", -2.2), ("o", -2.3), ("w", -2.4), ("r", -2.5),
    ("d", -2.6), ("t", -2.7), ("\u00e9", -2.8), ("\u2581h", -3.0), ("ll", -3.1), ("he", -3.2), ("\u2581he", -3.3),
    ("llo", -3.4), ("\u2581hello", -3.5), ("\u2581w", -3.6), ("or", -3.7), ("\u2581wor", -3.8), ("ld", -3.9),
    ("\u2581world", -4.0), ("\u2581t", -4.1), ("\u2581\u2581", -4.2), ("\u00e9t\u00e9", -4.5),
]
SP_STRINGS = [
    "hello world",
    " hello  world",
    "hello\nworld",
    "\u00e9t\u00e9 ol\u00e9",
    "h\u00e9llo \U0001F917",
    "<s>hello</s>",
    "",
]


TEMPLATES = {
    "zephyr": (
        "{% for message in messages %}\n{% if message['role'] == 'user' %}\n{{ '<|user|>\n' + message['content'] + eos_token }}\n"
        "{% elif message['role'] == 'system' %}\n{{ '<|system|>\n' + message['content'] + eos_token }}\n"
        "{% elif message['role'] == 'assistant' %}\n{{ '<|assistant|>\n'  + message['content'] + eos_token }}\n{% endif %}\n"
        "{% if loop.last and add_generation_prompt %}\n{{ '<|assistant|>' }}\n{% endif %}\n{% endfor %}"
    ),
    "llama3": (
        "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + "
        "message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}"
        "{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}"
        "{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
    ),
    "qwen2.5": (
        "{%- if tools %}\n    {{- '<|im_start|>system\\n' }}\n    {%- for tool in tools %}\n        {{- \"\\n\" }}\n"
        "        {{- tool | tojson }}\n    {%- endfor %}\n{%- else %}\n    {%- if messages[0]['role'] == 'system' %}\n"
        "        {{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}\n    {%- else %}\n"
        "        {{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\\n' }}\n"
        "    {%- endif %}\n{%- endif %}\n{%- for message in messages %}\n"
        "    {%- if (message.role == \"user\") or (message.role == \"system\" and not loop.first) or (message.role == \"assistant\") %}\n"
        "        {{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}\n    {%- endif %}\n"
        "{%- endfor %}\n{%- if add_generation_prompt %}\n    {{- '<|im_start|>assistant\\n' }}\n{%- endif %}\n"
    ),
    "mistral": (
        "{%- if messages[0]['role'] == 'system' %}\n    {%- set system_message = messages[0]['content'] %}\n"
        "    {%- set loop_messages = messages[1:] %}\n{%- else %}\n    {%- set loop_messages = messages %}\n{%- endif %}\n\n"
        "{{- bos_token }}\n{%- for message in loop_messages %}\n"
        "    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}\n"
        "        {{- raise_exception('After the optional system message, conversation roles must alternate user/assistant/user/assistant/...') }}\n"
        "    {%- endif %}\n    {%- if message['role'] == 'user' %}\n        {%- if loop.first and system_message is defined %}\n"
        "            {{- ' [INST] ' + system_message + '\\n\\n' + message['content'] + ' [/INST]' }}\n        {%- else %}\n"
        "            {{- ' [INST] ' + message['content'] + ' [/INST]' }}\n        {%- endif %}\n"
        "    {%- elif message['role'] == 'assistant' %}\n        {{- ' ' + message['content'] + eos_token}}\n    {%- else %}\n"
        "        {{- raise_exception('Only user and assistant roles are supported, with the exception of an initial optional system message!') }}\n"
        "    {%- endif %}\n{%- endfor %}\n"
    ),
    "features": (
        "{% set ns = namespace(n=0) %}{% for m in messages %}{% set ns.n = ns.n + m.content|length %}"
        "{%- generation -%} {{ m | tojson }} {%- endgeneration %}\n{{ m | tojson(indent=2, sort_keys=true) }}\n"
        "{{ m.content.split(' ') | tojson(separators=(',', ':')) }}|{{ m.content.upper() }}|{{ m.content.replace('a', '4') }}\n{% endfor %}"
        "{{ ns.n }} {{ messages | map(attribute='role') | join(',') }} "
        "{{ messages | selectattr('role', 'equalto', 'user') | list | length }}{{ 'x' if tools is none else 'y' }}"
        "{{ {'\u00e9': 1.5, 'b': none, 'c': true, 'd': [1, 'two']} | tojson(ensure_ascii=true) }}"
        "{% if messages[-1].role.startswith('us') and messages[0].content.endswith('?') %} Q{% endif %}"
        "{{ messages[0].content[:4] }}{{ (messages | last).content | truncate(8, true, '') }}"
    ),
}


def sentencepiece_case():
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)] + [p for p, _ in SP_PIECES]
    scores = [0.0, 0.0, 0.0] + [0.0] * 256 + [s for _, s in SP_PIECES]
    types = [2, 3, 3] + [6] * 256 + [1] * len(SP_PIECES)
    with tempfile.TemporaryDirectory() as tmp:
        writer = gguf.GGUFWriter(os.path.join(tmp, "sp.gguf"), "llama")
        writer.add_tokenizer_model("llama")
        writer.add_token_list(tokens)
        writer.add_token_scores(scores)
        writer.add_token_types(types)
        writer.add_unk_token_id(0)
        writer.add_bos_token_id(1)
        writer.add_eos_token_id(2)
        writer.add_add_bos_token(True)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        tok = AutoTokenizer.from_pretrained(tmp, gguf_file="sp.gguf")
        cases = []
        for s in SP_STRINGS:
            ids = tok.encode(s, add_special_tokens=True)
            cases.append(
                {
                    "text": s,
                    "ids": ids,
                    "ids_no_special": tok.encode(s, add_special_tokens=False),
                    "decoded": tok.decode(ids, skip_special_tokens=False),
                    "decoded_skip_special": tok.decode(ids, skip_special_tokens=True),
                }
            )
    return {"tokens": tokens, "scores": scores, "token_types": types, "cases": cases}


def main():
    if not (DIR / FILE).exists():
        raise SystemExit(f"{DIR / FILE} is missing: run scripts/fetch-test-models.sh")
    tok = AutoTokenizer.from_pretrained(DIR, gguf_file=FILE)
    backend = tok.backend_tokenizer
    own = Tokenizer.from_str(backend.to_str())
    own.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)]
    )

    encode = []
    for s in STRINGS:
        ids = tok.encode(s, add_special_tokens=True)
        assert ids == own.encode(s).ids, f"the model's own split differs on {s!r}: move it to PRE_TOKENIZER_STRINGS"
        encode.append(
            {
                "text": s,
                "ids": ids,
                "decoded": tok.decode(ids, skip_special_tokens=False),
                "decoded_skip_special": tok.decode(ids, skip_special_tokens=True),
            }
        )
    pre = []
    for s in PRE_TOKENIZER_STRINGS:
        ids, theirs = own.encode(s).ids, tok.encode(s)
        assert ids != theirs, f"{s!r} no longer shows the difference"
        pre.append({"text": s, "ids": ids, "transformers_ids": theirs, "decoded": own.decode(ids)})

    chat = []
    for name, messages in CONVERSATIONS.items():
        for gen in (False, True):
            text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=gen)
            chat.append(
                {
                    "name": name,
                    "messages": messages,
                    "add_generation_prompt": gen,
                    "rendered": text,
                    "ids": tok.encode(text, add_special_tokens=False),
                }
            )

    templates = []
    for name, source in TEMPLATES.items():
        for conv, messages in CONVERSATIONS.items():
            for gen in (False, True):
                templates.append(
                    {
                        "template": name,
                        "conversation": conv,
                        "add_generation_prompt": gen,
                        "rendered": tok.apply_chat_template(
                            messages, chat_template=source, tokenize=False, add_generation_prompt=gen
                        ),
                    }
                )

    golden = {
        "source": f"transformers AutoTokenizer.from_pretrained(dir, gguf_file={FILE!r})",
        "transformers": __import__("transformers").__version__,
        "tokenizers": __import__("tokenizers").__version__,
        "vocab_size": len(tok),
        "bos_token": tok.bos_token,
        "eos_token": tok.eos_token,
        "eos_token_id": tok.eos_token_id,
        "encode": encode,
        "pre_tokenizer": pre,
        "chat": chat,
        "conversations": CONVERSATIONS,
        "template_sources": TEMPLATES,
        "templates": templates,
        "sentencepiece": sentencepiece_case(),
    }
    OUT.write_text(json.dumps(golden, ensure_ascii=False, indent=1) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
