"""Transcribes a clip through the official `openai` client against a running
server, for crates/server/tests/transcription.rs: json, verbose_json with
segment timestamps, text and srt answers, and one bad request.

Usage: openai_transcription_client.py BASE_URL MODEL API_KEY AUDIO_FILE
  BASE_URL  the server's root (http://127.0.0.1:PORT); /v1 is appended

Prints one JSON object: {"json", "verbose_text", "segments" (start, end,
text), "language", "text", "srt", "bad_request"}, where bad_request is the
status of the client's BadRequestError for a non-zero temperature.
"""

import json
import sys

import openai


def main() -> int:
    base_url, model, api_key, audio = sys.argv[1:]
    client = openai.OpenAI(base_url=base_url.rstrip("/") + "/v1", api_key=api_key, max_retries=0, timeout=120.0)

    with open(audio, "rb") as f:
        plain = client.audio.transcriptions.create(model=model, file=f)
    with open(audio, "rb") as f:
        verbose = client.audio.transcriptions.create(
            model=model, file=f, response_format="verbose_json", timestamp_granularities=["segment"]
        )
    with open(audio, "rb") as f:
        text = client.audio.transcriptions.create(model=model, file=f, response_format="text")
    with open(audio, "rb") as f:
        srt = client.audio.transcriptions.create(model=model, file=f, response_format="srt")
    bad_request = None
    try:
        with open(audio, "rb") as f:
            client.audio.transcriptions.create(model=model, file=f, temperature=0.7)
    except openai.BadRequestError as e:
        bad_request = e.status_code

    segments = [{"start": s.start, "end": s.end, "text": s.text} for s in (verbose.segments or [])]
    print(
        json.dumps(
            {
                "json": plain.text,
                "verbose_text": verbose.text,
                "segments": segments,
                "language": verbose.language,
                "text": text if isinstance(text, str) else str(text),
                "srt": srt if isinstance(srt, str) else str(srt),
                "bad_request": bad_request,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
