//! The SQL of an analysis' [`Filter`]: one condition per term, on an events relation
//! (`user_events` or `person_events`) under a given alias, AND-ed.
//!
//! `source` = `source`, `event` = `event_name`, `device` = `device_type`, `country` =
//! `country_code`, `prop.KEY=VALUE` = `properties ->> KEY = VALUE` (the top-level
//! property's value as text; an event without it, or without properties, does not match).
//!
//! Invariant: every value and key travels as a bind parameter; the SQL text holds only
//! column names, operators and placeholders, and an empty filter adds no text at all (so
//! an analysis run through here with an empty filter is the same statement as without).

use tokio_postgres::types::ToSql;

use super::Binds;
use crate::model::Filter;

/// A filter's values, owned for as long as the statement's parameters borrow them.
pub(crate) struct FilterSql {
    scalars: Vec<(&'static str, String)>,
    properties: Vec<(String, String)>,
}

impl FilterSql {
    pub fn new(f: &Filter) -> FilterSql {
        let scalars = [
            ("source", &f.source),
            ("event_name", &f.event),
            ("device_type", &f.device),
            ("country_code", &f.country),
        ]
        .into_iter()
        .filter_map(|(col, v)| v.clone().map(|v| (col, v)))
        .collect();
        FilterSql {
            scalars,
            properties: f.properties.clone(),
        }
    }

    /// `" AND <cond> AND …"` over the columns of `alias` (`""`: unqualified), its values
    /// pushed to `binds`; `""` for an empty filter.
    pub fn and<'a>(&'a self, alias: &str, binds: &mut Binds<'a>) -> String {
        let col = |c: &str| {
            if alias.is_empty() {
                c.to_string()
            } else {
                format!("{alias}.{c}")
            }
        };
        let mut out = String::new();
        for (c, v) in &self.scalars {
            let p = binds.push(v as &(dyn ToSql + Sync));
            // country_code is CHAR(2): compared as text.
            out.push_str(&format!(" AND {}::TEXT = {p}::TEXT", col(c)));
        }
        for (k, v) in &self.properties {
            let (pk, pv) = (
                binds.push(k as &(dyn ToSql + Sync)),
                binds.push(v as &(dyn ToSql + Sync)),
            );
            out.push_str(&format!(
                " AND ({} ->> {pk}::TEXT) = {pv}::TEXT",
                col("properties")
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_bind_every_value() {
        let f = Filter::parse(&["event=加入购物车'; DROP TABLE x; --", "prop.plan=pro"]).unwrap();
        let sql = FilterSql::new(&f);
        let mut binds = Binds::default();
        let first = binds.push(&1i32);
        assert_eq!(first, "$1");
        let text = sql.and("e", &mut binds);
        assert_eq!(
            text,
            " AND e.event_name::TEXT = $2::TEXT AND (e.properties ->> $3::TEXT) = $4::TEXT"
        );
        assert_eq!(binds.as_slice().len(), 4);
        assert!(!text.contains("DROP"));
        assert_eq!(
            FilterSql::new(&Filter::default()).and("", &mut binds),
            "",
            "an empty filter adds nothing"
        );
    }
}
