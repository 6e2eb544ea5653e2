//! The live tail's filter: which events to show, as `monitor tail --filter` and the Tail
//! view's `/` input write it.
//!
//! Syntax: whitespace-separated terms, all of which must hold. A bare word matches event
//! names containing it (case-insensitive); `name=X` an event name equal to X; `user=42` a
//! user id; `collector=ID`, `session=S`, `country=DE`, `device=mobile`, `type=T` those
//! fields; any other `key=value` a top-level property whose value (a string as it is, other
//! JSON scalars as written) equals `value`. `key!=value` negates a term.
//!
//! Invariant: parsing is total (every text is a filter or one error naming the bad term) and
//! matching is a pure function of the filter and the event.

use crate::model::TailEvent;

/// One condition on an event.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Term {
    /// Event name contains (lower-cased).
    NameContains(String),
    Field {
        field: Field,
        value: String,
        negate: bool,
    },
    Property {
        key: String,
        value: String,
        negate: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Name,
    User,
    Collector,
    Session,
    Country,
    Device,
    Type,
}

impl Field {
    fn from_key(k: &str) -> Option<Field> {
        Some(match k {
            "name" | "event" | "event_name" => Field::Name,
            "user" | "user_id" => Field::User,
            "collector" | "collector_id" => Field::Collector,
            "session" | "session_id" => Field::Session,
            "country" | "country_code" => Field::Country,
            "device" | "device_type" => Field::Device,
            "type" | "event_type" => Field::Type,
            _ => return None,
        })
    }

    fn value(self, e: &TailEvent) -> Option<String> {
        match self {
            Field::Name => Some(e.event_name.clone()),
            Field::User => e.user_id.clone().or_else(|| e.anonymous_id.clone()),
            Field::Collector => Some(e.collector_id.clone()),
            Field::Session => e.session_id.clone(),
            Field::Country => e.country_code.clone(),
            Field::Device => e.device_type.clone(),
            Field::Type => e.event_type.clone(),
        }
    }
}

/// A parsed filter; the empty filter matches everything.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Filter {
    terms: Vec<Term>,
    text: String,
}

impl Filter {
    /// Parses `text` (see the module's syntax).
    pub fn parse(text: &str) -> Result<Filter, String> {
        let mut terms = Vec::new();
        for word in text.split_whitespace() {
            let term = match word.split_once('=') {
                None => Term::NameContains(word.to_lowercase()),
                Some((key, value)) => {
                    let (key, negate) = match key.strip_suffix('!') {
                        Some(k) => (k, true),
                        None => (key, false),
                    };
                    if key.is_empty() {
                        return Err(format!("{word:?}: no key before '='"));
                    }
                    let value = value.to_string();
                    match Field::from_key(key) {
                        Some(Field::User) if value.parse::<i64>().is_err() => {
                            return Err(format!("{word:?}: a user id is an integer"))
                        }
                        Some(field) => Term::Field {
                            field,
                            value,
                            negate,
                        },
                        None => Term::Property {
                            key: key.strip_prefix("prop.").unwrap_or(key).to_string(),
                            value,
                            negate,
                        },
                    }
                }
            };
            terms.push(term);
        }
        Ok(Filter {
            terms,
            text: text.split_whitespace().collect::<Vec<_>>().join(" "),
        })
    }

    /// The filter as typed (normalised spaces); empty when it matches everything.
    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// Whether `e` satisfies every term.
    pub fn matches(&self, e: &TailEvent) -> bool {
        self.terms.iter().all(|t| match t {
            Term::NameContains(s) => e.event_name.to_lowercase().contains(s.as_str()),
            Term::Field {
                field,
                value,
                negate,
            } => (field.value(e).as_deref() == Some(value.as_str())) != *negate,
            Term::Property { key, value, negate } => {
                let found = e
                    .properties
                    .as_ref()
                    .and_then(|p| p.get(key))
                    .map(|v| match v {
                        serde_json::Value::String(s) => s.clone(),
                        other => other.to_string(),
                    });
                (found.as_deref() == Some(value.as_str())) != *negate
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(name: &str, user: Option<i64>, props: serde_json::Value) -> TailEvent {
        TailEvent {
            event_name: name.into(),
            user_id: user.map(|u| u.to_string()),
            collector_id: "edge-1".into(),
            properties: Some(props),
            ..TailEvent::default()
        }
    }

    #[test]
    fn terms_combine() {
        let cart = event("加入购物车", Some(42), json!({"plan": "pro", "qty": 2}));
        let buy = event("購入完了🎉", Some(7), json!({"plan": "free"}));
        let f = |s: &str| Filter::parse(s).unwrap();
        assert!(f("").matches(&cart));
        assert!(f("购物").matches(&cart) && !f("购物").matches(&buy));
        assert!(f("name=購入完了🎉").matches(&buy));
        assert!(f("user=42").matches(&cart) && !f("user=42").matches(&buy));
        assert!(f("plan=pro qty=2").matches(&cart));
        assert!(!f("plan=pro qty=3").matches(&cart));
        assert!(f("plan!=pro").matches(&buy) && !f("plan!=pro").matches(&cart));
        assert!(f("prop.plan=free collector=edge-1").matches(&buy));
        assert!(f("PAGE").matches(&event("page_view", None, json!({}))));
        assert_eq!(f("  a   plan=pro ").text(), "a plan=pro");
        assert!(Filter::parse("user=bob").is_err());
        assert!(Filter::parse("=x").is_err());
    }
}
