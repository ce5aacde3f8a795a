//! Finds the line of a key path (`maps[1].columns[2].crm`) in a TOML file, so
//! that config errors point at the line to fix.

/// The 1-based line where `path` is written, or where its table starts.
pub fn line_of(source: &str, path: &str) -> Option<usize> {
    let (table_path, key) = match path.rsplit_once('.') {
        Some((t, k)) if !k.contains('[') => (t.to_string(), Some(k)),
        _ => (path.to_string(), None),
    };
    let mut header = String::new();
    let mut counters: Vec<(String, usize)> = Vec::new();
    let mut table_line = None;
    for (n, raw) in source.lines().enumerate() {
        let line = raw.trim();
        if let Some(inner) = line.strip_prefix("[[").and_then(|l| l.split("]]").next()) {
            // An array of tables: number each entry, under its parent's current entry.
            let parent = parent_of(&header, inner.trim());
            let name = format!("{parent}{}", last_segment(inner.trim()));
            let count = match counters.iter_mut().find(|(k, _)| *k == name) {
                Some((_, c)) => {
                    *c += 1;
                    *c
                }
                None => {
                    counters.push((name.clone(), 0));
                    0
                }
            };
            header = format!("{name}[{count}]");
        } else if let Some(inner) = line.strip_prefix('[').and_then(|l| l.split(']').next()) {
            let inner = inner.trim();
            header = format!("{}{}", parent_of(&header, inner), last_segment(inner));
        } else if let Some(k) = key {
            let written = line.split('=').next().unwrap_or("").trim().trim_matches('"');
            if header == table_path && written == k && line.contains('=') {
                return Some(n + 1);
            }
            continue;
        } else {
            continue;
        }
        if header == table_path && table_line.is_none() {
            table_line = Some(n + 1);
        }
    }
    table_line.or_else(|| key.and_then(|k| top_level_key(source, &table_path, k)))
}

/// `[maps.erp]` while inside `maps[1]` belongs to `maps[1].`; a top-level table has no parent.
fn parent_of(current: &str, dotted: &str) -> String {
    let Some((prefix, _)) = dotted.rsplit_once('.') else {
        return String::new();
    };
    // Walk the current header and keep the numbered entry whose plain name is `prefix`.
    let mut built = String::new();
    for seg in current.split('.') {
        if !built.is_empty() {
            built.push('.');
        }
        built.push_str(seg);
        let plain: String = built.split('.').map(|s| s.split('[').next().unwrap_or(s)).collect::<Vec<_>>().join(".");
        if plain == prefix {
            return format!("{built}.");
        }
    }
    format!("{prefix}.")
}

fn last_segment(dotted: &str) -> &str {
    dotted.rsplit('.').next().unwrap_or(dotted)
}

fn top_level_key(source: &str, table: &str, key: &str) -> Option<usize> {
    if !table.is_empty() {
        return None;
    }
    source.lines().position(|l| l.trim().starts_with(key) && l.contains('=')).map(|n| n + 1)
}
