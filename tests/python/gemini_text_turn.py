"""A text turn with the official OpenAI Python SDK, through the gateway to a
Gemini Live upstream. Prints one JSON object: what the SDK saw.

Usage: python gemini_text_turn.py BASE_URL MODEL
"""

import asyncio
import base64
import json
import sys

from openai import AsyncOpenAI


async def main(base_url: str, model: str) -> None:
    client = AsyncOpenAI(base_url=base_url, api_key="unused")
    seen = {"types": [], "transcript": "", "audio_bytes": 0}
    async with client.realtime.connect(model=model) as connection:
        await connection.session.update(
            session={"type": "realtime", "instructions": "Answer in one sentence."}
        )
        await connection.conversation.item.create(
            item={
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "Hello from Python"}],
            }
        )
        await connection.response.create()
        async for event in connection:
            seen["types"].append(event.type)
            if event.type == "session.created":
                seen["session_id"] = event.session.id
            elif event.type == "response.output_audio_transcript.delta":
                seen["transcript"] += event.delta
            elif event.type == "response.output_audio.delta":
                seen["audio_bytes"] += len(base64.b64decode(event.delta))
            elif event.type == "error":
                seen["error"] = event.error.model_dump()
                break
            elif event.type == "response.done":
                seen["status"] = event.response.status
                seen["usage"] = event.response.usage.model_dump()
                break
    print(json.dumps(seen))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
