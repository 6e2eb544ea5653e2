//! Strategies: the inputs the properties draw — nasty bytes, JSON values and texts, and
//! "event-like" objects built from the real field names.

use super::*;

/// Strings that stress PostgreSQL TEXT and JSON: NUL, controls, line/paragraph separators,
/// RTL marks, combining characters, astral planes, quotes and backslashes, BOM, noncharacters.
pub(super) fn nasty_char() -> impl Strategy<Value = char> {
    prop_oneof![
        4 => any::<char>(),
        2 => prop::char::range('a', 'z'),
        1 => prop::sample::select(vec![
            '\0', '\u{1}', '\u{7f}', '\u{80}', '\u{9f}', '\u{2028}', '\u{2029}', '\u{200e}',
            '\u{200f}', '\u{202e}', '\u{0301}', '\u{0336}', '\u{feff}', '\u{fffe}', '\u{ffff}',
            '\u{10ffff}', '\u{1f600}', '\u{e000}', '"', '\\', '\'', '\n', '\r', '\t', '/', '%',
            '{', '}', 'ß', 'İ', 'ǅ', 'ﬀ',
        ]),
    ]
}

/// A string of up to `max_chars` nasty characters.
pub(super) fn nasty_string(max_chars: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(nasty_char(), 0..=max_chars).prop_map(|v| v.into_iter().collect())
}

/// A string whose byte length lands near `limit` (just under, at, just over), with a
/// multi-byte character possibly straddling the limit.
pub(super) fn string_near(limit: usize) -> impl Strategy<Value = String> {
    (limit.saturating_sub(4)..=limit + 2, prop::bool::ANY).prop_map(move |(n, wide)| {
        let mut s = "x".repeat(n.saturating_sub(if wide { 3 } else { 0 }));
        if wide {
            s.push('€');
        }
        s
    })
}

/// A text value for a string field: mostly plausible, sometimes nasty or at the limits.
/// `g` weighs the values that are valid (or usually so) against the invalid ones.
pub(super) fn text_value(limit: usize, g: u32) -> impl Strategy<Value = Value> {
    prop_oneof![
        4 * g => "[a-zA-Z0-9_ ./:-]{1,40}".prop_map(Value::from),
        3 * g => nasty_string(40).prop_map(Value::from),
        1 => string_near(limit).prop_map(Value::from),
        1 => Just(Value::Null),
        1 => arb_json(),
    ]
}

/// Any JSON value: all types, huge and tiny numbers, nasty strings and keys, nesting.
pub(super) fn arb_json() -> BoxedStrategy<Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        prop::sample::select(vec![
            f64::MAX,
            f64::MIN,
            f64::MIN_POSITIVE,
            5e-324,
            -0.0,
            1e300,
            1e-300,
            123_456_789.123_456_79
        ])
        .prop_map(Value::from),
        nasty_string(12).prop_map(Value::from),
    ];
    leaf.prop_recursive(10, 32, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map(nasty_string(6), inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
    .boxed()
}

/// A JSON object (what `properties` should be), possibly nested past the depth limit.
pub(super) fn arb_object() -> impl Strategy<Value = Value> {
    prop::collection::btree_map(nasty_string(8), arb_json(), 0..6)
        .prop_map(|m| Value::Object(m.into_iter().collect()))
}

/// A nest of `depth` objects/arrays around a leaf.
pub(super) fn nested(depth: usize, arrays: bool) -> Value {
    (0..depth).fold(json!("leaf"), |v, _| {
        if arrays {
            json!([v])
        } else {
            json!({ "k": v })
        }
    })
}

pub(super) fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).expect("format RFC 3339")
}

/// Values for `event_time`: around the window's edges (with offsets and fractions), far
/// away, malformed, or of the wrong type.
pub(super) fn time_value(g: u32) -> impl Strategy<Value = Value> {
    let l = limits();
    let past = l.max_event_age_secs as i64;
    let future = l.max_event_future_secs as i64;
    prop_oneof![
        4 * g => (-past - 5..future + 5, 0u32..1_000_000_000, -14i8..=14).prop_map(|(s, ns, h)| {
            let t = NOW + time::Duration::new(s, ns as i32);
            let off = time::UtcOffset::from_hms(h, 0, 0).unwrap_or(time::UtcOffset::UTC);
            Value::from(rfc3339(t.to_offset(off)))
        }),
        1 => prop::sample::select(vec![past, -future]).prop_flat_map(|edge| {
            (-2i64..=2).prop_map(move |d| Value::from(rfc3339(NOW - time::Duration::seconds(edge + d))))
        }),
        1 => prop::sample::select(vec![
            "0000-01-01T00:00:00Z", "9999-12-31T23:59:59.999999999Z", "1970-01-01T00:00:00Z",
            "2026-03-15T11:59:60Z", "2026-03-15t12:00:00z", "2026-03-15 12:00:00Z",
            "2026-03-15T12:00:00", "2026-03-15T12:00:00+24:00", "2026-02-30T00:00:00Z",
            "2026-03-15T12:00:00.1234567890123Z", "", "now", "-1",
        ])
        .prop_map(Value::from),
        1 => arb_json(),
    ]
}

/// Values for `user_id`: extreme int64s, numeric strings, floats, huge numbers.
pub(super) fn user_id_value(g: u32) -> impl Strategy<Value = Value> {
    prop_oneof![
        3 * g => any::<i64>().prop_map(Value::from),
        g => prop::sample::select(vec![i64::MIN, i64::MAX, 0, -1]).prop_map(Value::from),
        g => any::<i64>().prop_map(|n| Value::from(n.to_string())),
        1 => prop::sample::select(vec![
            "+5", " 5", "5 ", "9223372036854775808", "-9223372036854775809", "0x10", "1e3",
            "", "١٢٣",
        ])
        .prop_map(Value::from),
        1 => any::<u64>().prop_map(Value::from),
        1 => arb_json(),
    ]
}

/// Values for `event_id`: UUIDs in every accepted spelling, and junk.
pub(super) fn event_id_value(g: u32) -> impl Strategy<Value = Value> {
    prop_oneof![
        3 * g => any::<u128>().prop_map(|n| Value::from(uuid::Uuid::from_u128(n).to_string())),
        g => any::<u128>().prop_map(|n| {
            let u = uuid::Uuid::from_u128(n);
            Value::from(match n % 4 {
                0 => u.simple().to_string(),
                1 => u.braced().to_string(),
                2 => u.urn().to_string(),
                _ => u.to_string().to_uppercase(),
            })
        }),
        g => Just(Value::Null),
        1 => arb_json(),
    ]
}

/// Values for one field; `g` weighs the valid ones (see [`text_value`]).
pub(super) fn field_value(field: &'static str, g: u32) -> BoxedStrategy<Value> {
    let l = limits();
    match field {
        "event_id" => event_id_value(g).boxed(),
        "user_id" => user_id_value(g).boxed(),
        "event_time" => time_value(g).boxed(),
        "device_type" => prop_oneof![
            4 * g => prop::sample::select(DEVICE_TYPES.to_vec()).prop_map(Value::from),
            1 => prop::sample::select(vec!["Desktop", "desktop ", "fridge", "", "mobile\0"])
                .prop_map(Value::from),
            1 => arb_json(),
        ]
        .boxed(),
        "country_code" => prop_oneof![
            4 * g => "[a-zA-Z]{2}".prop_map(Value::from),
            1 => prop::sample::select(vec!["USA", "U", "", "1A", "é", "ÄÖ", "ǅ", "\u{0}A", "ﬀ"])
                .prop_map(Value::from),
            1 => nasty_string(3).prop_map(Value::from),
            1 => arb_json(),
        ]
        .boxed(),
        "properties" => prop_oneof![
            4 * g => arb_object(),
            1 => (7usize..=10, any::<bool>()).prop_map(|(d, arrays)| json!({ "deep": nested(d, arrays) })),
            1 => (l.max_properties_bytes - 40..l.max_properties_bytes + 10)
                .prop_map(|n| json!({ "pad": "p".repeat(n) })),
            1 => arb_json(),
        ]
        .boxed(),
        "page_url" | "referrer" => text_value(l.max_url_bytes, g).boxed(),
        _ => text_value(l.max_string_bytes, g).boxed(),
    }
}

/// An object with a random subset of the real fields (event_name most of the time) and
/// sometimes an unknown extra key: a "calm" one (mostly valid values, so that many are
/// accepted and their invariants checked) or a "wild" one (invalid values as often).
pub(super) fn event_like() -> impl Strategy<Value = Value> {
    prop_oneof![3 => event_like_with(12), 1 => event_like_with(1)]
}

pub(super) fn event_like_with(g: u32) -> impl Strategy<Value = Value> {
    let fields: Vec<BoxedStrategy<Option<Value>>> = FIELDS
        .iter()
        .map(|f| {
            let p = if *f == "event_name" { 0.95 } else { 0.5 };
            prop::option::weighted(p, field_value(f, g)).boxed()
        })
        .collect();
    (fields, prop::option::of((nasty_string(6), arb_json()))).prop_map(|(values, extra)| {
        let mut m = Map::new();
        for (f, v) in FIELDS.iter().zip(values) {
            if let Some(v) = v {
                m.insert(f.to_string(), v);
            }
        }
        if let Some((k, v)) = extra {
            m.insert(k, v);
        }
        Value::Object(m)
    })
}

/// Raw JSON texts that no `serde_json::Value` can produce: out-of-range and odd numbers,
/// escapes PostgreSQL refuses, lone surrogates, duplicate keys, whitespace oddities.
pub(super) fn raw_json_text() -> BoxedStrategy<String> {
    let leaf = prop::sample::select(vec![
        "1e400",
        "-1e400",
        "1e-400",
        "-0",
        "-0.0",
        "0e0",
        "1E+2",
        "01",
        "1.",
        ".5",
        "+1",
        "NaN",
        "Infinity",
        "123456789012345678901234567890",
        "-9223372036854775809",
        "18446744073709551616",
        "9223372036854775807",
        "-9223372036854775808",
        "1.7976931348623157e308",
        "4.9e-324",
        "true",
        "false",
        "null",
        "nul",
        r#""\u0000""#,
        r#""a\u0000b""#,
        r#""\ud800""#,
        r#""\udc00""#,
        r#""\ud83d\ude00""#,
        r#""\ud800\u0041""#,
        r#""\u2028\u2029""#,
        r#""\x41""#,
        r#""\'""#,
        "\"\u{7}\"",
        "\"tab\there\"",
        r#""\/\b\f\n\r\t\"\\""#,
        "\"\u{feff}\"",
        r#""""#,
        r#"'single'"#,
    ])
    .prop_map(str::to_string);
    leaf.prop_recursive(8, 64, 6, |inner| {
        let key = prop_oneof![
            prop::sample::select(FIELDS.to_vec()).prop_map(|f| format!("\"{f}\"")),
            prop::sample::select(vec![r#""\u0000""#, r#""a\u0000""#, r#""\ud800""#, r#""""#])
                .prop_map(str::to_string),
        ];
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(|v| format!("[{}]", v.join(","))),
            prop::collection::vec((key, inner), 0..6).prop_map(|kv| {
                let body: Vec<String> = kv.into_iter().map(|(k, v)| format!("{k}:{v}")).collect();
                format!("{{{}}}", body.join(","))
            }),
        ]
    })
    .boxed()
}

/// A raw event object text: real field names (duplicates allowed) with raw values, plus a
/// valid event_name most of the time so that the other fields get validated.
pub(super) fn raw_event_text() -> impl Strategy<Value = String> {
    (
        prop::bool::weighted(0.8),
        prop::collection::vec(
            (prop::sample::select(FIELDS.to_vec()), raw_json_text()),
            0..6,
        ),
    )
        .prop_map(|(named, kv)| {
            let mut parts: Vec<String> = kv
                .into_iter()
                .map(|(k, v)| format!("\"{k}\":{v}"))
                .collect();
            if named {
                parts.insert(0, r#""event_name":"e""#.to_string());
            }
            format!("{{{}}}", parts.join(","))
        })
}

/// Bytes that look like JSON often enough to get past the first character.
pub(super) fn jsonish_bytes() -> impl Strategy<Value = Vec<u8>> {
    let token = prop_oneof![
        prop::sample::select(vec![
            "{",
            "}",
            "[",
            "]",
            ",",
            ":",
            "\"",
            "\\",
            "\\u",
            "0000",
            "d800",
            "event_name",
            "\"event_name\":\"x\"",
            "\"properties\":{",
            "\"batch\":[",
            "1e999",
            "-",
            "null",
            " ",
            "\n",
        ])
        .prop_map(|s| s.as_bytes().to_vec()),
        prop::collection::vec(any::<u8>(), 1..4),
    ];
    prop::collection::vec(token, 0..64).prop_map(|v| v.concat())
}

pub(super) fn user_agent() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        2 => Just(None),
        2 => prop::sample::select(USER_AGENTS.to_vec()).prop_map(|s| Some(s.to_string())),
        1 => "[ -~]{0,300}".prop_map(Some),
        1 => "[ -~]{1020,1030}".prop_map(Some),
    ]
}
