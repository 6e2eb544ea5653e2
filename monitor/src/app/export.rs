//! `e`: the current view as CSV, the same text `monitor query … --format csv` prints (the
//! report's tables, [`crate::report`]), handed to the runtime to write
//! ([`Cmd::Export`]); the written path or the error comes back as [`Msg::Exported`] and is
//! shown in the status line ([`Notice`]).
//!
//! Invariant: building the CSV is pure (from the data on screen, all of it: a search or a
//! sort only changes what is drawn); writing it never happens here, so the UI never waits
//! for a disk; the file is named after the view and `App::now` (UTC).
//!
//! [`Msg::Exported`]: super::Msg::Exported

use std::time::Duration;

use time::OffsetDateTime;

use super::{App, Cmd};
use crate::{
    analysis::Analysis,
    report::{self, Format},
};

/// How long a notice stays in the status line.
pub const NOTICE_FOR: Duration = Duration::from_secs(15);

/// A one-line message in the status line: where an export went, or why something failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub text: String,
    pub error: bool,
    pub at: OffsetDateTime,
}

/// `monitor-<name>-<YYYYMMDD>T<HHMMSS>Z.csv`.
pub fn file_name(name: &str, at: OffsetDateTime) -> String {
    let name: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    format!(
        "monitor-{name}-{:04}{:02}{:02}T{:02}{:02}{:02}Z.csv",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    )
}

impl App {
    pub(super) fn notice(&mut self, text: impl Into<String>, error: bool) {
        self.notice = Some(Notice {
            text: text.into(),
            error,
            at: self.now,
        });
    }

    /// The notice to show now (None once it is older than [`NOTICE_FOR`]).
    pub fn current_notice(&self) -> Option<&Notice> {
        self.notice
            .as_ref()
            .filter(|n| super::seconds_between(self.now, n.at) < NOTICE_FOR.as_secs_f64())
    }

    /// What `e` writes: a name for the file and the CSV, or why there is nothing.
    pub fn export_csv(&self) -> Result<(String, String), String> {
        let failed = |e: serde_json::Error| format!("export failed: {e}");
        if let Some(d) = &self.drill {
            if let Some(p) = &d.person {
                return match p.data.ready() {
                    Some(Some(person)) => Ok((
                        "person".into(),
                        report::render_person(person, Format::Csv).map_err(failed)?,
                    )),
                    _ => Err("nothing to export yet: the person is not loaded".into()),
                };
            }
            return match d.list.ready() {
                Some(list) => Ok((
                    "drop-off".into(),
                    report::render_drop_off(list, Format::Csv).map_err(failed)?,
                )),
                None => Err("nothing to export yet: the drill-down is not loaded".into()),
            };
        }
        let view: Analysis = self.view;
        let report = self
            .data
            .clone()
            .into_reports()
            .into_iter()
            .find(|r| r.analysis() == view)
            .ok_or_else(|| format!("nothing to export yet: no {} data", view.name()))?;
        Ok((
            view.name().to_string(),
            report::render(&report, Format::Csv).map_err(failed)?,
        ))
    }

    /// `e`: asks the runtime to write the current view's CSV.
    pub(super) fn export(&mut self) -> Option<Cmd> {
        match self.export_csv() {
            Ok((name, csv)) => {
                self.notice(format!("exporting {name}…"), false);
                Some(Cmd::Export {
                    file_name: file_name(&name, self.now),
                    csv,
                })
            }
            Err(e) => {
                self.notice(e, true);
                None
            }
        }
    }

    pub(super) fn on_exported(&mut self, result: Result<String, String>) {
        match result {
            Ok(path) => self.notice(format!("exported to {path}"), false),
            Err(e) => self.notice(format!("export failed: {e}"), true),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn names_carry_the_view_and_the_time() {
        assert_eq!(
            file_name("drop-off", datetime!(2025-03-01 09:05:07 UTC)),
            "monitor-drop-off-20250301T090507Z.csv"
        );
        assert_eq!(
            file_name("a/b c", datetime!(2025-03-01 0:00 UTC)),
            "monitor-a-b-c-20250301T000000Z.csv"
        );
    }
}
