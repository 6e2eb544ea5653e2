//! Splits a migration file into statements so a failure can name the statement that failed.
//!
//! Invariant: a `;` inside a string, a quoted identifier, a dollar-quoted body or a comment
//! never ends a statement.

/// Returns the non-empty statements of `sql`, each without its terminating `;`.
pub fn statements(sql: &str) -> Vec<&str> {
    let bytes = sql.as_bytes();
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i + 1 < bytes.len() && !(bytes[i] == b'*' && bytes[i + 1] == b'/') {
                    i += 1;
                }
                i += 1;
            }
            q @ (b'\'' | b'"') => {
                i += 1;
                while i < bytes.len() && bytes[i] != q {
                    i += 1;
                }
            }
            b'$' => {
                // A dollar-quote tag is `$` [A-Za-z_][A-Za-z0-9_]* `$` or `$$`.
                let tag_end = sql[i + 1..]
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .map(|n| i + 1 + n);
                if let Some(end) = tag_end.filter(|&e| bytes[e] == b'$') {
                    let tag = &sql[i..=end];
                    let is_tag = tag.len() == 2 || !bytes[i + 1].is_ascii_digit();
                    if is_tag {
                        match sql[end + 1..].find(tag) {
                            Some(close) => i = end + 1 + close + tag.len() - 1,
                            None => i = bytes.len(),
                        }
                    }
                }
            }
            b';' => {
                push(&mut out, &sql[start..i]);
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    push(&mut out, &sql[start.min(sql.len())..]);
    out
}

fn push<'a>(out: &mut Vec<&'a str>, stmt: &'a str) {
    let has_code = stmt.lines().any(|l| {
        let t = l.trim();
        !t.is_empty() && !t.starts_with("--")
    });
    if has_code {
        out.push(stmt.trim());
    }
}

#[cfg(test)]
mod tests {
    use super::statements;

    #[test]
    fn splits_on_top_level_semicolons_only() {
        let sql = "-- a; comment\nCREATE TABLE a (x text DEFAULT ';');\n\
                   CREATE FUNCTION f() RETURNS int AS $body$ SELECT 1; $body$ LANGUAGE sql;\n\
                   /* ; */ SELECT \"we;ird\" FROM a; SELECT $$;$$;\n-- trailing";
        let got = statements(sql);
        assert_eq!(got.len(), 4, "{got:#?}");
        assert!(got[1].contains("$body$ SELECT 1; $body$"));
        assert!(got[3].ends_with("$$;$$"));
    }

    #[test]
    fn positional_parameters_are_not_dollar_quotes() {
        let got = statements("SELECT $1; SELECT 2");
        assert_eq!(got, vec!["SELECT $1", "SELECT 2"]);
    }
}
