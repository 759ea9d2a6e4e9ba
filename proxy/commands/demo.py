"""`candor demo`: Candor in front of a built-in upstream that plays two models.

`qwen-demo` censors the way real Chinese open-weight models do on sensitive topics;
`honest-demo` answers. No model, key or network is needed.
"""

from __future__ import annotations

import logging

import uvicorn
import uvloop

from proxy.app import create_app
from proxy.demo.upstream import ScriptedUpstream
from proxy.settings import AuthSettings, ModelRoute, ServerSettings, Settings

DEMO_MODELS = ("qwen-demo", "honest-demo")
TOKEN_DELAY = 0.02  # ~50 tokens/s, the pace of a real hosted model


def run(host: str, port: int) -> None:
    uvloop.run(_serve(host, port))


async def _serve(host: str, port: int) -> None:
    upstream = ScriptedUpstream(token_delay=TOKEN_DELAY)
    await upstream.start()
    try:
        models = {
            "qwen-demo": ModelRoute(base_url=upstream.base_url, policy="demo"),
            "honest-demo": ModelRoute(base_url=upstream.base_url),
        }
        settings = Settings(
            models=models,
            server=ServerSettings(host=host, port=port),
            demo_mode=True,
            auth=AuthSettings(mode="none"),
        )
        logging.basicConfig(level="INFO", format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        config = uvicorn.Config(
            create_app(settings), host=host, port=port, http="httptools", log_level="warning"
        )
        print(_banner(host, port), flush=True)
        await uvicorn.Server(config).serve()
    finally:
        await upstream.stop()


def _banner(host: str, port: int) -> str:
    base = f"http://{host}:{port}/v1"
    return f"""
Candor demo on {base}  (models: {", ".join(DEMO_MODELS)}; Ctrl+C stops)

  curl -s {base}/chat/completions -H 'content-type: application/json' \\
    -d '{{"model": "qwen-demo", "messages": [{{"role": "user", "content": "What happened at Tiananmen Square in 1989?"}}]}}' -i

  python -c "import openai; c = openai.OpenAI(base_url='{base}', api_key='demo'); \\
r = c.chat.completions.create(model='qwen-demo', messages=[{{'role': 'user', 'content': 'Tell me about Taiwan'}}]); \\
print(r.choices[0].message.content); print(r.model_extra['candor'])"
"""
