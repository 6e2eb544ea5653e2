"""The fixed script the Segment-protocol Python libraries (Segment's and RudderStack's,
whose clients share one API) send: an anonymous page, an identify, an identified page, a
track with a Chinese name, and one message with a fixed id and time (a client resending it);
or, for "invalid", one message validation refuses."""


def segment_journey(client, script, fixed_time):
    if script == "journey":
        client.page(
            anonymous_id="anon-1",
            name="Home",
            properties={"url": "https://shop.example/", "referrer": "https://search.example/"},
        )
        client.identify(user_id="42", anonymous_id="anon-1", traits={"plan": "pro", "name": "张伟"})
        client.page(user_id="42", name="Product", properties={"url": "https://shop.example/p/1"})
        client.track(
            user_id="42",
            event="加入购物车",
            properties={"sku": "A1", "price": 12.5},
            context={"sessionId": "s-1"},
        )
        client.track(
            user_id="42",
            event="purchase",
            message_id="order-1001",
            timestamp=fixed_time,
            properties={"total": 12.5},
        )
    elif script == "invalid":
        # An event name over the collector's string limit: a permanent 400.
        client.track(user_id="42", event="x" * 300)
