"""Drives PostHog's own Python library (posthog, pinned in requirements.txt) against a
collector: python posthog_driver.py <base URL> <project key> <script> <fixed ISO time>. It
posts {"api_key": …, "batch": [...]} to /batch/. The library has no identify call of its
own any more: the script captures `$identify` as posthog-node's identify does. Prints one
JSON line: {"errors": [...]} with every error the library reported. (Each driver is named
<lib>_driver.py: a posthog.py would shadow the library.)"""

import json
import sys
from datetime import datetime

from posthog import Posthog

host, api_key, script, fixed_time = sys.argv[1:5]
errors = []
client = Posthog(
    api_key,
    host=host,
    on_error=lambda e, batch: errors.append(str(e)),
    flush_at=20,
    flush_interval=0.2,
    max_retries=2,
    timeout=5,
)
if script == "journey":
    # An anonymous page view, a sign-up (identify), then identified captures.
    client.capture(
        "$pageview",
        distinct_id="anon-1",
        properties={
            "$current_url": "https://shop.example/",
            "$referrer": "https://search.example/",
            "$session_id": "s-1",
            "$raw_user_agent": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1",
        },
    )
    client.capture(
        "$identify",
        distinct_id="42",
        properties={"$set": {"plan": "pro", "name": "张伟"}, "$anon_distinct_id": "anon-1"},
    )
    client.capture("加入购物车", distinct_id="42", properties={"sku": "A1", "price": 12.5, "$session_id": "s-1"})
    # A fixed uuid and time, as a client resending the event would.
    client.capture(
        "purchase",
        distinct_id="42",
        uuid="0190b6e4-0000-7000-8000-00000000c0de",
        timestamp=datetime.fromisoformat(fixed_time),
        properties={"total": 12.5},
    )
elif script == "invalid":
    # Refused by validation: an event name over the limit.
    client.capture("x" * 300, distinct_id="42")
client.flush()
client.shutdown()
print(json.dumps({"errors": errors}))
