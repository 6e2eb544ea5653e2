//! The analyses' filter: which events an analysis is computed over (`--where`, the
//! dashboard's `f`).
//!
//! A filter is a conjunction of conditions on an event: its `source` (the write key's
//! name), its `event` name, its `device` type, its `country` code and any number of
//! top-level properties `prop.KEY=VALUE` (the property's value as text, `properties ->>
//! KEY`: a string as it is, a number or a boolean as JSON writes it). Written `FIELD=VALUE`,
//! one term per condition; the value is everything after the first `=` (it may hold `=`,
//! spaces, CJK or emoji), trimmed. A field given again replaces its earlier value (the same
//! for a property key). `device` is lower-cased and must be one of the column's values;
//! `country` is upper-cased and must be two letters (as the collector stores them).
//!
//! Invariant: a [`Filter`] only ever holds what [`Filter::add`] accepted: known fields,
//! non-empty values without control characters, at most [`MAX_PROPERTIES`] properties, keys
//! of at most [`MAX_KEY_CHARS`] and values of at most [`MAX_VALUE_CHARS`] characters. It is
//! data: the SQL that applies it binds every value ([`crate::query::filter`]).

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// The most `prop.KEY=VALUE` conditions a filter holds.
pub const MAX_PROPERTIES: usize = 8;
/// The longest value, in characters.
pub const MAX_VALUE_CHARS: usize = 200;
/// The longest property key, in characters.
pub const MAX_KEY_CHARS: usize = 64;
/// The fields a term may name (`prop.` takes a key after the dot).
pub const FIELDS: &str = "source, event, device, country, prop.KEY";
/// The device types the database accepts.
pub const DEVICES: [&str; 4] = ["desktop", "mobile", "tablet", "other"];

/// Events an analysis is computed over: all conditions hold (empty: every event).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct Filter {
    pub source: Option<String>,
    pub event: Option<String>,
    pub device: Option<String>,
    pub country: Option<String>,
    /// `(key, value)`, keys distinct, in the order given.
    pub properties: Vec<(String, String)>,
}

/// Why a term was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FilterError {
    #[error("{0:?} is not FIELD=VALUE (fields: {FIELDS})")]
    NotATerm(String),
    #[error("unknown field {0:?} (fields: {FIELDS})")]
    UnknownField(String),
    #[error("{0}= needs a value")]
    EmptyValue(String),
    #[error("prop. needs a key: prop.KEY=VALUE")]
    EmptyKey,
    #[error("{field}: longer than {max} characters")]
    TooLong { field: String, max: usize },
    #[error("{0}: control characters are not allowed")]
    Control(String),
    #[error("at most {MAX_PROPERTIES} property conditions")]
    TooMany,
    #[error("device must be one of {}", DEVICES.join(", "))]
    Device,
    #[error("country must be a two-letter code such as DE")]
    Country,
}

impl Filter {
    /// No condition: the analyses run unfiltered.
    pub fn is_empty(&self) -> bool {
        self.source.is_none()
            && self.event.is_none()
            && self.device.is_none()
            && self.country.is_none()
            && self.properties.is_empty()
    }

    /// The filter of every term, in order (a later term for the same field wins).
    pub fn parse<S: AsRef<str>>(terms: &[S]) -> Result<Filter, FilterError> {
        let mut f = Filter::default();
        for t in terms {
            f.add(t.as_ref())?;
        }
        Ok(f)
    }

    /// Adds one `FIELD=VALUE` term; on error the filter is unchanged.
    pub fn add(&mut self, term: &str) -> Result<(), FilterError> {
        let Some((field, value)) = term.split_once('=') else {
            return Err(FilterError::NotATerm(term.trim().to_string()));
        };
        let (field, value) = (field.trim(), value.trim());
        if field.is_empty() {
            return Err(FilterError::NotATerm(term.trim().to_string()));
        }
        if value.is_empty() {
            return Err(FilterError::EmptyValue(field.to_string()));
        }
        check_text(field, value, MAX_VALUE_CHARS)?;
        let value = value.to_string();
        match field.to_ascii_lowercase().as_str() {
            "source" => self.source = Some(value),
            "event" => self.event = Some(value),
            "device" => {
                let v = value.to_ascii_lowercase();
                if !DEVICES.contains(&v.as_str()) {
                    return Err(FilterError::Device);
                }
                self.device = Some(v);
            }
            "country" => {
                if value.len() != 2 || !value.bytes().all(|b| b.is_ascii_alphabetic()) {
                    return Err(FilterError::Country);
                }
                self.country = Some(value.to_ascii_uppercase());
            }
            _ => {
                let Some(key) = field
                    .strip_prefix("prop.")
                    .or_else(|| field.strip_prefix("PROP."))
                else {
                    return Err(FilterError::UnknownField(field.to_string()));
                };
                let key = key.trim();
                if key.is_empty() {
                    return Err(FilterError::EmptyKey);
                }
                check_text(field, key, MAX_KEY_CHARS)?;
                if let Some(slot) = self.properties.iter_mut().find(|(k, _)| k == key) {
                    slot.1 = value;
                } else if self.properties.len() >= MAX_PROPERTIES {
                    return Err(FilterError::TooMany);
                } else {
                    self.properties.push((key.to_string(), value));
                }
            }
        }
        Ok(())
    }

    /// One `field=value` per condition, in a fixed order (source, event, device, country,
    /// then the properties as given): what the chips show, and terms that [`Filter::parse`]
    /// reads back to the same filter.
    pub fn terms(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (name, v) in [
            ("source", &self.source),
            ("event", &self.event),
            ("device", &self.device),
            ("country", &self.country),
        ] {
            if let Some(v) = v {
                out.push(format!("{name}={v}"));
            }
        }
        out.extend(self.properties.iter().map(|(k, v)| format!("prop.{k}={v}")));
        out
    }

    /// The short form: the terms joined by spaces (`event=加入购物车 prop.plan=pro`).
    pub fn label(&self) -> String {
        self.terms().join(" ")
    }

    /// The property keys and values, as two parallel lists (for bind parameters).
    pub fn property_lists(&self) -> (Vec<String>, Vec<String>) {
        self.properties.iter().cloned().unzip()
    }
}

/// `text` has at most `max` characters and no control character.
fn check_text(field: &str, text: &str, max: usize) -> Result<(), FilterError> {
    if text.chars().count() > max {
        return Err(FilterError::TooLong {
            field: field.to_string(),
            max,
        });
    }
    if text.chars().any(char::is_control) {
        return Err(FilterError::Control(field.to_string()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terms_parse_and_round_trip() {
        let f = Filter::parse(&[
            "event=加入购物车",
            " source = web ",
            "device=Mobile",
            "country=de",
            "prop.plan=pro 🚀",
            "prop.q=a=b",
        ])
        .unwrap();
        assert_eq!(f.event.as_deref(), Some("加入购物车"));
        assert_eq!(f.source.as_deref(), Some("web"));
        assert_eq!(f.device.as_deref(), Some("mobile"));
        assert_eq!(f.country.as_deref(), Some("DE"));
        assert_eq!(
            f.properties,
            vec![("plan".into(), "pro 🚀".into()), ("q".into(), "a=b".into())]
        );
        assert_eq!(Filter::parse(&f.terms()).unwrap(), f);
        assert_eq!(
            f.label(),
            "source=web event=加入购物车 device=mobile country=DE prop.plan=pro 🚀 prop.q=a=b"
        );
        assert!(!f.is_empty());
        assert!(Filter::default().is_empty());
    }

    #[test]
    fn a_field_given_again_replaces_it() {
        let f = Filter::parse(&["event=a", "event=b", "prop.k=1", "prop.k=2"]).unwrap();
        assert_eq!(f.event.as_deref(), Some("b"));
        assert_eq!(f.properties, vec![("k".into(), "2".into())]);
    }

    #[test]
    fn clear_errors() {
        let err = |t: &str| Filter::parse(&[t]).unwrap_err();
        assert_eq!(
            err("colour=red"),
            FilterError::UnknownField("colour".into())
        );
        assert!(err("colour=red").to_string().contains("prop.KEY"));
        assert_eq!(err("event"), FilterError::NotATerm("event".into()));
        assert_eq!(err("=x"), FilterError::NotATerm("=x".into()));
        assert_eq!(err("event= "), FilterError::EmptyValue("event".into()));
        assert_eq!(err("prop.=x"), FilterError::EmptyKey);
        assert_eq!(err("device=phone"), FilterError::Device);
        assert_eq!(err("country=DEU"), FilterError::Country);
        assert_eq!(err("event=a\u{7}b"), FilterError::Control("event".into()));
        let long = "名".repeat(MAX_VALUE_CHARS + 1);
        assert!(matches!(
            err(&format!("event={long}")),
            FilterError::TooLong { .. }
        ));
        // A value of exactly the bound, in CJK (3 bytes each), is accepted.
        let bound = "名".repeat(MAX_VALUE_CHARS);
        assert!(Filter::parse(&[format!("event={bound}")]).is_ok());
        let mut f = Filter::default();
        for i in 0..MAX_PROPERTIES {
            f.add(&format!("prop.k{i}=v")).unwrap();
        }
        let before = f.clone();
        assert_eq!(f.add("prop.more=v"), Err(FilterError::TooMany));
        assert_eq!(f, before, "a refused term leaves the filter as it was");
    }
}
