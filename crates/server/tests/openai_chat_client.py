"""Chats through the official `openai` client against a running server, for
crates/server/tests/generation.rs: once streamed (with usage), once whole,
greedy, and once with a bad request.

Usage: openai_chat_client.py BASE_URL MODEL API_KEY QUESTION
  BASE_URL  the server's root (http://127.0.0.1:PORT); /v1 is appended

Prints one JSON object: {"streamed", "whole", "chunks", "role",
"finish_reason", "usage", "bad_request"}, where bad_request is the status of
the client's BadRequestError for n=2.
"""

import json
import sys

import openai


def main() -> int:
    base_url, model, api_key, question = sys.argv[1:]
    client = openai.OpenAI(base_url=base_url.rstrip("/") + "/v1", api_key=api_key, max_retries=0, timeout=120.0)
    messages = [{"role": "user", "content": question}]

    stream = client.chat.completions.create(
        model=model,
        messages=messages,
        temperature=0,
        max_tokens=40,
        stream=True,
        stream_options={"include_usage": True},
    )
    pieces, chunks, role, finish_reason, usage = [], 0, None, None, None
    for chunk in stream:
        chunks += 1
        if chunk.usage is not None:
            usage = chunk.usage.model_dump()
        for choice in chunk.choices:
            if choice.delta.role:
                role = choice.delta.role
            if choice.delta.content:
                pieces.append(choice.delta.content)
            if choice.finish_reason:
                finish_reason = choice.finish_reason

    whole = client.chat.completions.create(model=model, messages=messages, temperature=0, max_tokens=40)

    try:
        client.chat.completions.create(model=model, messages=messages, n=2)
        bad_request = None
    except openai.BadRequestError as e:
        bad_request = e.status_code

    print(
        json.dumps(
            {
                "streamed": "".join(pieces),
                "whole": whole.choices[0].message.content,
                "chunks": chunks,
                "role": role,
                "finish_reason": finish_reason,
                "usage": usage,
                "bad_request": bad_request,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
