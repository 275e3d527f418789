"""The official `anthropic` package sends one Messages request to the URL in
CAIO_ANTHROPIC_URL (a fixture that records it): the Rust test that runs it
compares the request with the one caio's adapter writes for the same chat.
Prints the text of the answer."""

import os

import anthropic

client = anthropic.Anthropic(base_url=os.environ["CAIO_ANTHROPIC_URL"], api_key="sk-ant-test", max_retries=0)
message = client.messages.create(
    model="m-claude",
    max_tokens=50,
    system="Be brief.",
    messages=[
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBOR"}},
            ],
        },
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "A"},
                {"type": "tool_use", "id": "t1", "name": "look", "input": {"at": 1}},
            ],
        },
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "seen"}]},
    ],
    stop_sequences=["END"],
    tools=[{"name": "look", "description": "Look", "input_schema": {"type": "object"}}],
    tool_choice={"type": "any"},
)
print("".join(block.text for block in message.content if block.type == "text"))
