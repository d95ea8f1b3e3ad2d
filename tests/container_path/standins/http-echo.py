"""Stand-in for hashicorp/http-echo: `-listen=:5678 -text=blue` answers "blue"."""

import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

args = dict(a.lstrip("-").split("=", 1) for a in sys.argv[1:] if "=" in a)
text = (args.get("text", "hello") + "\n").encode()
host, _, port = args.get("listen", ":5678").rpartition(":")


class Echo(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(text)))
        self.end_headers()
        self.wfile.write(text)

    do_POST = do_PUT = do_DELETE = do_GET  # noqa: N815 (http.server's names)

    def log_message(self, *_args: object) -> None:
        pass


ThreadingHTTPServer((host or "0.0.0.0", int(port)), Echo).serve_forever()
