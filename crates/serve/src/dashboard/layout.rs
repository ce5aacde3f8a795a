//! The frame every page shares, and the small pieces pages are made of.

use axum::response::Html;

/// Text made safe for HTML (element content and quoted attributes).
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A query-string value.
pub fn url_part(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
            b => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// A map's state with a symbol and a word, so it reads without colour.
pub fn state_badge(state: &str) -> String {
    let symbol = match state {
        "running" => "▶",
        "paused" => "‖",
        _ => "■",
    };
    format!(r#"<span class="state state-{0}"><span aria-hidden="true">{symbol}</span> {0}</span>"#, esc(state))
}

/// A button that POSTs to the API (dashboard.js), with optional fields.
pub fn action(api: &str, label: &str, done: &str, fields: &str) -> String {
    confirmed_action(api, label, done, fields, None)
}

/// The same, after the browser asks `question` (for what is not undone by a click).
pub fn confirmed_action(api: &str, label: &str, done: &str, fields: &str, question: Option<&str>) -> String {
    let confirm = question.map(|q| format!(r#" data-confirm="{}""#, esc(q))).unwrap_or_default();
    format!(
        r#"<form class="action" data-api="{}" data-done="{}"{confirm}>{fields}<button type="submit">{}</button></form>"#,
        esc(api),
        esc(done),
        esc(label)
    )
}

const NAV: [(&str, &str); 5] =
    [("/", "Maps"), ("/errors", "Errors"), ("/conflicts", "Conflicts"), ("/plan", "Plan"), ("/activity", "Activity")];

/// A whole page: header with navigation and who is logged in, a notice line, then `main`.
/// `refresh` seconds: the page's figures are fetched again while nobody types.
pub fn page(title: &str, here: &str, actor: &str, refresh: Option<u32>, main: &str) -> Html<String> {
    let nav: String = NAV
        .iter()
        .map(|(href, label)| {
            let current = if *href == here { r#" aria-current="page""# } else { "" };
            format!(r#"<a href="{href}"{current}>{label}</a>"#)
        })
        .collect();
    let refresh = refresh.map(|s| format!(r#" data-refresh="{s}""#)).unwrap_or_default();
    Html(format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · dualsync</title><link rel="stylesheet" href="/assets/dashboard.css"><script src="/assets/dashboard.js" defer></script></head>
<body><header><a class="brand" href="/">dualsync</a><nav>{nav}</nav>
<form method="post" action="/logout" class="who"><span>{actor}</span> <button type="submit">Log out</button></form></header>
<p id="notice" role="status" aria-live="polite"></p>
<main{refresh}><h1>{title}</h1>
{main}
</main></body></html>"#,
        title = esc(title),
        actor = esc(actor),
    ))
}

/// A table that scrolls sideways on a narrow screen rather than squeezing.
pub fn table(headers: &[&str], rows: &[String], empty: &str) -> String {
    if rows.is_empty() {
        return format!(r#"<p class="empty">{}</p>"#, esc(empty));
    }
    let head: String = headers.iter().map(|h| format!(r#"<th scope="col">{}</th>"#, esc(h))).collect();
    format!(r#"<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{}</tbody></table></div>"#, rows.concat())
}

/// A cell of text, cut at `max` characters (the whole text in its title).
pub fn cell(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return format!("<td>{}</td>", esc(text));
    }
    let cut: String = text.chars().take(max).collect();
    format!(r#"<td title="{}">{}…</td>"#, esc(text), esc(&cut))
}
