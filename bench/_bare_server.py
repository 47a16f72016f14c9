"""The baseline: a bare aiohttp handler doing the same JSON parsing, numpy call and encoding.

    python bench/_bare_server.py PORT [tiny|mlp]

No framework around it: parse ``{"input": [...]}``, make the numpy array the
model gets, call the model inline, encode the Clipper answer. This is the
ceiling a Python server on aiohttp can reach for the same work.
"""

from __future__ import annotations

import sys

import numpy as np
import orjson
from aiohttp import web

WEIGHTS = np.linspace(-1, 1, 16)


def tiny(xs: list[np.ndarray]) -> list[float]:
    return [float(np.dot(WEIGHTS, x)) for x in xs]


def build_model(kind: str):  # type: ignore[no-untyped-def]
    if kind == "tiny":
        return tiny
    import torch

    torch.set_num_threads(1)
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Linear(256, 1024),
        torch.nn.ReLU(),
        torch.nn.Linear(1024, 1024),
        torch.nn.ReLU(),
        torch.nn.Linear(1024, 10),
    ).eval()

    def mlp(xs: list[np.ndarray]) -> list[list[float]]:
        with torch.inference_mode():
            out = net(torch.from_numpy(np.stack(xs).astype(np.float32)))
        return out.numpy().tolist()

    return mlp


def main() -> None:
    port = int(sys.argv[1])
    model = build_model(sys.argv[2] if len(sys.argv) > 2 else "tiny")
    counter = 0

    async def predict(request: web.Request) -> web.Response:
        nonlocal counter
        data = orjson.loads(await request.read())
        x = np.array(data["input"], dtype=np.float64)
        out = model([x])[0]
        counter += 1
        return web.Response(
            body=orjson.dumps({"query_id": counter, "output": out, "default": False}),
            content_type="application/json",
        )

    async def ready(_request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/m/predict", predict)
    app.router.add_get("/v2/health/ready", ready)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


if __name__ == "__main__":
    main()
