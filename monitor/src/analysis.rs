//! The analysis registry: the one list of the monitor's analyses (live, collectors, funnel,
//! retention, paths, breakdown, database, pages) and of its views fed by the collectors
//! alone (tail), each with its name, key, tab title and refresh policy, and the types every
//! layer shares about them: [`Analysis`], [`Report`] (one analysis' result) and
//! [`Snapshot`] (the latest result of each).
//!
//! An analysis is its query module (`query/<name>.rs`, SQL → its type in [`crate::model`]),
//! its view module (`ui/<name>.rs`) and one entry in the `registry!` invocation below; the
//! dashboard, `monitor query`, the printer and the benchmark all go through this list. A
//! view fed by collectors' admin listeners instead of the database (the Tail) is its model
//! type, its view module and an entry with [`Refresh::Polls`]: it is a tab like the others,
//! and never a database query ([`Analysis::queried`]).
//!
//! Invariant: the registry's order is the tab order, the key order and [`Analysis`]'s `Ord`;
//! names are unique, lowercase and are at the same time the section names (banner,
//! benchmark), the CLI names and the [`Snapshot`] field names.

use serde::{Deserialize, Serialize};

use crate::model;

/// How often an analysis is fetched while its tab is not on screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refresh {
    /// Every refresh (the overview and the banner need it whatever the tab).
    Always,
    /// Every refresh while visible; otherwise when missing, for another range, or older
    /// than the background interval.
    Background,
    /// Never from the database: fed by polls of the collectors' admin listeners while its
    /// tab is on screen; not a `monitor query` kind.
    Polls,
}

/// One analysis' registry entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub analysis: Analysis,
    /// Section, CLI and field name (`monitor query <name>`).
    pub name: &'static str,
    /// The key that opens its tab.
    pub key: char,
    /// Its tab's title.
    pub title: &'static str,
    pub refresh: Refresh,
    /// Whether the dashboard's filter (`--where`, `f`) applies to it: false for what is not
    /// about events (collectors, database health) and for the Tail (its own filter).
    pub filtered: bool,
}

/// Generates [`Analysis`], [`REGISTRY`], [`Report`], [`Snapshot`] and `with_model!` from one
/// list; `$d` is a literal `$` for the inner macro.
macro_rules! registry {
    ($d:tt $( $variant:ident ( $model:ident ) {
        name: $name:ident, key: $key:literal, title: $title:literal, refresh: $refresh:ident,
        filtered: $filtered:literal $(,)?
    } ),* $(,)?) => {
        /// One analysis (one tab, one `monitor query` kind, one section of a refresh).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Analysis { $( $variant ),* }

        /// Every analysis, in tab order.
        pub const REGISTRY: &[Entry] = &[ $( Entry {
            analysis: Analysis::$variant,
            name: stringify!($name),
            key: $key,
            title: $title,
            refresh: Refresh::$refresh,
            filtered: $filtered,
        } ),* ];

        impl Analysis {
            /// Every analysis, in tab order.
            pub const ALL: [Analysis; REGISTRY.len()] = [ $( Analysis::$variant ),* ];
        }

        /// One analysis' result.
        #[derive(Debug, Clone, PartialEq)]
        pub enum Report { $( $variant(model::$model) ),* }

        impl Report {
            /// Which analysis it answers.
            pub fn analysis(&self) -> Analysis {
                match self { $( Report::$variant(_) => Analysis::$variant ),* }
            }
        }

        $( impl From<model::$model> for Report {
            fn from(v: model::$model) -> Report { Report::$variant(v) }
        } )*

        /// The latest result of each analysis (None: not fetched, or failed with no older
        /// data).
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
        pub struct Snapshot { $( pub $name: Option<model::$model> ),* }

        impl Snapshot {
            /// Forgets what it holds for `analysis`.
            pub fn clear(&mut self, analysis: Analysis) {
                match analysis { $( Analysis::$variant => self.$name = None ),* }
            }

            /// Stores `report` in its field.
            pub fn put(&mut self, report: Report) {
                match report { $( Report::$variant(v) => self.$name = Some(v) ),* }
            }

            /// The results it holds, in registry order.
            pub fn into_reports(self) -> Vec<Report> {
                let mut out = Vec::new();
                $( if let Some(v) = self.$name { out.push(Report::$variant(v)); } )*
                out
            }
        }

        /// `with_model!(analysis, M => expr)`: `expr` with `M` the analysis' model type.
        macro_rules! with_model {
            ($d a:expr, $d m:ident => $d body:expr) => {
                match $d a { $( $crate::analysis::Analysis::$variant => {
                    type $d m = $crate::model::$model;
                    $d body
                } ),* }
            };
        }
        pub(crate) use with_model;

        /// `with_report!(report, v => expr)`: `expr` with `v` the report's model value.
        macro_rules! with_report {
            ($d r:expr, $d v:ident => $d body:expr) => {
                match $d r { $( $crate::analysis::Report::$variant($d v) => $d body ),* }
            };
        }
        pub(crate) use with_report;
    };
}

registry! { $
    Live(Live) {
        name: live, key: '1', title: "Overview", refresh: Always, filtered: true,
    },
    Collectors(Collectors) {
        name: collectors, key: '2', title: "Collectors", refresh: Always, filtered: false,
    },
    Funnel(Funnel) {
        name: funnel, key: '3', title: "Funnel", refresh: Background, filtered: true,
    },
    Retention(Retention) {
        name: retention, key: '4', title: "Retention", refresh: Background, filtered: true,
    },
    Paths(Paths) {
        name: paths, key: '5', title: "Paths", refresh: Background, filtered: true,
    },
    Breakdown(Breakdown) {
        name: breakdown, key: '6', title: "Breakdown", refresh: Background, filtered: true,
    },
    Database(DatabaseHealth) {
        name: database, key: '7', title: "Database", refresh: Background, filtered: false,
    },
    Pages(Pages) {
        name: pages, key: '8', title: "Pages", refresh: Background, filtered: true,
    },
    Tail(Tail) {
        name: tail, key: '9', title: "Tail", refresh: Polls, filtered: false,
    },
}

impl Analysis {
    /// Its registry entry.
    pub fn entry(self) -> &'static Entry {
        // The registry lists every variant in declaration order (the macro builds both).
        &REGISTRY[self as usize]
    }

    /// Section and CLI name (`live`, `funnel`, …).
    pub fn name(self) -> &'static str {
        self.entry().name
    }

    /// Its tab's title.
    pub fn title(self) -> &'static str {
        self.entry().title
    }

    pub fn key(self) -> char {
        self.entry().key
    }

    pub fn refresh(self) -> Refresh {
        self.entry().refresh
    }

    /// Position in the registry (and in [`Analysis::ALL`]).
    pub fn index(self) -> usize {
        self as usize
    }

    /// The analysis named `name`.
    pub fn from_name(name: &str) -> Option<Analysis> {
        REGISTRY.iter().find(|e| e.name == name).map(|e| e.analysis)
    }

    /// Whether the database answers it (every entry but [`Refresh::Polls`] ones).
    pub fn is_query(self) -> bool {
        self.refresh() != Refresh::Polls
    }

    /// The analyses the database answers, in registry order: what a refresh, the benchmark
    /// and `monitor query` run.
    pub const QUERIED: [Analysis; QUERIED_COUNT] = {
        let mut out = [Analysis::Live; QUERIED_COUNT];
        let (mut i, mut j) = (0, 0);
        while i < REGISTRY.len() {
            if !matches!(REGISTRY[i].refresh, Refresh::Polls) {
                out[j] = REGISTRY[i].analysis;
                j += 1;
            }
            i += 1;
        }
        out
    };

    /// [`Analysis::QUERIED`] as an iterator.
    pub fn queried() -> impl Iterator<Item = Analysis> {
        Analysis::QUERIED.into_iter()
    }

    /// The analysis whose key is `key`.
    pub fn from_key(key: char) -> Option<Analysis> {
        REGISTRY.iter().find(|e| e.key == key).map(|e| e.analysis)
    }
}

/// How many registry entries the database answers.
const QUERIED_COUNT: usize = {
    let (mut i, mut n) = (0, 0);
    while i < REGISTRY.len() {
        if !matches!(REGISTRY[i].refresh, Refresh::Polls) {
            n += 1;
        }
        i += 1;
    }
    n
};

/// What one run of an analysis needs besides the connection.
#[derive(Debug, Clone, Copy)]
pub struct Params<'a> {
    pub range: model::Range,
    /// Funnel steps (the other analyses ignore them).
    pub steps: &'a [String],
    /// Which events the analysis is computed over (empty: all of them); the collectors and
    /// the database health ignore it.
    pub filter: &'a model::Filter,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_is_consistent() {
        for (i, e) in REGISTRY.iter().enumerate() {
            assert_eq!(e.analysis.index(), i);
            assert_eq!(Analysis::from_name(e.name), Some(e.analysis));
            assert_eq!(Analysis::from_key(e.key), Some(e.analysis));
        }
        assert_eq!(Analysis::Live.title(), "Overview");
        assert_eq!(Analysis::Database.name(), "database");
        assert!(!Analysis::Tail.is_query());
        assert_eq!(Analysis::queried().count(), REGISTRY.len() - 1);
    }
}
