//! The list views' habits: `/` searches (filters) the current list, `s` cycles its sort
//! column and `S` reverses it; the rows a view draws, in the order it draws them, come
//! from [`arrange`] — for Top events, the breakdown tables, pages, paths, collectors and
//! the funnel drill-down.
//!
//! [`LISTS`], made by the one `lists!` invocation below, is the one table of the lists:
//! each entry is the [`List`] variant, its name, its sort columns, the view it belongs to
//! (none: the drill-down's), whether that view's selection moves over its rows, and how
//! its rows' [`Entry`]s are read from the state. [`List`]'s methods, [`App::current_list`],
//! [`App::arranged`] and the key map's row count all read the table; so adding a list is
//! one entry and its row-key function (rows → [`Entry`]s, like [`pages`]), and its view
//! module draws [`App::arranged`].
//!
//! Invariant: arranging is a pure function of the rows and the list's [`ListState`]: it
//! returns indices into the model's rows (never copies or changes them), so the selection,
//! a click and Enter always name the row that is drawn; no search and no sort is the
//! query's order; a search matches case-insensitively anywhere in a row's text columns.
//! [`LISTS`] lists every [`List`] once, in declaration order ([`List::index`]), and at
//! most one list per view.

use std::cmp::Ordering;

use super::App;
use crate::{
    analysis::Analysis,
    model::{BreakdownRow, DropSession, NameCount, PageRow, Transition},
};

use super::CollectorLine;

/// One sortable column: its header's name and whether it sorts as a number (numbers sort
/// largest first, text A to Z, before `S` reverses).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Column {
    pub name: &'static str,
    pub numeric: bool,
}

const fn text(name: &'static str) -> Column {
    Column {
        name,
        numeric: false,
    }
}

const fn num(name: &'static str) -> Column {
    Column {
        name,
        numeric: true,
    }
}

/// How a list's rows reach [`arrange`]: the function calls `order` with their entries
/// and returns its answer (None: no data yet). A continuation rather than a return value,
/// since entries borrow their rows and some rows (the collectors') are built on the fly.
pub type Rows = fn(&App, order: &dyn Fn(&[Entry<'_>]) -> Vec<usize>) -> Option<Vec<usize>>;

/// One list's entry in [`LISTS`].
#[derive(Clone, Copy)]
pub struct ListEntry {
    pub list: List,
    /// What the status line and the export call it.
    pub name: &'static str,
    /// The columns `s` cycles through, in order.
    pub columns: &'static [Column],
    /// The view whose list it is (None: the funnel's drill-down, not a view).
    pub view: Option<Analysis>,
    /// Whether the view's selection (↑↓, a click) moves over its rows; false for tables
    /// drawn without a selected row (top events, the breakdown).
    pub selects: bool,
    pub rows: Rows,
}

/// Generates [`List`], [`LISTS`] and [`List::ALL`] from one list of entries.
macro_rules! lists {
    ($( $variant:ident {
        name: $name:literal, view: $view:expr, selects: $selects:literal,
        columns: [ $( $column:expr ),* $(,)? ],
        rows: $rows:expr $(,)?
    } ),* $(,)?) => {
        /// A list with its own search and sort.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum List { $( $variant ),* }

        /// Every list, in [`List`]'s order.
        pub const LISTS: &[ListEntry] = &[ $( ListEntry {
            list: List::$variant,
            name: $name,
            columns: &[ $( $column ),* ],
            view: $view,
            selects: $selects,
            rows: $rows,
        } ),* ];

        impl List {
            /// Every list, in [`LISTS`]' order.
            pub const ALL: [List; LISTS.len()] = [ $( List::$variant ),* ];
        }
    };
}

lists! {
    TopEvents {
        name: "top events", view: Some(Analysis::Live), selects: false,
        columns: [text("Event"), num("Events")],
        rows: |app, order| app.data.live.as_ref().map(|l| order(&top_events(&l.top_events))),
    },
    Collectors {
        name: "collectors", view: Some(Analysis::Collectors), selects: true,
        columns: [
            text("Collector"), text("Region"), num("Age"), num("Buffered"), num("Fill"),
            num("Rate"),
        ],
        rows: |app, order| Some(order(&collectors(&app.collector_lines()))),
    },
    Paths {
        name: "paths", view: Some(Analysis::Paths), selects: true,
        columns: [text("From"), text("To"), num("Count"), num("Avg gap")],
        rows: |app, order| app.data.paths.as_ref().map(|p| order(&paths(&p.transitions))),
    },
    Breakdown {
        // The view arranges its three tables each with this one state; `App::arranged`
        // answers for the first (by event).
        name: "breakdown", view: Some(Analysis::Breakdown), selects: false,
        columns: [text("Key"), num("Events"), num("Users")],
        rows: |app, order| app.data.breakdown.as_ref().map(|b| order(&breakdown(&b.by_event))),
    },
    Pages {
        name: "pages", view: Some(Analysis::Pages), selects: true,
        columns: [text("Page"), num("Views"), num("Users")],
        rows: |app, order| app.data.pages.as_ref().map(|p| order(&pages(&p.pages))),
    },
    DropOff {
        name: "drop-off", view: None, selects: true,
        columns: [text("Session"), text("Person"), text("Last event"), num("Time")],
        rows: |app, order| {
            let d = app.drill.as_ref()?.list.ready()?;
            Some(order(&drop_off(&d.sessions)))
        },
    },
}

impl List {
    pub fn index(self) -> usize {
        self as usize
    }

    /// Its entry in [`LISTS`].
    pub fn entry(self) -> &'static ListEntry {
        // The macro builds the enum and the table from one list, in the same order.
        &LISTS[self.index()]
    }

    /// The columns `s` cycles through, in order.
    pub fn columns(self) -> &'static [Column] {
        self.entry().columns
    }

    /// What the status line and the export call it.
    pub fn name(self) -> &'static str {
        self.entry().name
    }

    /// The list of `view` (None: a view without one).
    pub fn of_view(view: Analysis) -> Option<List> {
        LISTS.iter().find(|e| e.view == Some(view)).map(|e| e.list)
    }
}

/// The sort a list is in: a column of [`List::columns`], and whether `S` reversed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sort {
    pub column: usize,
    pub reversed: bool,
}

impl Sort {
    /// Whether the column shows largest (or last) first.
    pub fn descending(self, list: List) -> bool {
        let numeric = list.columns().get(self.column).is_some_and(|c| c.numeric);
        numeric != self.reversed
    }
}

/// One list's search text and sort (None: the query's order).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListState {
    pub search: String,
    pub sort: Option<Sort>,
}

/// A sort key of one cell.
#[derive(Debug, Clone, PartialEq)]
pub enum Key<'a> {
    Text(&'a str),
    Num(f64),
}

fn compare(a: &Key<'_>, b: &Key<'_>) -> Ordering {
    match (a, b) {
        (Key::Num(x), Key::Num(y)) => x.total_cmp(y),
        (Key::Text(x), Key::Text(y)) => x.to_lowercase().cmp(&y.to_lowercase()),
        (Key::Num(_), Key::Text(_)) => Ordering::Less,
        (Key::Text(_), Key::Num(_)) => Ordering::Greater,
    }
}

/// One row as arranging sees it: the text a search looks in, and one key per column.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry<'a> {
    pub text: Vec<&'a str>,
    pub keys: Vec<Key<'a>>,
}

/// Whether `entry` matches the search `query` (empty: everything).
pub fn matches(entry: &Entry<'_>, query: &str) -> bool {
    let q = query.trim().to_lowercase();
    q.is_empty() || entry.text.iter().any(|t| t.to_lowercase().contains(&q))
}

/// The indices of the rows to draw, in order: those matching the search, sorted (stable:
/// equal keys keep the query's order).
pub fn arrange(list: List, state: &ListState, entries: &[Entry<'_>]) -> Vec<usize> {
    let mut out: Vec<usize> = (0..entries.len())
        .filter(|&i| matches(&entries[i], &state.search))
        .collect();
    if let Some(sort) = state.sort {
        let desc = sort.descending(list);
        out.sort_by(|&a, &b| {
            let (ka, kb) = (
                entries[a].keys.get(sort.column),
                entries[b].keys.get(sort.column),
            );
            let o = match (ka, kb) {
                (Some(x), Some(y)) => compare(x, y),
                _ => Ordering::Equal,
            };
            if desc {
                o.reverse()
            } else {
                o
            }
        });
    }
    out
}

pub fn top_events(rows: &[NameCount]) -> Vec<Entry<'_>> {
    rows.iter()
        .map(|r| Entry {
            text: vec![&r.name],
            keys: vec![Key::Text(&r.name), Key::Num(r.count as f64)],
        })
        .collect()
}

pub fn breakdown(rows: &[BreakdownRow]) -> Vec<Entry<'_>> {
    rows.iter()
        .map(|r| Entry {
            text: vec![&r.key],
            keys: vec![
                Key::Text(&r.key),
                Key::Num(r.events as f64),
                Key::Num(r.users as f64),
            ],
        })
        .collect()
}

pub fn pages(rows: &[PageRow]) -> Vec<Entry<'_>> {
    rows.iter()
        .map(|r| Entry {
            text: vec![&r.url],
            keys: vec![
                Key::Text(&r.url),
                Key::Num(r.views as f64),
                Key::Num(r.users as f64),
            ],
        })
        .collect()
}

pub fn paths(rows: &[Transition]) -> Vec<Entry<'_>> {
    rows.iter()
        .map(|r| Entry {
            text: vec![&r.from, &r.to],
            keys: vec![
                Key::Text(&r.from),
                Key::Text(&r.to),
                Key::Num(r.count as f64),
                Key::Num(r.avg_seconds),
            ],
        })
        .collect()
}

pub fn collectors(rows: &[CollectorLine]) -> Vec<Entry<'_>> {
    rows.iter()
        .map(|l| {
            let h = l.health.as_ref();
            let region = h.map_or("", |h| h.region.as_str());
            let mut text = vec![l.id.as_str(), region];
            if let Some(a) = &l.address {
                text.push(a);
            }
            Entry {
                text,
                keys: vec![
                    Key::Text(&l.id),
                    Key::Text(region),
                    Key::Num(l.age_seconds.unwrap_or(f64::INFINITY)),
                    Key::Num(h.map_or(0.0, |h| h.buffered_events as f64)),
                    Key::Num(l.fill.unwrap_or(0.0)),
                    Key::Num(h.map_or(0.0, |h| h.forward_rate)),
                ],
            }
        })
        .collect()
}

pub fn drop_off(rows: &[DropSession]) -> Vec<Entry<'_>> {
    rows.iter()
        .map(|s| {
            let person = s.person.as_deref().unwrap_or("");
            Entry {
                text: vec![&s.session_id, person, &s.last_event],
                keys: vec![
                    Key::Text(&s.session_id),
                    Key::Text(person),
                    Key::Text(&s.last_event),
                    Key::Num(s.last_time.unix_timestamp_nanos() as f64),
                ],
            }
        })
        .collect()
}

impl App {
    /// The list the keys `/`, `s`, `S` act on: the drill-down when it is open, else the
    /// current view's (None: a view without one; the Tail has its own filter; the collector
    /// detail, which hides the Collectors list).
    pub fn current_list(&self) -> Option<List> {
        if let Some(d) = &self.drill {
            return d.person.is_none().then_some(List::DropOff);
        }
        if self.detail {
            return None;
        }
        List::of_view(self.view)
    }

    pub fn list_state(&self, list: List) -> &ListState {
        &self.lists[list.index()]
    }

    /// The rows `list` draws, in order (none before its data arrives).
    pub fn arranged(&self, list: List) -> Vec<usize> {
        let state = self.list_state(list);
        (list.entry().rows)(self, &|entries| arrange(list, state, entries)).unwrap_or_default()
    }

    /// `s`: the next sort column (after the last, the query's order again).
    pub(super) fn cycle_sort(&mut self, list: List) {
        let n = list.columns().len();
        let state = &mut self.lists[list.index()];
        state.sort = match state.sort {
            None => Some(Sort {
                column: 0,
                reversed: false,
            }),
            Some(s) if s.column + 1 < n => Some(Sort {
                column: s.column + 1,
                reversed: false,
            }),
            Some(_) => None,
        };
        self.reset_selection(list);
    }

    /// `S`: the other direction (from the query's order: the first column, reversed).
    pub(super) fn reverse_sort(&mut self, list: List) {
        let state = &mut self.lists[list.index()];
        state.sort = Some(match state.sort {
            None => Sort {
                column: 0,
                reversed: true,
            },
            Some(s) => Sort {
                reversed: !s.reversed,
                ..s
            },
        });
        self.reset_selection(list);
    }

    pub(super) fn set_search(&mut self, list: List, text: &str) {
        self.lists[list.index()].search = text.to_string();
        self.reset_selection(list);
    }

    /// A new order or filter: the selection goes back to the first row (the drill-down's
    /// for its list, else that of the list's own view).
    fn reset_selection(&mut self, list: List) {
        match list.entry().view {
            None => {
                if let Some(d) = self.drill.as_mut() {
                    d.selected = 0;
                }
            }
            Some(view) => self.selected[view.index()] = 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_lists_each_list_once_and_each_view_at_most_once() {
        for (i, e) in LISTS.iter().enumerate() {
            assert_eq!(e.list.index(), i);
            assert_eq!(List::ALL[i], e.list);
            if let Some(v) = e.view {
                assert_eq!(List::of_view(v), Some(e.list));
            }
        }
        assert_eq!(List::of_view(Analysis::Funnel), None);
        assert_eq!(List::DropOff.entry().view, None);
    }
}
