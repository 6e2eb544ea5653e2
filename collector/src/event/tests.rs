//! Unit tests of validation: each field's accepted and refused forms, the messages a client
//! reads, and the user-agent parse.

use super::*;
use serde_json::json;

fn ctx() -> Context<'static> {
    Context {
        now: OffsetDateTime::now_utc(),
        user_agent: None,
        source: None,
    }
}

fn check(v: Value) -> Result<Event, FieldError> {
    validate(&v, 3, &Limits::default(), &ctx())
}

#[test]
fn accepts_a_full_event_and_assigns_uuid_v7() {
    let e = check(
        json!({"event_name":"page_view","user_id":42,"country_code":"fr",
        "device_type":"mobile","properties":{"a":[1,{"b":"c"}]}}),
    )
    .expect("valid");
    assert_eq!(e.country_code.as_deref(), Some("FR"));
    assert_eq!(e.event_id.get_version_num(), 7);
    assert_eq!(e.properties.as_deref(), Some(r#"{"a":[1,{"b":"c"}]}"#));
}

#[test]
fn keeps_user_ids_as_sent_and_fills_the_numeric_one() {
    let ids = |v: Value| {
        let e = check(v).expect("valid");
        (e.app_user_id, e.user_id, e.anonymous_id)
    };
    assert_eq!(
        ids(json!({"event_name":"x","user_id":42})),
        (Some("42".into()), Some(42), None)
    );
    assert_eq!(
        ids(json!({"event_name":"x","user_id":"usr_8f3a2c","anonymous_id":"a-1"})),
        (Some("usr_8f3a2c".into()), None, Some("a-1".into()))
    );
    assert_eq!(
        ids(json!({"event_name":"x","user_id":"042"})),
        (Some("042".into()), None, None)
    );
    assert_eq!(
        ids(json!({"event_name":"x","user_id":"","anonymous_id":""})),
        (None, None, None)
    );
    let e =
        check(json!({"event_name":"identify","user_id":"u@example.com","traits":{"plan":"pro"}}))
            .expect("valid");
    assert_eq!(e.traits.as_deref(), Some(r#"{"plan":"pro"}"#));
    assert_eq!(e.app_user_id.as_deref(), Some("u@example.com"));
}

#[test]
fn names_index_and_field() {
    let cases = [
        (json!({"user_id":1}), "event_name"),
        (
            json!({"event_name":"x","device_type":"fridge"}),
            "device_type",
        ),
        (
            json!({"event_name":"x","country_code":"FRA"}),
            "country_code",
        ),
        (json!({"event_name":"x","user_id":"a\u{0}b"}), "user_id"),
        (
            json!({"event_name":"x","user_id":"u".repeat(300)}),
            "user_id",
        ),
        (json!({"event_name":"x","user_id":1.5}), "user_id"),
        (json!({"event_name":"x","user_id":true}), "user_id"),
        (json!({"event_name":"x","anonymous_id":7}), "anonymous_id"),
        (
            json!({"event_name":"x","anonymous_id":"a\u{0}"}),
            "anonymous_id",
        ),
        (json!({"event_name":"x","traits":[1]}), "traits"),
        (json!({"event_name":"x","traits":"plan=pro"}), "traits"),
        (json!({"event_name":"x","event_id":"nope"}), "event_id"),
        (
            json!({"event_name":"x","event_time":"yesterday"}),
            "event_time",
        ),
        (
            json!({"event_name":"x","event_time":"1999-01-01T00:00:00Z"}),
            "event_time",
        ),
        (json!({"event_name":"x","properties":[1]}), "properties"),
        (
            json!({"event_name":"x","properties":{"k":"a\u{0}b"}}),
            "properties",
        ),
        (json!({"event_name":"x","city":"a\u{0}"}), "city"),
        (
            json!({"event_name":"x","session_id":"s".repeat(300)}),
            "session_id",
        ),
        (json!("just a string"), ""),
    ];
    for (v, field) in cases {
        let e = check(v.clone()).expect_err(&v.to_string());
        assert_eq!(
            (e.index, e.field.as_str()),
            (3, field),
            "{v}: {}",
            e.message
        );
    }
}

#[test]
fn bounds_properties_depth() {
    let mut v = json!(1);
    for _ in 0..10 {
        v = json!({ "k": v });
    }
    let e = check(json!({"event_name":"x","properties":v})).expect_err("too deep");
    assert!(e.message.contains("deeper"), "{}", e.message);
}

#[test]
fn derives_device_from_user_agent() {
    let ua = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1";
    let c = Context {
        now: OffsetDateTime::now_utc(),
        user_agent: Some(ua),
        source: None,
    };
    let e = validate(&json!({"event_name":"x"}), 0, &Limits::default(), &c).expect("valid");
    assert_eq!(e.device_type.as_deref(), Some("mobile"));
    assert_eq!(e.os.as_deref(), Some("iPhone"));
    assert_eq!(e.browser.as_deref(), Some("Safari"));
}
