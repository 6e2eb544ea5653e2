"""Drives Snowplow's Python tracker (snowplow-tracker, pinned in requirements.txt) against
a collector: python snowplow_driver.py <base URL> <write key> <script> <fixed ISO time>. It sends
every event as the query string of GET /i (the pixel), the key in an X-Write-Key header on
the tracker's own requests session (Snowplow has no write key). Prints one JSON line:
{"errors": [...]} with every failure the tracker reported."""

import json
import sys
from datetime import datetime

import requests
from snowplow_tracker import (
    Emitter,
    PageView,
    SelfDescribing,
    SelfDescribingJson,
    StructuredEvent,
    Subject,
    Tracker,
)

host, write_key, script, fixed_time = sys.argv[1:5]
errors = []
session = requests.Session()
session.headers["X-Write-Key"] = write_key
emitter = Emitter(
    host,
    method="get",
    batch_size=1,
    request_timeout=5,
    session=session,
    on_failure=lambda sent, failed: errors.append(f"{len(failed)} events failed"),
)
subject = (
    Subject()
    .set_domain_user_id("anon-1")
    .set_domain_session_id("s-1")
    .set_useragent(
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1"
    )
)
tracker = Tracker("sp", emitter, subject=subject, app_id="shop", encode_base64=True)

if script == "journey":
    # An anonymous visit, a sign-up (Snowplow has no identify: the user id is set on the
    # subject and a self-describing event carries what the user told), then identified
    # pages and events.
    tracker.track(PageView(page_url="https://shop.example/", page_title="Home", referrer="https://search.example/"))
    subject.set_user_id("42")
    tracker.track(SelfDescribing(SelfDescribingJson("iglu:com.acme/identify/jsonschema/1-0-0", {"plan": "pro", "name": "张伟"})))
    tracker.track(PageView(page_url="https://shop.example/p/1", page_title="Product"))
    tracker.track(StructuredEvent(category="shop", action="加入购物车", label="A1", property_="red", value=12.5))
    # A fixed event id (not a UUID) and true timestamp, as a client resending the event
    # would: the tracker always draws a new eid, so the draw is replaced for this event.
    draw = Tracker.get_uuid
    Tracker.get_uuid = staticmethod(lambda: "order-1001")
    fixed_ms = int(datetime.fromisoformat(fixed_time).timestamp() * 1000)
    tracker.track(
        SelfDescribing(
            SelfDescribingJson("iglu:com.acme/purchase/jsonschema/1-0-0", {"total": 12.5}),
            true_timestamp=fixed_ms,
        )
    )
    Tracker.get_uuid = draw
elif script == "invalid":
    # An event name (the action) over the collector's string limit: a permanent 400.
    tracker.track(StructuredEvent(category="shop", action="x" * 300))
tracker.flush()
print(json.dumps({"errors": errors}))
