"""Server time of the web console's folder page (in process, over ASGI, no TLS).

One command:  .venv/bin/python bench/console_bench.py [--secrets 10000] [--requests 200]

Seeds a folder of ``--secrets`` secrets and one of 10 in an in-process SQLite vault,
signs in to the console with the root token, then times ``GET /ui/secrets?folder=...``
(p50/p95) for both folders, beside two references measured in the same run: the API's
listing of the same folder (``GET /api/v1/secrets?prefix=``, the same service call
without rendering) and ``GET /api/v1/sys/health``. Writes bench/results/console.{md,json}.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import tempfile
import time
from pathlib import Path

import httpx
import orjson

from keysafe.access.models import RequestContext
from keysafe.config import load_settings
from keysafe.server.app import create_app
from keysafe.server.services import Services, build_services
from keysafe.store.engine import make_engine
from keysafe.store.migrate import upgrade
from keysafe.system.service import MODE_KEY

RESULTS = Path(__file__).resolve().parent / "results"
SAME_SITE = {"Sec-Fetch-Site": "same-origin"}


def _vault(tmp: Path) -> tuple[Services, RequestContext, str]:
    """A new SQLite vault in ``tmp``: services (audit running), root context and token."""
    engine = make_engine(f"sqlite:///{tmp / 'keysafe.db'}")
    upgrade(engine)
    settings = load_settings(home=tmp / "home")
    result = build_services(settings, engine=engine).system.initialize(1, 1, mode=MODE_KEY)
    svc = build_services(settings, engine=engine, unseal_key=result.shares[0])
    assert svc.system.auto_unseal()
    svc.audit.start()
    root = svc.tokens.authenticate(result.root_token)
    return svc, RequestContext(root, "127.0.0.1", "bench"), result.root_token


async def _seed(svc: Services, ctx: RequestContext, folder: str, count: int) -> None:
    secrets = svc.secrets
    batch = 200
    for start in range(0, count, batch):
        await asyncio.gather(
            *(
                secrets.write(ctx, f"{folder}S{i:05d}", f"value-{i}")
                for i in range(start, min(count, start + batch))
            )
        )


async def _time(client: httpx.AsyncClient, url: str, n: int, headers: dict[str, str]) -> dict:
    samples: list[float] = []
    for _ in range(3):  # warm-up
        assert (await client.get(url, headers=headers)).status_code == 200, url
    for _ in range(n):
        start = time.perf_counter()
        reply = await client.get(url, headers=headers)
        samples.append((time.perf_counter() - start) * 1000)
        assert reply.status_code == 200, url
    samples.sort()
    return {
        "url": url,
        "n": n,
        "p50_ms": statistics.median(samples),
        "p95_ms": samples[int(0.95 * (n - 1))],
    }


async def main(count: int, n: int) -> list[dict]:
    with tempfile.TemporaryDirectory() as tmp:
        svc, root, token = _vault(Path(tmp))
        await _seed(svc, root, "big/", count)
        await _seed(svc, root, "small/", 10)
        app = create_app(svc.settings, services=svc)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="https://t") as client:
            page = await client.get("/ui/login")
            csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
            assert csrf is not None
            signed = await client.post(
                "/ui/login/token",
                data={"csrf": csrf.group(1), "token": token},
                headers=SAME_SITE,
            )
            assert signed.status_code == 303, signed.text
            api = {"Authorization": f"Bearer {token}"}
            rows = [
                await _time(client, "/api/v1/sys/health", n, {}),
                await _time(client, "/api/v1/secrets?prefix=small/", n, api),
                await _time(client, "/ui/secrets?folder=small/", n, {}),
                await _time(client, "/api/v1/secrets?prefix=big/", n, api),
                await _time(client, "/ui/secrets?folder=big/", n, {}),
            ]
        svc.close()
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--secrets", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    rows = asyncio.run(main(args.secrets, args.requests))
    health = rows[0]["p50_ms"]
    lines = [
        f"# Console folder page, {args.secrets} secrets (in process, SQLite)",
        "",
        "| request | p50 ms | p95 ms | p50 / health |",
        "| --- | ---: | ---: | ---: |",
    ]
    for row in rows:
        ratio = row["p50_ms"] / health
        lines.append(
            f"| `{row['url']}` | {row['p50_ms']:.1f} | {row['p95_ms']:.1f} | {ratio:.1f} |"
        )
    table = "\n".join(lines) + "\n"
    print(table)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "console.md").write_text(table)
    (RESULTS / "console.json").write_bytes(orjson.dumps(rows, option=orjson.OPT_INDENT_2))
