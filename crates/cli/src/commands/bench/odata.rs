//! `dualsync bench --odata URL`: an OData app against a plain HTTP client
//! on the same service, in the same run.
//!
//! The service exposes an entity set `Item { key k: String(40); name:
//! String(100); qty: Integer; price: Decimal(14,2) }` (`bash
//! crates/testkit/odata/bench.sh` serves one with SAP CAP; `FILL=1000000`
//! loads that many rows straight into its file first, for the reads: a
//! service writes far slower than it reads).
//!
//! - **Writing.** A plain client POSTs `--rows` rows in JSON `$batch`
//!   requests of ten changesets of `--changeset` rows; then `dualsync sync`
//!   writes `--rows` other rows from a SQLite file with the same changeset size.
//! - **Reading**, at each `--page-sizes`: a plain client pages the whole set
//!   by keyset (the same URLs, its JSON parsed); then `dualsync sync` reads
//!   it into an empty SQLite file (which also writes them: the ratio is
//!   conservative), with its peak memory.

use super::{run_child_sync, Measure};
use crate::cli::BenchArgs;
use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};

const ACCEPT: &str = "application/json;odata.metadata=minimal;IEEE754Compatible=true";

pub fn bench_odata(args: &BenchArgs, url: &str, dir: &Path, say: &dyn Fn(String)) -> Result<Value> {
    let url = url.trim_end_matches('/');
    let agent: ureq::Agent =
        ureq::Agent::config_builder().http_status_as_error(false).timeout_global(Some(Duration::from_secs(600))).build().into();
    let n = args.rows;
    let count = |agent: &ureq::Agent| -> Result<u64> {
        let mut r = agent.get(format!("{url}/Item/$count")).call().context("counting Item")?;
        Ok(r.body_mut().read_to_string()?.trim().parse()?)
    };
    // Rows already there (`FILL=` of bench.sh) are read too; the bench's own keys must be new.
    let before = count(&agent)?;
    let mut r = agent
        .get(format!("{url}/Item/$count?$filter=(k%20ge%20'd'%20and%20k%20lt%20'e')%20or%20(k%20ge%20'p'%20and%20k%20lt%20'q')"))
        .call()?;
    if r.body_mut().read_to_string()?.trim() != "0" {
        bail!("the Item set at {url} holds rows of an earlier bench: restart the bench server (it deploys its schema anew)");
    }
    say(format!("dualsync bench: OData at {url}, {n} rows written each way, changesets of {}", args.changeset));

    // Writing: the plain client, then dualsync.
    let t = Instant::now();
    plain_write(&agent, url, n, args.changeset)?;
    let plain_write_s = t.elapsed().as_secs_f64();
    say(format!(
        "  baseline  plain $batch client writes {n} rows         {plain_write_s:>7.2}s  {:>10.0} rows/s",
        n as f64 / plain_write_s
    ));
    let source = dir.join("source.db");
    make_source(&source, n)?;
    let config = write_config(dir, &format!("sqlite://{}", source.display()), url, args.changeset, 1000, "a")?;
    let ours = run_child_sync(&config)?;
    let written_ok = count(&agent)? == before + 2 * n;
    say(format!(
        "  dualsync  sync writes {n} rows into the service        {:>7.2}s  {:>10.0} rows/s  ratio {:.2}× baseline rate  peak RSS {:.0} MB  {}",
        ours.seconds,
        n as f64 / ours.seconds,
        plain_write_s / ours.seconds,
        ours.peak_rss_mb,
        if written_ok { "verified" } else { "WRONG COUNT" }
    ));
    let mut report = json!({
        "rows": n, "changeset": args.changeset,
        "plain_write_rows_per_second": n as f64 / plain_write_s,
        "write_rows_per_second": n as f64 / ours.seconds,
        "write_rate_ratio": plain_write_s / ours.seconds,
        "write_peak_rss_mb": ours.peak_rss_mb,
        "reads": [],
    });

    // Reading the 2n rows, at each page size.
    let mut ok = written_ok;
    for &page in &args.page_sizes {
        let t = Instant::now();
        let seen = plain_read(&agent, url, page)?;
        let plain_s = t.elapsed().as_secs_f64();
        let target = dir.join(format!("read-{page}.db"));
        rusqlite::Connection::open(&target)?
            .execute_batch("CREATE TABLE item (k TEXT PRIMARY KEY, name TEXT, qty INTEGER, price NUMERIC(14,2))")?;
        let config = write_config(dir, &format!("sqlite://{}", target.display()), url, args.changeset, page, "b")?;
        let read: Measure = run_child_sync(&config)?;
        let got: i64 = rusqlite::Connection::open(&target)?.query_row("SELECT count(*) FROM item", [], |r| r.get(0))?;
        let got = got as u64;
        let verified = seen == before + 2 * n && got == before + 2 * n;
        ok &= verified;
        say(format!(
            "  page size {page:>5}: plain client reads {seen} rows {plain_s:>7.2}s  {:>10.0} rows/s; dualsync reads them {:>7.2}s  {:>10.0} rows/s  ratio {:.2}× baseline rate  peak RSS {:.0} MB  {}",
            seen as f64 / plain_s,
            read.seconds,
            got as f64 / read.seconds,
            plain_s / read.seconds,
            read.peak_rss_mb,
            if verified { "verified" } else { "WRONG COUNT" }
        ));
        report["reads"].as_array_mut().expect("a list").push(json!({
            "page_size": page, "plain_rows_per_second": seen as f64 / plain_s, "rows_per_second": got as f64 / read.seconds,
            "rate_ratio": plain_s / read.seconds, "peak_rss_mb": read.peak_rss_mb,
        }));
    }
    report["ok"] = json!(ok);
    Ok(report)
}

/// The bench config: the SQLite app and the service, and one map; `master` the app the rows come from.
fn write_config(dir: &Path, sqlite: &str, url: &str, changeset: usize, page: usize, master: &str) -> Result<std::path::PathBuf> {
    let config = dir.join("dualsync.toml");
    // Writing, the sync reads back only its own rows (not the plain client's).
    let filter = if master == "a" { "filter = \"k >= 'd' AND k < 'e'\"" } else { "" };
    let text = format!(
        r#"[state]
url = "sqlite://state-{page}-{master}.db"
[apps.a]
url = "{sqlite}"
[apps.b]
kind = "odata"
url = "{url}"
page_size = {page}
changeset_size = {changeset}
[[maps]]
name = "items"
master = "{master}"
[maps.a]
table = "item"
key = "k"
[maps.b]
table = "Item"
key = "k"
{filter}
[[maps.columns]]
a = "k"
b = "k"
[[maps.columns]]
a = "name"
b = "name"
[[maps.columns]]
a = "qty"
b = "qty"
[[maps.columns]]
a = "price"
b = "price"
"#
    );
    std::fs::write(&config, text)?;
    Ok(config)
}

fn make_source(path: &Path, n: u64) -> Result<()> {
    let _ = std::fs::remove_file(path);
    let mut c = rusqlite::Connection::open(path)?;
    c.execute_batch("CREATE TABLE item (k TEXT PRIMARY KEY, name TEXT, qty INTEGER, price NUMERIC(14,2))")?;
    let tx = c.transaction()?;
    {
        let mut insert = tx.prepare("INSERT INTO item VALUES (?1, ?2, ?3, ?4)")?;
        for i in 0..n {
            insert.execute(rusqlite::params![
                format!("d{i:09}"),
                format!("name {i}"),
                (i % 1000) as i64,
                format!("{}.{:02}", i % 100000, i % 100)
            ])?;
        }
    }
    tx.commit()?;
    Ok(())
}

/// What a hand-written client does: ten changesets of `changeset` POSTs per `$batch`.
fn plain_write(agent: &ureq::Agent, url: &str, n: u64, changeset: usize) -> Result<()> {
    let per_request = (changeset * 10).clamp(100, 5000) as u64;
    let mut i = 0;
    while i < n {
        let end = (i + per_request).min(n);
        let requests: Vec<Value> = (i..end)
            .map(|j| {
                json!({
                    "id": j.to_string(), "atomicityGroup": format!("g{}", (j - i) / changeset as u64), "method": "POST", "url": "Item",
                    "headers": {"content-type": "application/json;IEEE754Compatible=true", "prefer": "return=minimal"},
                    "body": {"k": format!("p{j:09}"), "name": format!("name {j}"), "qty": j % 1000, "price": format!("{}.{:02}", j % 100000, j % 100)},
                })
            })
            .collect();
        let body = serde_json::to_vec(&json!({ "requests": requests }))?;
        let mut r = agent
            .post(format!("{url}/$batch"))
            .header("Content-Type", "application/json;IEEE754Compatible=true")
            .header("Accept", ACCEPT)
            .send(&body[..])?;
        let answer: Value = serde_json::from_slice(&r.body_mut().with_config().limit(u64::MAX).read_to_vec()?)?;
        let failed = answer["responses"].as_array().map_or(1, |a| a.iter().filter(|x| x["status"].as_u64().unwrap_or(500) >= 300).count());
        if failed > 0 {
            bail!("the plain client's $batch failed: {}", answer.to_string().chars().take(300).collect::<String>());
        }
        i = end;
    }
    Ok(())
}

/// Pages the whole set by keyset, parsing each page; returns the rows seen.
fn plain_read(agent: &ureq::Agent, url: &str, page: usize) -> Result<u64> {
    let mut last: Option<String> = None;
    let mut seen = 0;
    loop {
        let mut path = format!("{url}/Item?$select=k,name,qty,price&$orderby=k%20asc&$top={page}");
        if let Some(k) = &last {
            path.push_str(&format!("&$filter=k%20gt%20'{}'", k.replace('\'', "''")));
        }
        let mut r = agent.get(&path).header("Accept", ACCEPT).call()?;
        let json: Value = serde_json::from_slice(&r.body_mut().with_config().limit(u64::MAX).read_to_vec()?)?;
        let rows = json["value"].as_array().cloned().unwrap_or_default();
        seen += rows.len() as u64;
        match rows.last().and_then(|x| x["k"].as_str()) {
            Some(k) if rows.len() >= page || json.get("@odata.nextLink").is_some() => last = Some(k.to_string()),
            _ => return Ok(seen),
        }
    }
}
