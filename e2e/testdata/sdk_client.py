"""Drive an unmodified provider SDK, as a sandbox would, and print one JSON
line: what the model said, or what the SDK raised: the HTTP status, the
error's type, message and body, and the response body as it arrived.

Usage: sdk_client.py openai|anthropic chat|stream

The key comes from OPENAI_API_KEY or ANTHROPIC_API_KEY (a capability, never a
real key), the base URL from OPENAI_BASE_URL or ANTHROPIC_BASE_URL, and the
egress proxy from HTTP_PROXY, as the SDKs read them.
"""
import json
import sys

kind, mode = sys.argv[1], sys.argv[2]
out = {}
if kind == "openai":
    import openai

    client = openai.OpenAI(max_retries=0, timeout=20)
    try:
        if mode == "chat":
            r = client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "hi"}])
            out["text"] = r.choices[0].message.content
        else:
            s = client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "hi"}], stream=True)
            out["text"] = "".join(c.choices[0].delta.content or "" for c in s if c.choices)
    except openai.APIStatusError as e:
        out = {"status": e.status_code, "error": type(e).__name__, "message": str(e), "body": e.body, "response": e.response.text}
else:
    import anthropic

    client = anthropic.Anthropic(max_retries=0, timeout=20)
    try:
        if mode == "chat":
            r = client.messages.create(model="claude-test", max_tokens=16, messages=[{"role": "user", "content": "hi"}])
            out["text"] = "".join(b.text for b in r.content if b.type == "text")
        else:
            with client.messages.stream(model="claude-test", max_tokens=16, messages=[{"role": "user", "content": "hi"}]) as s:
                out["text"] = "".join(s.text_stream)
    except anthropic.APIStatusError as e:
        out = {"status": e.status_code, "error": type(e).__name__, "message": str(e), "body": e.body, "response": e.response.text}
print(json.dumps(out))
