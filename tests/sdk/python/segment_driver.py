"""Drives Segment's own Python library (segment-analytics-python, pinned in
requirements.txt) against a collector: python segment_driver.py <base URL> <write key> <script>
<fixed ISO time>. It posts JSON batches to /v1/batch with HTTP Basic auth. Prints one JSON
line: {"errors": [...]} with every error the library reported."""

import json
import sys
from datetime import datetime

from segment.analytics.client import Client

from journey import segment_journey

host, write_key, script, fixed_time = sys.argv[1:5]
errors = []
client = Client(
    write_key,
    host=host,
    on_error=lambda e, batch: errors.append(str(e)),
    max_retries=2,
    upload_interval=0.2,
    upload_size=20,
    timeout=5,
)
segment_journey(client, script, datetime.fromisoformat(fixed_time))
client.flush()
client.join()
print(json.dumps({"errors": errors}))
