"""``python -m examples.support_bot --port 8765``: serve the sample support bot until interrupted."""

from __future__ import annotations

import argparse

from examples.support_bot.bot import DEFAULT_SEED, refund_code
from examples.support_bot.server import make_server


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m examples.support_bot", description=__doc__)
    parser.add_argument("--port", type=int, default=8765, help="Port to listen on (default 8765; 0 picks a free one).")
    parser.add_argument("--host", default="127.0.0.1", help="Address to listen on (default 127.0.0.1).")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"Seed (default {DEFAULT_SEED}): sets the code.")
    args = parser.parse_args()
    server = make_server(args.host, args.port, args.seed)
    host, port = args.host, server.server_address[1]
    print(f"support bot on http://{host}:{port}/chat (stateless) and /chat-stateful", flush=True)
    print(f"secret refund code: {refund_code(args.seed)}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
