"""Embeds texts through the official `openai` client against a running
server, for crates/cli/tests/serve_clients.rs.

Usage: openai_embeddings.py BASE_URL MODEL API_KEY ENCODING TEXT...
  BASE_URL  the server's root (http://127.0.0.1:PORT); /v1 is appended
  API_KEY   the key to send ("-": none; the client still needs a value)
  ENCODING  float | default (the client's own default: base64, decoded by it)

Prints one JSON object: {"embeddings": [[...]], "model": ..., "usage": {...}}.
An authentication failure prints {"error": "AuthenticationError", ...} and
exits 3, so the test can tell it from any other failure (exit 1).
"""

import json
import sys

import openai


def main() -> int:
    base_url, model, api_key, encoding, *texts = sys.argv[1:]
    client = openai.OpenAI(
        base_url=base_url.rstrip("/") + "/v1",
        api_key="unused" if api_key == "-" else api_key,
        max_retries=0,
        timeout=60.0,
    )
    extra = {"encoding_format": "float"} if encoding == "float" else {}
    try:
        response = client.embeddings.create(model=model, input=texts, **extra)
    except openai.AuthenticationError as e:
        print(json.dumps({"error": "AuthenticationError", "status": e.status_code, "message": str(e)}))
        return 3
    data = sorted(response.data, key=lambda d: d.index)
    print(
        json.dumps(
            {
                "embeddings": [[float(x) for x in d.embedding] for d in data],
                "model": response.model,
                "usage": {"prompt_tokens": response.usage.prompt_tokens, "total_tokens": response.usage.total_tokens},
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
