"""Embeds texts through `huggingface_hub.InferenceClient.feature_extraction`
against a running server's TEI route, for
crates/cli/tests/serve_clients.rs.

Usage: hf_feature_extraction.py BASE_URL API_KEY TEXT...
  BASE_URL  the server's root (http://127.0.0.1:PORT)
  API_KEY   sent as a bearer token ("-": none)

The client posts `{"inputs": TEXT}` to the URL it is given, as it does to a
text-embeddings-inference deployment, so it is given the /embed route.
Prints {"embeddings": [[...]], "shapes": [[1, dim], ...]}: one call per text.
"""

import json
import sys

from huggingface_hub import InferenceClient


def main() -> int:
    base_url, api_key, *texts = sys.argv[1:]
    client = InferenceClient(
        base_url=base_url.rstrip("/") + "/embed", api_key=None if api_key == "-" else api_key, timeout=60
    )
    embeddings, shapes = [], []
    for text in texts:
        array = client.feature_extraction(text)
        shapes.append(list(array.shape))
        embeddings.append([float(x) for x in array.reshape(-1)])
    print(json.dumps({"embeddings": embeddings, "shapes": shapes}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
