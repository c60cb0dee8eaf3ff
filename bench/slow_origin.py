#!/usr/bin/env python3
"""slow_origin.py PORT DIR RATE_BYTES_PER_S FIRST_BYTE_MS: an HTTP origin over DIR as a slow link
would be — each response starts FIRST_BYTE_MS after the request and each connection carries at
most RATE bytes a second (issue 17 §3: origins at 4 MB/s with 100 ms to the first byte)."""
import http.server
import os
import sys
import time

PORT, ROOT, RATE, FIRST_MS = int(sys.argv[1]), sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
CHUNK = 64 * 1024


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        path = os.path.normpath(os.path.join(ROOT, self.path.split("?")[0].lstrip("/")))
        if not path.startswith(os.path.abspath(ROOT)) or not os.path.isfile(path):
            self.send_error(404)
            return
        time.sleep(FIRST_MS / 1000)
        size = os.path.getsize(path)
        self.send_response(200)
        self.send_header("Content-Length", str(size))
        self.send_header("Content-Type", "application/octet-stream")
        self.end_headers()
        start = time.perf_counter()
        sent = 0
        with open(path, "rb") as f:
            while True:
                block = f.read(CHUNK)
                if not block:
                    break
                self.wfile.write(block)
                sent += len(block)
                ahead = sent / RATE - (time.perf_counter() - start)
                if ahead > 0:
                    time.sleep(ahead)


http.server.ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
