#!/usr/bin/env python3
"""slow_origin.py PORT DIR RATE_BYTES_PER_S FIRST_BYTE_MS: an HTTP origin over DIR as a slow link
would be — each response starts FIRST_BYTE_MS after the request and each connection carries at
most RATE bytes a second (issue 17 §3: origins at 4 MB/s with 100 ms to the first byte).
It answers single byte ranges (Range: bytes=S-E, 206 with Content-Range) as the web servers and
object stores that hold masters do, and sends an ETag and Last-Modified; each range request
pays the first-byte wait and its connection's rate like any other."""
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
        st = os.stat(path)
        size = st.st_size
        etag = '"%x-%x"' % (st.st_mtime_ns, size)
        first, last = 0, size - 1
        ranged = False
        spec = self.headers.get("Range", "")
        if_range = self.headers.get("If-Range")
        if spec.startswith("bytes=") and "," not in spec and (if_range is None or if_range == etag):
            a, _, b = spec[6:].partition("-")
            try:
                if a:
                    first, last = int(a), min(int(b), size - 1) if b else size - 1
                else:
                    first, last = max(0, size - int(b)), size - 1
                ranged = True
            except ValueError:
                pass
            if ranged and first > last:
                self.send_response(416)
                self.send_header("Content-Range", "bytes */%d" % size)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
        self.send_response(206 if ranged else 200)
        if ranged:
            self.send_header("Content-Range", "bytes %d-%d/%d" % (first, last, size))
        self.send_header("Content-Length", str(last - first + 1))
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("ETag", etag)
        self.send_header("Last-Modified", self.date_time_string(int(st.st_mtime)))
        self.end_headers()
        start = time.perf_counter()
        sent = 0
        left = last - first + 1
        with open(path, "rb") as f:
            f.seek(first)
            while left > 0:
                block = f.read(min(CHUNK, left))
                if not block:
                    break
                self.wfile.write(block)
                sent += len(block)
                left -= len(block)
                ahead = sent / RATE - (time.perf_counter() - start)
                if ahead > 0:
                    time.sleep(ahead)


class Server(http.server.ThreadingHTTPServer):
    # A listen backlog like a web server's (nginx: 511), not socketserver's 5: a slow link, not
    # a full accept queue, is what this origin stands for.
    request_queue_size = 512
    daemon_threads = True


Server(("127.0.0.1", PORT), Handler).serve_forever()
