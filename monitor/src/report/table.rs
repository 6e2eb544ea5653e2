//! A printed table: one section of a report, as aligned text (people) or CSV rows
//! (spreadsheets).
//!
//! Invariant: both forms hold the same cells; text aligns numeric columns right and the
//! others left by *display width* (a CJK character or an emoji takes two terminal columns, a
//! combining mark none; [`crate::text`] measures), with control characters shown as `�` so a
//! value cannot move the cursor or send an escape sequence to the terminal; CSV keeps values
//! as they are, quotes per RFC 4180 and names the section in the first column.

use crate::text::{clean, width};

/// One section of a report.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    pub name: &'static str,
    pub headers: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(name: &'static str, headers: &[&str]) -> Table {
        Table {
            name,
            headers: headers.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    /// Aligned columns under a title: numeric columns right-aligned, the others (and the
    /// first) left-aligned.
    pub fn text(&self) -> String {
        let mut widths: Vec<usize> = self.headers.iter().map(|h| width(h)).collect();
        let mut numeric = vec![true; widths.len()];
        if let Some(first) = numeric.first_mut() {
            *first = false;
        }
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate() {
                if let Some(w) = widths.get_mut(i) {
                    *w = (*w).max(width(cell));
                }
                if let Some(n) = numeric.get_mut(i) {
                    *n &= cell.is_empty() || looks_numeric(cell);
                }
            }
        }
        let line = |cells: &[String]| {
            let mut s = String::new();
            for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
                if i > 0 {
                    s.push_str("  ");
                }
                let cell = clean(cell);
                let pad = " ".repeat(w.saturating_sub(width(&cell)));
                if numeric[i] {
                    s.push_str(&pad);
                    s.push_str(&cell);
                } else {
                    s.push_str(&cell);
                    s.push_str(&pad);
                }
            }
            s.trim_end().to_string()
        };
        let mut out = format!("== {}\n", self.name);
        out.push_str(&line(&self.headers));
        out.push('\n');
        let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
        out.push_str(&line(&rule));
        out.push('\n');
        if self.rows.is_empty() {
            out.push_str("(no data)\n");
        }
        for row in &self.rows {
            out.push_str(&line(row));
            out.push('\n');
        }
        out
    }

    /// The header row (first cell `section`) then the rows, each prefixed by the section
    /// name; RFC 4180 quoting and line ends.
    pub fn csv(&self) -> String {
        let line = |first: &str, cells: &[String]| {
            let mut l = csv_field(first);
            for c in cells {
                l.push(',');
                l.push_str(&csv_field(c));
            }
            l.push_str("\r\n");
            l
        };
        let mut out = line("section", &self.headers);
        for r in &self.rows {
            out.push_str(&line(self.name, r));
        }
        out
    }
}

/// A number, possibly with a unit or percent sign (`12`, `-0.5`, `25.0%`, `3.1 MiB`).
fn looks_numeric(cell: &str) -> bool {
    let mut chars = cell.chars();
    match chars.next() {
        Some('-') => chars.next().is_some_and(|c| c.is_ascii_digit()),
        Some(c) => c.is_ascii_digit(),
        None => false,
    }
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_by_display_width_with_cjk_emoji_and_combining_marks() {
        let mut t = Table::new("breakdown", &["event", "events", "users"]);
        for (name, n, u) in [
            ("page_view", "1200", "300"),
            ("加入购物车", "85", "40"),
            ("購入完了🎉", "7", "7"),
            ("cafe\u{301}", "3", "2"),
        ] {
            t.rows.push(vec![name.into(), n.into(), u.into()]);
        }
        let text = t.text();
        let lines: Vec<&str> = text.lines().skip(1).collect();
        // Every line (header, rule, rows) ends its last column at the same display width.
        let ends: Vec<usize> = lines.iter().map(|l| width(l)).collect();
        assert!(ends.windows(2).all(|w| w[0] == w[1]), "{ends:?}\n{text}");
        // And the numeric column ends at the same place on every row.
        for l in &lines[2..] {
            let upto_events = l.rsplit_once("  ").map(|(a, _)| width(a.trim_end()));
            assert_eq!(
                upto_events,
                Some(width("page_view").max(width("加入购物车")) + 2 + 6),
                "{l}\n{text}"
            );
        }
    }

    #[test]
    fn control_characters_are_shown_not_sent() {
        let mut t = Table::new("top_events", &["event_name", "events"]);
        t.rows.push(vec!["evil\u{1b}[2J\nname".into(), "3".into()]);
        t.rows.push(vec!["加入购物车".into(), "12".into()]);
        let text = t.text();
        assert!(!text.contains('\u{1b}'), "{text}");
        assert_eq!(text.lines().count(), 5, "{text}");
        let ends: Vec<usize> = text.lines().skip(1).map(width).collect();
        assert!(ends.windows(2).all(|w| w[0] == w[1]), "{ends:?}\n{text}");
        // CSV keeps the value (quoted: it holds a newline).
        assert!(t.csv().contains("\"evil\u{1b}[2J\nname\""));
    }
}
