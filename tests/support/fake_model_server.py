"""A stand-in for ``bridgeai serve-model`` in tests of the process swap (not of the server).

Answers ``/v2/health/ready`` (after ``--ready-after`` seconds) and ``/v2/models/<name>`` with the
``--tag`` it was started with, so a test can tell which process answers. ``--exit`` makes it
exit at once with code 3 after printing a message, like a server that cannot load its model.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--tag", default="")
    parser.add_argument("--ready-after", type=float, default=0.0)
    parser.add_argument("--exit", action="store_true")
    args = parser.parse_args()
    if args.exit:
        print("cannot load model: no such version", flush=True)
        sys.exit(3)
    started = time.monotonic()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/v2/health/ready":
                ok = time.monotonic() - started >= args.ready_after
                self.send_response(200 if ok else 503)
                self.end_headers()
                return
            body = json.dumps({"name": "house_price_prediction_prod", "tag": args.tag}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *a: object) -> None:
            pass

    ThreadingHTTPServer(("127.0.0.1", args.port), Handler).serve_forever()


if __name__ == "__main__":
    main()
