//! The invariants an accepted event must meet, checked independently of `validate`: the
//! database's constraints on `user_events`, the record codec's round trip, resubmission as a
//! fixed point.

use super::*;

pub(super) fn depth(v: &Value) -> usize {
    match v {
        Value::Array(a) => 1 + a.iter().map(depth).max().unwrap_or(0),
        Value::Object(o) => 1 + o.values().map(depth).max().unwrap_or(0),
        _ => 1,
    }
}

pub(super) fn no_nul_anywhere(v: &Value) -> bool {
    match v {
        Value::String(s) => !s.contains('\0'),
        Value::Array(a) => a.iter().all(no_nul_anywhere),
        Value::Object(o) => o
            .iter()
            .all(|(k, v)| !k.contains('\0') && no_nul_anywhere(v)),
        _ => true,
    }
}

/// What `user_events` and the binary COPY require of a row, and the configured bounds.
pub(super) fn check_db_invariants(e: &Event, l: &Limits) -> Result<(), String> {
    let text = |name: &str, v: Option<&str>, max: usize| -> Result<(), String> {
        match v {
            Some(s) if s.contains('\0') => Err(format!("{name} holds a NUL: {s:?}")),
            Some(s) if s.len() > max => Err(format!("{name} is {} bytes > {max}", s.len())),
            _ => Ok(()),
        }
    };
    if e.event_name.is_empty() {
        return Err("empty event_name".into());
    }
    text("event_name", Some(&e.event_name), l.max_string_bytes)?;
    for (name, v) in [
        ("session_id", &e.session_id),
        ("event_type", &e.event_type),
        ("device_type", &e.device_type),
        ("browser", &e.browser),
        ("os", &e.os),
        ("country_code", &e.country_code),
        ("region", &e.region),
        ("city", &e.city),
    ] {
        text(name, v.as_deref(), l.max_string_bytes)?;
    }
    text("page_url", e.page_url.as_deref(), l.max_url_bytes)?;
    text("referrer", e.referrer.as_deref(), l.max_url_bytes)?;
    if let Some(d) = &e.device_type {
        if !DEVICE_TYPES.contains(&d.as_str()) {
            return Err(format!("device_type {d:?} violates the CHECK constraint"));
        }
    }
    if let Some(c) = &e.country_code {
        if c.len() != 2 || !c.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(format!(
                "country_code {c:?} is not two upper-case ASCII letters"
            ));
        }
    }
    let now = event::micros(NOW);
    let lo = now - l.max_event_age_secs as i64 * 1_000_000;
    let hi = now + l.max_event_future_secs as i64 * 1_000_000;
    if !(lo..=hi).contains(&e.event_time_us) {
        return Err(format!(
            "event_time_us {} outside [{lo}, {hi}]",
            e.event_time_us
        ));
    }
    if let Some(p) = &e.properties {
        if p.contains('\0') {
            return Err(format!("properties text holds a NUL: {p:?}"));
        }
        if p.len() > l.max_properties_bytes {
            return Err(format!("properties is {} bytes", p.len()));
        }
        let v: Value = serde_json::from_str(p).map_err(|e| format!("properties text: {e}"))?;
        if !v.is_object() {
            return Err(format!("properties is not an object: {p}"));
        }
        if depth(&v) > l.max_properties_depth {
            return Err(format!("properties nests {} deep", depth(&v)));
        }
        if !no_nul_anywhere(&v) {
            return Err("properties holds a NUL after parsing".into());
        }
    }
    let record = Record {
        collector_id: "edge-1".into(),
        received_at_us: now,
        events: vec![e.clone()],
    };
    let bytes = record.encode().map_err(|e| format!("encode: {e}"))?;
    let back = Record::decode(&bytes).map_err(|e| format!("decode: {e}"))?;
    if back != record {
        return Err("record codec round trip changed the event".into());
    }
    Ok(())
}

/// Equal events, properties compared as JSON values with [`json_eq`].
pub(super) fn same_event(a: &Event, b: &Event) -> bool {
    let props = |e: &Event| {
        e.properties
            .as_deref()
            .map(|p| serde_json::from_str::<Value>(p).unwrap_or(Value::Null))
    };
    let (pa, pb) = (props(a), props(b));
    let strip = |e: &Event| Event {
        properties: None,
        ..e.clone()
    };
    strip(a) == strip(b)
        && match (&pa, &pb) {
            (Some(x), Some(y)) => json_eq(x, y),
            _ => pa == pb,
        }
}

/// JSON equality where floats equal to 14 significant digits are equal. serde_json without
/// its `float_roundtrip` feature parses some decimal texts to a neighbour of the nearest
/// double, so each parse → print → parse of `properties` may move a float by an ULP
/// (reported; the fix is that feature, not these tests).
pub(super) fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            x == y
                || match (x.as_f64(), y.as_f64()) {
                    (Some(x), Some(y)) => (x - y).abs() <= 1e-14 * x.abs().max(y.abs()),
                    _ => false,
                }
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_eq(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

/// The JSON a client would send to get `e` back (with explicit browser/os/device_type):
/// the buffer export's shape of the event without its lineage fields.
pub(super) fn resubmission(e: &Event) -> Value {
    let mut v = e.export_json(0, "");
    if let Some(o) = v.as_object_mut() {
        o.remove("received_at");
        o.remove("collector_id");
    }
    v
}

/// Parses `body` in both modes and checks everything it accepted; returns the accepted
/// events of batch mode.
pub(super) fn parse_and_check(body: &[u8], ua: Option<&str>) -> Result<Vec<Event>, TestCaseError> {
    let l = limits();
    let c = ctx(ua);
    let mut accepted = Vec::new();
    for single in [true, false] {
        match parse_events(body, single, &l, &c) {
            Ok((events, errors)) => {
                prop_assert!(!events.is_empty() || !errors.is_empty());
                prop_assert!(events.len() + errors.len() <= l.max_batch_events);
                if single {
                    prop_assert!(events.len() + errors.len() == 1);
                }
                for e in &events {
                    if let Err(m) = check_db_invariants(e, &l) {
                        return Err(TestCaseError::fail(format!(
                            "accepted event breaks an invariant: {m}\nevent: {e:?}\nbody: {}",
                            String::from_utf8_lossy(body)
                        )));
                    }
                    let again =
                        event::validate(&resubmission(e), 0, &l, &ctx(None)).map_err(|err| {
                            TestCaseError::fail(format!("{err:?} re-submitting {e:?}"))
                        })?;
                    prop_assert!(
                        same_event(&again, e),
                        "not a fixed point:\n{:?}\n{:?}",
                        again,
                        e
                    );
                }
                for err in &errors {
                    prop_assert!(!err.message.is_empty());
                    prop_assert!(err.field.is_empty() || FIELDS.contains(&err.field.as_str()));
                }
                if !single {
                    accepted = events;
                }
            }
            Err(r) => prop_assert!(r.status.is_client_error(), "refusal is not a 4xx: {:?}", r),
        }
    }
    Ok(accepted)
}

/// One event's verdict, comparable across runs: the event (with a generated event_id
/// blanked) or the failing field and message.
pub(super) fn verdicts(body: &Value, ua: Option<&str>) -> Vec<Result<Event, (String, String)>> {
    let l = limits();
    let text = body.to_string();
    let items = match body {
        Value::Array(items) => items.clone(),
        _ => Vec::new(),
    };
    let (events, errors) = parse_events(text.as_bytes(), false, &l, &ctx(ua)).expect("a batch");
    let mut errors: BTreeMap<usize, (String, String)> = errors
        .into_iter()
        .map(|e| (e.index, (e.field, e.message)))
        .collect();
    let mut events = events.into_iter();
    items
        .iter()
        .enumerate()
        .map(|(i, item)| match errors.remove(&i) {
            Some(err) => Err(err),
            None => {
                let mut e = events.next().expect("one event per item without an error");
                if matches!(item.get("event_id"), None | Some(Value::Null)) {
                    e.event_id = uuid::Uuid::nil();
                }
                Ok(e)
            }
        })
        .collect()
}
