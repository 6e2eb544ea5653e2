//! Printing a funnel step's [`DropOff`] (`monitor query funnel --drop-off STEP`, and the
//! dashboard's `e` on the drill-down) in the three formats of [`super`].
//!
//! Invariant: as for the analyses, the three formats print the same values.

use time::format_description::well_known::Rfc3339;

use super::{Format, Table};
use crate::model::DropOff;

/// The drop-off in `format`, ending with a newline.
pub fn render_drop_off(d: &DropOff, format: Format) -> Result<String, serde_json::Error> {
    Ok(match format {
        Format::Json => {
            let mut s = serde_json::to_string_pretty(d)?;
            s.push('\n');
            s
        }
        Format::Table => tables(d)
            .iter()
            .map(Table::text)
            .collect::<Vec<_>>()
            .join("\n"),
        Format::Csv => tables(d).iter().map(Table::csv).collect(),
    })
}

fn tables(d: &DropOff) -> Vec<Table> {
    let mut summary = Table::new("drop_off", &["field", "value"]);
    let step = d.steps.get(d.step).cloned().unwrap_or_default();
    let next = d.steps.get(d.step + 1).cloned().unwrap_or_default();
    summary.rows = vec![
        vec!["step".into(), (d.step + 1).to_string()],
        vec!["reached".into(), step],
        vec!["not_reached".into(), next],
        vec!["sessions".into(), d.total.to_string()],
        vec!["listed".into(), d.sessions.len().to_string()],
    ];
    let mut sessions = Table::new(
        "sessions",
        &["session_id", "person", "last_event", "last_time"],
    );
    sessions.rows = d
        .sessions
        .iter()
        .map(|s| {
            vec![
                s.session_id.clone(),
                s.person.clone().unwrap_or_default(),
                s.last_event.clone(),
                s.last_time.format(&Rfc3339).unwrap_or_default(),
            ]
        })
        .collect();
    vec![summary, sessions]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::DropSession;
    use time::macros::datetime;

    #[test]
    fn prints_the_sessions_in_every_format() {
        let d = DropOff {
            steps: vec!["page_view".into(), "加入购物车".into()],
            step: 0,
            total: 7,
            sessions: vec![DropSession {
                session_id: "s-🎉".into(),
                person: Some("usr_李".into()),
                last_event: "浏览商品".into(),
                last_time: datetime!(2025-03-01 11:59 UTC),
            }],
        };
        let text = render_drop_off(&d, Format::Table).expect("table");
        assert!(text.contains("not_reached  加入购物车"), "{text}");
        assert!(text.contains("s-🎉        usr_李"), "{text}");
        let csv = render_drop_off(&d, Format::Csv).expect("csv");
        assert!(
            csv.contains("sessions,s-🎉,usr_李,浏览商品,2025-03-01T11:59:00Z\r\n"),
            "{csv}"
        );
        let back: DropOff =
            serde_json::from_str(&render_drop_off(&d, Format::Json).expect("json")).expect("parse");
        assert_eq!(back, d);
    }
}
