//! Printing a [`Report`] for `monitor query`: a table (people), JSON (the model types, for
//! scripts) or CSV (spreadsheets). No SQL here: reports come from [`crate::query::run`].
//!
//! - JSON is exactly the serialised [`crate::model`] type of the analysis.
//! - CSV has one block per section; each block starts with its header row, and the first
//!   column of every row names the section. Numbers are plain (rates as fractions).
//!
//! Invariant: the three formats print the same values; only the presentation differs.

mod drill;
mod person;
mod table;
mod tables;

pub use drill::render_drop_off;
pub use person::render_person;
pub use table::Table;

use crate::analysis::{with_report, Report};

/// How `monitor query` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
    Csv,
}

/// How cells are written: for people (units, percentages) or for CSV (plain numbers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Style {
    Human,
    Csv,
}

/// A model type printed as tables.
pub(crate) trait Tabular {
    fn tables(&self, style: Style) -> Vec<Table>;
}

/// The report in `format`, ending with a newline.
pub fn render(report: &Report, format: Format) -> Result<String, serde_json::Error> {
    Ok(match format {
        Format::Json => {
            let mut s = with_report!(report, v => serde_json::to_string_pretty(v))?;
            s.push('\n');
            s
        }
        Format::Table => with_report!(report, v => v.tables(Style::Human))
            .iter()
            .map(Table::text)
            .collect::<Vec<_>>()
            .join("\n"),
        Format::Csv => with_report!(report, v => v.tables(Style::Csv))
            .iter()
            .map(Table::csv)
            .collect::<String>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Cohort, Funnel, FunnelStep, Paths, Retention};
    use time::macros::date;

    fn funnel() -> Report {
        Report::Funnel(Funnel {
            steps: vec![
                FunnelStep {
                    name: "page_view".into(),
                    sessions: 200,
                    step_conversion: 1.0,
                    overall_conversion: 1.0,
                },
                FunnelStep {
                    name: "purchase, final".into(),
                    sessions: 50,
                    step_conversion: 0.25,
                    overall_conversion: 0.25,
                },
            ],
        })
    }

    #[test]
    fn table_is_aligned() {
        let text = render(&funnel(), Format::Table).unwrap();
        let expected = "\
== funnel
step  name             sessions  step_conversion  overall_conversion
----  ---------------  --------  ---------------  ------------------
1     page_view             200           100.0%              100.0%
2     purchase, final        50            25.0%               25.0%
";
        assert_eq!(text, expected);
    }

    #[test]
    fn csv_quotes_and_names_sections() {
        let text = render(&funnel(), Format::Csv).unwrap();
        let expected = "section,step,name,sessions,step_conversion,overall_conversion\r\n\
                        funnel,1,page_view,200,1,1\r\n\
                        funnel,2,\"purchase, final\",50,0.25,0.25\r\n";
        assert_eq!(text, expected);
    }

    #[test]
    fn json_is_the_model() {
        let text = render(&funnel(), Format::Json).unwrap();
        let back: Funnel = serde_json::from_str(&text).unwrap();
        assert_eq!(Report::Funnel(back), funnel());
    }

    #[test]
    fn retention_wide_and_long() {
        let r = Report::Retention(Retention {
            cohorts: vec![Cohort {
                day: date!(2024 - 05 - 01),
                users: 4,
                retained: vec![4, 1],
            }],
        });
        let table = render(&r, Format::Table).unwrap();
        assert!(table.contains("2024-05-01      4  100%  25%"), "{table}");
        let csv = render(&r, Format::Csv).unwrap();
        assert_eq!(
            csv,
            "section,cohort,users,day,retained,rate\r\n\
             retention,2024-05-01,4,0,4,1\r\n\
             retention,2024-05-01,4,1,1,0.25\r\n"
        );
    }

    #[test]
    fn empty_sections_say_so() {
        let text = render(&Report::Paths(Paths::default()), Format::Table).unwrap();
        assert!(text.contains("(no data)"));
    }

    #[test]
    fn database_prints_replication() {
        use crate::model::{DatabaseHealth, ReplicaStatus, Replication, StandbyLag};
        let hidden = StandbyLag {
            application_name: "walreceiver".into(),
            client_addr: None,
            state: None,
            sync_state: None,
            write_lag_seconds: None,
            flush_lag_seconds: None,
            replay_lag_seconds: None,
            replay_lag_bytes: None,
            visible: false,
        };
        let primary = Report::Database(DatabaseHealth {
            replication: Replication {
                status: ReplicaStatus::default(),
                standbys: vec![hidden],
            },
            ..DatabaseHealth::default()
        });
        let table = render(&primary, Format::Table).unwrap();
        assert!(
            table.contains("role                      primary"),
            "{table}"
        );
        assert!(table.contains("not visible to this role"), "{table}");
        let csv = render(&primary, Format::Csv).unwrap();
        assert!(csv.contains("standbys,walreceiver,,,,,,,,false"), "{csv}");

        let standby = Report::Database(DatabaseHealth {
            replication: Replication {
                status: ReplicaStatus {
                    in_recovery: true,
                    replay_lag_seconds: Some(130.0),
                    last_replay_age_seconds: Some(130.0),
                    last_replay_at: Some("2025-03-01T11:57:50Z".into()),
                    receive_replay_gap_bytes: Some(2048),
                },
                standbys: vec![],
            },
            ..DatabaseHealth::default()
        });
        let table = render(&standby, Format::Table).unwrap();
        assert!(
            table.contains("role                      standby"),
            "{table}"
        );
        assert!(
            table.contains("replay_lag_seconds        130.000s"),
            "{table}"
        );
        assert!(
            table.contains("receive_replay_gap_bytes  2.0 KiB"),
            "{table}"
        );
        let json = render(&standby, Format::Json).unwrap();
        let back: DatabaseHealth = serde_json::from_str(&json).unwrap();
        assert_eq!(Report::Database(back), standby);
    }

    #[test]
    fn human_bytes() {
        assert_eq!(tables::bytes(Some(512), Style::Human), "512 B");
        assert_eq!(
            tables::bytes(Some(3 * 1024 * 1024), Style::Human),
            "3.0 MiB"
        );
        assert_eq!(tables::bytes(None, Style::Human), "");
    }
}
