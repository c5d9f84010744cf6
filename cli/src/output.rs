//! Plain-text tables and the little formats the listings share.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::error::CliError;

/// A table: a header row and rows, columns padded to their widest cell. A cell may hold several
/// lines (see [`wrap`]): its row then takes as many lines, the other cells blank below their first.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                let widest = cell.lines().map(|l| l.chars().count()).max().unwrap_or(0);
                *w = (*w).max(widest);
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                let pad = widths[i].saturating_sub(cell.chars().count());
                out.push_str(cell);
                out.push_str(&" ".repeat(pad + 2));
            }
        }
        out.trim_end().to_string()
    };
    let mut out = line(headers.to_vec());
    out.push('\n');
    for row in rows {
        let cells: Vec<Vec<&str>> = row
            .iter()
            .map(|c| {
                let lines: Vec<&str> = c.lines().collect();
                if lines.is_empty() { vec![""] } else { lines }
            })
            .collect();
        let height = cells.iter().map(Vec::len).max().unwrap_or(1);
        for k in 0..height {
            out.push_str(&line(
                cells
                    .iter()
                    .map(|c| c.get(k).copied().unwrap_or(""))
                    .collect(),
            ));
            out.push('\n');
        }
    }
    out
}

/// `text` broken into lines of at most `width` characters at spaces (a longer word, such as a
/// URL, keeps a line of its own): a table cell that shows a whole sentence instead of cutting it.
pub fn wrap(text: &str, width: usize) -> String {
    let mut lines: Vec<String> = Vec::new();
    let mut current = String::new();
    for word in text.split_whitespace() {
        let fits = current.chars().count() + 1 + word.chars().count() <= width.max(1);
        if !current.is_empty() && !fits {
            lines.push(std::mem::take(&mut current));
        }
        if !current.is_empty() {
            current.push(' ');
        }
        current.push_str(word);
    }
    if !current.is_empty() || lines.is_empty() {
        lines.push(current);
    }
    lines.join("\n")
}

/// `45s`, `12m`, `3h 5m`, `2d 4h`; `-` for none.
pub fn seconds(s: Option<i64>) -> String {
    let Some(s) = s else {
        return "-".into();
    };
    let s = s.max(0);
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86_400 => format!("{}h {}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d {}h", s / 86_400, (s % 86_400) / 3600),
    }
}

/// `2026-03-01 09:00:00Z`; `-` for none.
pub fn time(t: Option<DateTime<Utc>>) -> String {
    t.map_or_else(
        || "-".into(),
        |t| t.format("%Y-%m-%d %H:%M:%SZ").to_string(),
    )
}

/// `value` as pretty JSON on stdout.
pub fn print_json<T: Serialize + ?Sized>(value: &T) -> Result<(), CliError> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| CliError::io("writing JSON", std::io::Error::other(e)))?;
    println!("{text}");
    Ok(())
}

/// At most `max` characters of `s`, with `…` when cut.
pub fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
        out.push('…');
        out
    }
}

/// Prints `line()` to stderr every two seconds, the first two seconds from now, until the task is
/// aborted: the progress of a long command.
pub fn progress_every_2s(
    line: impl Fn() -> String + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(std::time::Duration::from_secs(2));
        every.tick().await;
        loop {
            every.tick().await;
            eprintln!("{}", line());
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_padded_to_the_widest_cell() {
        let t = table(
            &["A", "LONGER"],
            &[
                vec!["wide cell".into(), "x".into()],
                vec!["y".into(), "z".into()],
            ],
        );
        assert_eq!(t, "A          LONGER\nwide cell  x\ny          z\n");
    }

    #[test]
    fn long_cells_wrap_onto_lines_of_their_own_without_losing_a_word() {
        let text = "the app's client secret has expired (AADSTS7000222): create a new one";
        let wrapped = wrap(text, 30);
        assert!(
            wrapped.lines().all(|l| l.chars().count() <= 30),
            "{wrapped}"
        );
        assert_eq!(
            wrapped.split_whitespace().collect::<Vec<_>>().join(" "),
            text
        );
        assert!(wrapped.contains("(AADSTS7000222):"), "a code is never cut");
        let t = table(
            &["ID", "LAST ERROR"],
            &[
                vec!["a".into(), "one two\nthree".into()],
                vec!["b".into(), "-".into()],
            ],
        );
        assert_eq!(t, "ID  LAST ERROR\na   one two\n    three\nb   -\n");
        assert_eq!(wrap("", 10), "");
    }

    #[test]
    fn lags_read_in_the_largest_units() {
        assert_eq!(seconds(None), "-");
        assert_eq!(seconds(Some(42)), "42s");
        assert_eq!(seconds(Some(600)), "10m");
        assert_eq!(seconds(Some(3 * 3600 + 300)), "3h 5m");
        assert_eq!(seconds(Some(2 * 86_400 + 3600)), "2d 1h");
    }
}
