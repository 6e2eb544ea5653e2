"""Posts a body the way Python's http.client does — the whole body written before the answer
is read — and prints what came back: python whole_body.py <host:port> <path> <bytes>
<plain|gzip|chunked>. The body is a JSON array of seed events (gzip: random data so the
compressed body stays large; chunked: no Content-Length, so the size is only known once
read). Prints one JSON line: {"status": N, "headers": {...}, "body": "..."} or {"error":
"..."} when the connection failed (a reset instead of the answer)."""

import gzip
import http.client
import json
import os
import sys

addr, path, size, mode = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
host, port = addr.rsplit(":", 1)
event = json.dumps({"event_name": "big", "properties": {"pad": "x" * 900}})
body = ("[" + ",".join([event] * (size // (len(event) + 1) + 1)) + "]").encode()
headers = {"Content-Type": "application/json"}
if mode == "gzip":
    # Incompressible bytes inside the gzip stream: `size` bytes as sent.
    body = gzip.compress(os.urandom(size))[:size]
    headers["Content-Encoding"] = "gzip"
conn = http.client.HTTPConnection(host, int(port), timeout=30)
try:
    if mode == "chunked":
        chunks = (body[i : i + 65536] for i in range(0, len(body), 65536))
        conn.request("POST", path, body=chunks, headers=headers, encode_chunked=True)
    else:
        conn.request("POST", path, body=body, headers=headers)
    resp = conn.getresponse()
    out = {"status": resp.status, "headers": dict(resp.getheaders()), "body": resp.read().decode()}
except OSError as e:
    out = {"error": f"{type(e).__name__}: {e}"}
print(json.dumps(out))
