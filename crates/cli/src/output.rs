//! Plain-text tables and JSON for reports.

use crate::cli::Format;
use std::cell::RefCell;

pub struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
    /// Columns aligned right (numbers).
    right: Vec<bool>,
}

impl Table {
    pub fn new(headers: &[&str]) -> Self {
        Table { headers: headers.iter().map(|h| h.to_string()).collect(), rows: Vec::new(), right: vec![false; headers.len()] }
    }

    pub fn right_align(mut self, columns: &[usize]) -> Self {
        for &c in columns {
            self.right[c] = true;
        }
        self
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    pub fn render(&self) -> String {
        let width = |c: usize| self.rows.iter().map(|r| r[c].chars().count()).chain([self.headers[c].chars().count()]).max().unwrap_or(0);
        let widths: Vec<usize> = (0..self.headers.len()).map(width).collect();
        let line = |cells: &[String]| {
            cells
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    let pad = widths[i].saturating_sub(c.chars().count());
                    if self.right[i] {
                        format!("{}{c}", " ".repeat(pad))
                    } else {
                        format!("{c}{}", " ".repeat(pad))
                    }
                })
                .collect::<Vec<_>>()
                .join("  ")
                .trim_end()
                .to_string()
        };
        let mut out = line(&self.headers);
        out.push('\n');
        out.push_str(&widths.iter().map(|w| "─".repeat(*w)).collect::<Vec<_>>().join("  "));
        out.push('\n');
        for r in &self.rows {
            out.push_str(&line(r));
            out.push('\n');
        }
        out
    }
}

/// Text for one table cell: control characters shown escaped, long text cut.
pub fn cell(text: &str, max: usize) -> String {
    let escaped: String = text
        .chars()
        .flat_map(|c| match c {
            '\n' => vec!['\\', 'n'],
            '\r' => vec!['\\', 'r'],
            '\t' => vec!['\\', 't'],
            c => vec![c],
        })
        .collect();
    if escaped.chars().count() > max {
        format!("{}…", escaped.chars().take(max.saturating_sub(1)).collect::<String>())
    } else {
        escaped
    }
}

thread_local! {
    /// The documents `print_json` keeps instead of printing, inside `collect_json`.
    static COLLECTED: RefCell<Option<Vec<serde_json::Value>>> = const { RefCell::new(None) };
}

/// Prints one JSON document (or keeps it, inside `collect_json`).
pub fn print_json(value: &serde_json::Value) {
    let kept = COLLECTED.with(|c| c.borrow_mut().as_mut().map(|docs| docs.push(value.clone())).is_some());
    if !kept {
        println!("{}", serde_json::to_string_pretty(value).unwrap_or_default());
    }
}

/// Runs `f` and returns, unprinted, the JSON documents it printed: for a
/// command that makes several reports and prints them as one document.
pub fn collect_json<T>(f: impl FnOnce() -> T) -> (T, Vec<serde_json::Value>) {
    let outer = COLLECTED.with(|c| c.replace(Some(Vec::new())));
    let out = f();
    let docs = COLLECTED.with(|c| c.replace(outer)).unwrap_or_default();
    (out, docs)
}

pub fn is_json(format: Format) -> bool {
    format == Format::Json
}
