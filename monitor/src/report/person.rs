//! Printing a [`Person`] (`monitor query user ID`) in the three formats of [`super`].
//!
//! Invariant: as for the analyses, the three formats print the same values.

use super::{Format, Table};
use crate::model::Person;

/// The person in `format`, ending with a newline.
pub fn render_person(p: &Person, format: Format) -> Result<String, serde_json::Error> {
    Ok(match format {
        Format::Json => {
            let mut s = serde_json::to_string_pretty(p)?;
            s.push('\n');
            s
        }
        Format::Table => tables(p)
            .iter()
            .map(Table::text)
            .collect::<Vec<_>>()
            .join("\n"),
        Format::Csv => tables(p).iter().map(Table::csv).collect(),
    })
}

fn time(t: Option<time::OffsetDateTime>) -> String {
    t.and_then(|t| {
        t.format(&time::format_description::well_known::Rfc3339)
            .ok()
    })
    .unwrap_or_default()
}

fn tables(p: &Person) -> Vec<Table> {
    let mut ids = Table::new("person", &["field", "value"]);
    let mut row = |k: &str, v: String| ids.rows.push(vec![k.to_string(), v]);
    row("asked", p.asked.clone());
    row("person", p.person.clone());
    row("anonymous_ids", p.anonymous_ids.join(" "));
    row("first_seen", time(p.first_seen));
    row("last_seen", time(p.last_seen));
    let mut traits = Table::new("traits", &["key", "value"]);
    traits.rows = p
        .traits
        .iter()
        .map(|(k, v)| {
            let v = match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            vec![k.clone(), v]
        })
        .collect();
    let mut recent = Table::new(
        "recent",
        &["time", "event", "sent_as", "session", "page", "source"],
    );
    recent.rows = p
        .recent
        .iter()
        .map(|e| {
            vec![
                time(Some(e.time)),
                e.event_name.clone(),
                e.actor.clone(),
                e.session_id.clone().unwrap_or_default(),
                e.page_url.clone().unwrap_or_default(),
                e.source.clone().unwrap_or_default(),
            ]
        })
        .collect();
    vec![ids, traits, recent]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::PersonEvent;
    use time::macros::datetime;

    #[test]
    fn prints_ids_traits_and_events_with_cjk_aligned() {
        let p = Person {
            asked: "v-1".into(),
            person: "usr_8f3a".into(),
            anonymous_ids: vec!["v-1".into(), "dev-2".into()],
            traits: vec![
                ("name".into(), serde_json::json!("李雷")),
                ("plan".into(), serde_json::json!("pro")),
            ],
            first_seen: Some(datetime!(2026-11-01 10:00 UTC)),
            last_seen: Some(datetime!(2026-12-01 10:00 UTC)),
            recent: vec![PersonEvent {
                time: datetime!(2026-12-01 10:00 UTC),
                event_name: "加入购物车".into(),
                actor: "usr_8f3a".into(),
                session_id: Some("s-1".into()),
                page_url: None,
                source: Some("shop".into()),
            }],
        };
        let text = render_person(&p, Format::Table).expect("table");
        assert!(text.contains("person         usr_8f3a"), "{text}");
        assert!(text.contains("anonymous_ids  v-1 dev-2"), "{text}");
        assert!(text.contains("name  李雷"), "{text}");
        assert!(text.contains("加入购物车  usr_8f3a"), "{text}");
        let json: Person =
            serde_json::from_str(&render_person(&p, Format::Json).expect("json")).expect("parse");
        assert_eq!(json, p);
        let csv = render_person(&p, Format::Csv).expect("csv");
        assert!(csv.contains("traits,plan,pro"), "{csv}");
    }
}
