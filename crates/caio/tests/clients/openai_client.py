"""The official `openai` package against caio: a chat completion, a streamed
completion, an embedding, generated images, streamed speech, a
transcription of a WAV recording made here, a rerank, and a chat streamed
from a service that speaks Anthropic's Messages API (`model="summarize"`) (sent with the
client's own `post`, as the package has no rerank method). Prints one JSON object with what it parsed;
the Rust test that runs it checks the values."""

import base64
import io
import json
import os
import sys
import time
import wave

from openai import OpenAI

client = OpenAI(base_url=os.environ["CAIO_BASE_URL"], api_key=os.environ["CAIO_TOKEN"], max_retries=0)

reply = client.chat.completions.create(model="chat", messages=[{"role": "user", "content": "Hello"}])

started = time.monotonic()
first_chunk_s = None
streamed = []
for chunk in client.chat.completions.create(model="chat", messages=[{"role": "user", "content": "Hello"}], stream=True):
    if first_chunk_s is None:
        first_chunk_s = time.monotonic() - started
    if chunk.choices and chunk.choices[0].delta.content:
        streamed.append(chunk.choices[0].delta.content)
total_s = time.monotonic() - started

embedding = client.embeddings.create(model="embeddings", input="a sentence to embed")

images = client.images.generate(model="image_generation", prompt="a red fox", n=2, response_format="b64_json")

started = time.monotonic()
first_audio_s = None
audio = []
with client.audio.speech.with_streaming_response.create(
    model="text_to_speech", voice="alloy", input="Hello", response_format="wav"
) as spoken:
    audio_type = spoken.headers.get("content-type")
    for chunk in spoken.iter_bytes():
        if first_audio_s is None:
            first_audio_s = time.monotonic() - started
        audio.append(chunk)
audio_total_s = time.monotonic() - started

recording = io.BytesIO()
with wave.open(recording, "wb") as w:
    w.setnchannels(1)
    w.setsampwidth(2)
    w.setframerate(16000)
    w.writeframes(b"\x00\x00" * 16000)
recording = recording.getvalue()
transcript = client.audio.transcriptions.create(
    model="speech_to_text", file=("hello.wav", recording, "audio/wav"), language="en"
)

summarized = []
for chunk in client.chat.completions.create(
    model="summarize", messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}], stream=True
):
    if chunk.choices and chunk.choices[0].delta.content:
        summarized.append(chunk.choices[0].delta.content)

ranked = client.post(
    "/rerank",
    body={"model": "rerank", "query": "red fox", "documents": ["a blue bird", "a red fox", "red"], "top_n": 2},
    cast_to=object,
)

json.dump(
    {
        "chat": reply.choices[0].message.content,
        "chat_object": reply.object,
        "finish_reason": reply.choices[0].finish_reason,
        "streamed": streamed,
        "first_chunk_s": first_chunk_s,
        "stream_total_s": total_s,
        "embedding": list(embedding.data[0].embedding),
        "images": [base64.b64decode(image.b64_json).decode() for image in images.data],
        "ranked": [result["index"] for result in ranked["results"]],
        "audio": b"".join(audio).decode(),
        "audio_type": audio_type,
        "first_audio_s": first_audio_s,
        "audio_total_s": audio_total_s,
        "transcript": transcript.text,
        "summarized": summarized,
        "recording_bytes": len(recording),
        "openai_version": __import__("openai").__version__,
    },
    sys.stdout,
)
