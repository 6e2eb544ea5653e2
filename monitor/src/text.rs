//! Text by display width: how many terminal cells a string takes, and cutting or padding it
//! to a column. The one helper behind every table, list, bar label and header of the
//! dashboard ([`crate::ui`]) and every `table` printed by `monitor query`
//! ([`crate::report`]). Text that may hold more than ASCII (event names, URLs, ids,
//! regions, errors) is never measured by `chars().count()` nor padded with
//! `format!("{:<w$}")`, which count code points, not cells; numbers and the views' constant
//! headers are ASCII and may be.
//!
//! Widths are counted per grapheme cluster exactly as ratatui's buffer counts them
//! ([`CellWidth`]): a CJK character or an emoji takes two cells, a combining mark none, a
//! flag or a ZWJ sequence is one cluster, so what is measured here is what is drawn.
//!
//! Invariants: [`fit`] never returns more than `width` cells, never splits a grapheme
//! cluster, and ends with `…` exactly when it cut something; [`pad`] returns exactly
//! `width` cells; control characters (a newline, a tab, an escape that would start a
//! terminal sequence) never pass through any function here: [`clean`] shows each as `�`.

use std::borrow::Cow;

use ratatui::buffer::CellWidth;
use unicode_segmentation::UnicodeSegmentation;

/// Where [`pad`] puts the text in its column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    Left,
    Right,
}

/// `s` with every control character (C0, DEL, C1) replaced by `�`; borrowed when there is
/// none.
pub fn clean(s: &str) -> Cow<'_, str> {
    if s.chars().any(char::is_control) {
        Cow::Owned(
            s.chars()
                .map(|c| if c.is_control() { '\u{FFFD}' } else { c })
                .collect(),
        )
    } else {
        Cow::Borrowed(s)
    }
}

/// Cells one grapheme cluster of clean text takes.
fn cluster_width(g: &str) -> usize {
    usize::from(g.cell_width())
}

/// The terminal cells `s` takes once [`clean`]ed.
pub fn width(s: &str) -> usize {
    clean(s).graphemes(true).map(cluster_width).sum()
}

/// `s` ([`clean`]ed) cut to at most `width` cells at a grapheme boundary, ending with `…`
/// when cut. A wide character that would straddle the edge is left out whole, so the result
/// may be one cell narrower than `width` (use [`pad`] for an exact column).
pub fn fit(s: &str, width: usize) -> String {
    let s = clean(s);
    if self::width(&s) <= width {
        return s.into_owned();
    }
    if width == 0 {
        return String::new();
    }
    let mut out = String::new();
    let mut used = 0;
    for g in s.graphemes(true) {
        let w = cluster_width(g);
        if used + w > width - 1 {
            break;
        }
        out.push_str(g);
        used += w;
    }
    out.push('…');
    out
}

/// `s` cut with [`fit`] and padded with spaces to exactly `width` cells.
pub fn pad(s: &str, width: usize, align: Align) -> String {
    let fitted = fit(s, width);
    let spaces = " ".repeat(width.saturating_sub(self::width(&fitted)));
    match align {
        Align::Left => fitted + &spaces,
        Align::Right => spaces + &fitted,
    }
}

/// [`pad`] on the left of its column.
pub fn left(s: &str, width: usize) -> String {
    pad(s, width, Align::Left)
}

/// [`pad`] on the right of its column (numbers).
pub fn right(s: &str, width: usize) -> String {
    pad(s, width, Align::Right)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widths_count_cells() {
        assert_eq!(width("page_view"), 9);
        assert_eq!(width("加入购物车"), 10);
        assert_eq!(width("購入完了🎉"), 10);
        assert_eq!(width("cafe\u{301}"), 4);
        assert_eq!(width("🇩🇪"), 2);
        assert_eq!(width("a\u{1b}[31mb"), 7, "escape shown as one cell");
    }

    #[test]
    fn fit_cuts_whole_clusters_and_marks_the_cut() {
        assert_eq!(fit("abcdef", 4), "abc…");
        assert_eq!(fit("abc", 3), "abc");
        assert_eq!(fit("abc", 0), "");
        assert_eq!(fit("/商品/一覧", 6), "/商品…");
        // A wide character that would straddle the edge is left out, never halved.
        assert_eq!(fit("加入购物车", 6), "加入…");
        assert_eq!(width(&fit("加入购物车", 6)), 5);
        // A combining mark stays with its base; a flag is never split.
        assert_eq!(fit("cafe\u{301}s", 5), "cafe\u{301}s");
        assert_eq!(fit("cafe\u{301}st", 5), "cafe\u{301}…");
        assert_eq!(fit("🇩🇪🇫🇷🇯🇵", 5), "🇩🇪🇫🇷…");
        assert_eq!(
            fit("👨\u{200d}👩\u{200d}👧 x", 3),
            "👨\u{200d}👩\u{200d}👧…"
        );
        for w in 0..12 {
            for s in ["購入完了🎉", "cafe\u{301} au lait", "🇩🇪🇫🇷🇯🇵x", "ab\ncd"]
            {
                let f = fit(s, w);
                assert!(width(&f) <= w, "{s:?} at {w}: {f:?}");
                assert!(!f.contains('\n'));
            }
        }
    }

    #[test]
    fn pad_gives_exact_columns() {
        assert_eq!(left("加入", 6), "加入  ");
        assert_eq!(right("12", 4), "  12");
        assert_eq!(left("加入购物车", 6), "加入… ");
        for w in 0..12 {
            assert_eq!(width(&left("購入完了🎉", w)), w);
            assert_eq!(width(&right("cafe\u{301}", w)), w);
        }
    }

    #[test]
    fn control_characters_never_pass() {
        assert_eq!(clean("ok"), Cow::Borrowed("ok"));
        assert_eq!(
            clean("a\u{1b}[2Jb\t\u{9b}"),
            "a\u{fffd}[2Jb\u{fffd}\u{fffd}"
        );
        assert!(!fit("x\u{1b}]0;pwned\u{7}", 40).contains('\u{1b}'));
    }
}
