"""`python -m apps.api [--host 127.0.0.1] [--port 8000]`: serve with one uvicorn worker.

Shutdown drains: on SIGTERM uvicorn stops accepting, lets in-flight requests finish (up to
`--drain-seconds`), then the app stops its refresher and flushes the prediction log.
"""

from __future__ import annotations

import argparse

import uvicorn


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m apps.api")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--drain-seconds", type=int, default=20)
    opts = parser.parse_args()
    uvicorn.run(
        "apps.api.app:create_app",
        factory=True,
        host=opts.host,
        port=opts.port,
        workers=1,
        timeout_graceful_shutdown=opts.drain_seconds,
        log_config=None,
        access_log=False,
        proxy_headers=True,
        forwarded_allow_ips="127.0.0.1",
    )


if __name__ == "__main__":
    main()
