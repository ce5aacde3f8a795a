//! OData v4 services as apps (`kind = "odata"`): a map's table is an entity
//! set. Reading pages in key order by keyset (`$orderby` on the key,
//! `$filter` past the last key: an offset `$skiptoken` skips or repeats rows
//! under concurrent writes); writing through JSON `$batch` changesets
//! (batch.rs); live sync by polling a change timestamp (capture.rs).
//!
//! - `http.rs`: requests, sign-in, retries, the bound on requests in flight;
//! - `metadata.rs`: `$metadata` into entity sets;
//! - `query.rs`, `values.rs`: `$filter` text, literals and JSON by Edm type.

mod auth;
mod batch;
mod capture;
mod dialect;
mod http;
mod metadata;
mod page;
mod query;
mod sort;
mod values;

use crate::{
    Connection, Connector, ConnectorError, ErrorKind, FetchRequest, Privileges, ScanRequest, Selection, Transport, WriteBatch, WriteOutcome,
};
use dualsync_model::config::odata::ODataApp;
use dualsync_model::row::key_cmp;
use dualsync_model::{Row, TableSchema, Value};
use http::{encode, Answer, Client};
use metadata::{EntitySet, Metadata};
use query::Query;
use serde_json::Value as Json;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What answers are asked for: minimal metadata, and 64-bit integers and
/// decimals as strings (every digit kept).
const ACCEPT: &str = "application/json;odata.metadata=minimal;IEEE754Compatible=true";
/// The longest `$filter` sent in one URL, percent-encoded (servers refuse URLs past 8 KB or so).
const MAX_FILTER: usize = 6000;
/// ETags remembered from reads, for the writes that follow them.
const MAX_ETAGS: usize = 200_000;

pub struct ODataConnector {
    shared: Arc<Shared>,
}

struct Shared {
    app: ODataApp,
    client: Client,
    metadata: Mutex<Option<Arc<Metadata>>>,
    /// The ETag of each entity as last read (by entity key), so that a write
    /// of what was read carries it in `If-Match`: a 412 means someone else
    /// changed the row since, and it is never overwritten blindly.
    etags: Mutex<HashMap<String, String>>,
}

impl ODataConnector {
    pub fn new(app: &ODataApp, secret: Option<&str>) -> Result<ODataConnector, ConnectorError> {
        let sign_in = auth::SignIn::new(&app.auth, secret)?;
        let client = Client::new(&app.url, sign_in, Duration::from_secs(app.timeout_seconds), app.max_requests)?;
        Ok(ODataConnector {
            shared: Arc::new(Shared { app: app.clone(), client, metadata: Mutex::new(None), etags: Mutex::new(HashMap::new()) }),
        })
    }
}

impl Connector for ODataConnector {
    fn location(&self) -> String {
        dualsync_model::config::redact_url(&self.shared.app.url)
    }

    fn connect(&self) -> Result<Box<dyn Connection>, ConnectorError> {
        self.shared.metadata()?;
        Ok(Box::new(ODataConnection { shared: self.shared.clone(), capture: None }))
    }

    fn write_batch_size(&self) -> usize {
        // Several changesets per `$batch`: a round trip carries many, each commits alone.
        (self.shared.app.changeset_size * 10).clamp(100, 5000)
    }

    fn concurrent_writes(&self) -> bool {
        true
    }

    fn capture_way(&self) -> crate::CaptureWay {
        match self.shared.capabilities().tracks_changes {
            true => crate::CaptureWay::ChangeTracking,
            false => crate::CaptureWay::Polling,
        }
    }

    /// Polling never sees deletes; change tracking names them by entity id
    /// only, so a map keyed otherwise still needs the scan: it runs for both.
    fn delete_scan_every(&self) -> Option<Duration> {
        Some(Duration::from_secs(self.shared.app.delete_scan_seconds))
    }
}

impl Shared {
    fn capabilities(&self) -> dialect::Capabilities {
        dialect::of(self.app.dialect)
    }

    /// A read's path with the query options the dialect adds.
    fn read_options(&self, path: &str) -> String {
        if !self.capabilities().cross_company {
            return path.to_string();
        }
        format!("{path}{}cross-company=true", if path.contains('?') { '&' } else { '?' })
    }

    fn metadata(&self) -> Result<Arc<Metadata>, ConnectorError> {
        let mut cached = self.metadata.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(m) = cached.as_ref() {
            return Ok(m.clone());
        }
        let answer = self.client.get("$metadata", "application/xml", None)?;
        self.refused(&answer, "reading $metadata")?;
        let m = Arc::new(
            Metadata::parse(&answer.text())
                .map_err(|e| ConnectorError::new(ErrorKind::Database, format!("{}: {e}", self.client.root())))?,
        );
        *cached = Some(m.clone());
        Ok(m)
    }

    fn set(&self, name: &str) -> Result<Arc<EntitySet>, ConnectorError> {
        let m = self.metadata()?;
        if let Some(set) = m.sets.get(name) {
            return Ok(set.clone());
        }
        let near = m
            .sets
            .keys()
            .find(|n| n.eq_ignore_ascii_case(name))
            .map(|n| format!(" (did you mean {n}? entity set names are case-sensitive)"));
        let mut names: Vec<&String> = m.sets.keys().collect();
        names.sort();
        let list: Vec<&str> = names.iter().take(20).map(|s| s.as_str()).collect();
        Err(ConnectorError::new(
            ErrorKind::Schema,
            format!(
                "the service has no entity set {name:?}{}; it offers {}{}",
                near.unwrap_or_default(),
                list.join(", "),
                if names.len() > 20 { ", …" } else { "" }
            ),
        ))
    }

    /// An error for an answer that is not a success, in the service's own words.
    fn refused(&self, answer: &Answer, what: &str) -> Result<(), ConnectorError> {
        if answer.ok() {
            return Ok(());
        }
        let kind = match answer.status {
            401 | 403 => ErrorKind::Unavailable,
            404 => ErrorKind::Schema,
            429 | 503 => ErrorKind::Busy,
            _ => ErrorKind::Database,
        };
        let hint = match answer.status {
            401 => "; the service refused the sign-in: check auth, user and the secret's variable",
            403 => "; the user may not do this: grant it read and write on the entity set",
            _ => "",
        };
        Err(ConnectorError::new(
            kind,
            format!(
                "{} answered {} {what}: {}{hint}",
                dualsync_model::config::redact_url(self.client.root()),
                answer.status,
                service_message(answer).0
            ),
        ))
    }

    /// The number of the set's entities that pass `filter` (`$count`).
    fn count(&self, set: &EntitySet, filter: Option<&str>, what: &str) -> Result<u64, ConnectorError> {
        let mut path = format!("{}/$count", encode(&set.name));
        if let Some(f) = filter {
            path.push_str(&format!("?$filter={}", encode(f)));
        }
        let answer = self.client.get(&self.read_options(&path), "text/plain", None)?;
        self.refused(&answer, what)?;
        answer
            .text()
            .trim()
            .parse()
            .map_err(|_| ConnectorError::new(ErrorKind::Database, format!("$count answered {:?}, not a number", answer.text())))
    }

    /// GET one page of a read, with the dialect's options; an answer that is no success is an error.
    fn get_page(&self, path: &str) -> Result<Answer, ConnectorError> {
        let prefer = self.capabilities().max_page_size_preference.then(|| format!("odata.maxpagesize={}", self.app.page_size));
        let answer = self.client.get(&self.read_options(path), ACCEPT, prefer.as_deref())?;
        self.refused(&answer, &format!("reading {}", http::path_only(path)))?;
        Ok(answer)
    }

    /// GET one page: the entities and whether the service said more follow.
    fn page(&self, path: &str) -> Result<(Vec<serde_json::Map<String, Json>>, bool, Option<String>), ConnectorError> {
        let answer = self.get_page(path)?;
        let mut json: Json = serde_json::from_slice(&answer.body)
            .map_err(|e| ConnectorError::new(ErrorKind::Database, format!("the answer to {} is not JSON: {e}", http::path_only(path))))?;
        let more = json.get("@odata.nextLink").is_some();
        let Some(Json::Array(items)) = json.get_mut("value").map(Json::take) else {
            return Err(ConnectorError::new(
                ErrorKind::Database,
                format!("the answer to {} holds no \"value\" list", http::path_only(path)),
            ));
        };
        let rows = items.into_iter().filter_map(|i| if let Json::Object(o) = i { Some(o) } else { None }).collect();
        Ok((rows, more, answer.date))
    }

    /// GET one page, parsed straight into rows of `fields` (room for `spare` more values
    /// each), with their ETags remembered. A field an entity left out is an error.
    fn page_rows(&self, path: &str, set: &EntitySet, fields: &[String], spare: usize) -> Result<page::Page, ConnectorError> {
        let answer = self.get_page(path)?;
        let page = page::parse(&answer.body, set, fields, spare).map_err(|e| {
            ConnectorError::new(ErrorKind::Database, format!("the answer to {} is not an OData page: {e}", http::path_only(path)))
        })?;
        if let Some(i) = page.missing {
            return Err(left_out(set, &fields[i]));
        }
        let key_at: Vec<usize> = set.key.iter().filter_map(|k| fields.iter().position(|f| f == k)).collect();
        if key_at.len() == set.key.len() && page.etags.iter().any(Option::is_some) {
            let mut etags = self.etags.lock().unwrap_or_else(|p| p.into_inner());
            for (row, etag) in page.rows.iter().zip(&page.etags) {
                let Some(etag) = etag else { continue };
                if etags.len() >= MAX_ETAGS {
                    etags.clear(); // bounded; a write without a remembered ETag reads it first
                }
                etags.insert(key_text(&key_at.iter().map(|&i| row[i].clone()).collect::<Vec<_>>()), etag.clone());
            }
        }
        Ok(page)
    }
}

/// An entity key as one string, for the ETag map.
fn key_text(key: &[Value]) -> String {
    serde_json::to_string(&key.iter().map(Value::to_json).collect::<Vec<_>>()).unwrap_or_default()
}

/// A property's value in an answer. One the service left out is an error, never
/// a NULL: a sync would write that NULL over the value on the other side.
fn value_of(set: &EntitySet, column: &str, entity: &serde_json::Map<String, Json>) -> Result<Value, ConnectorError> {
    let property = set.property(column).ok_or_else(|| query::missing(set, column))?;
    match entity.get(column) {
        Some(j) => Ok(values::from_json(property, j)),
        None => Err(left_out(set, column)),
    }
}

/// A selected property missing from an answer.
fn left_out(set: &EntitySet, column: &str) -> ConnectorError {
    let edm = set.property(column).map_or("", |p| p.edm.as_str());
    ConnectorError::new(
        ErrorKind::Unsupported,
        format!(
            "entity set {} left property {column} ({edm}) out of its answer although it was selected \
             (a stream property, such as CAP's LargeBinary, is served on its own only); leave {column} out of the map",
            set.name
        ),
    )
}

/// The values of `columns` in an answer.
fn values_of(set: &EntitySet, columns: &[String], entity: &serde_json::Map<String, Json>) -> Result<Vec<Value>, ConnectorError> {
    columns.iter().map(|c| value_of(set, c, entity)).collect()
}

/// The service's message and the field it names, from an OData error body.
fn service_message(answer: &Answer) -> (String, Option<String>) {
    error_of(&serde_json::from_slice::<Json>(&answer.body).unwrap_or(Json::Null), &answer.text())
}

fn error_of(body: &Json, raw: &str) -> (String, Option<String>) {
    let error = &body["error"];
    let mut message = error["message"].as_str().map(str::to_string).unwrap_or_else(|| raw.chars().take(300).collect());
    if let Some(code) = error["code"].as_str() {
        message = format!("{message} ({code})");
    }
    let target = error["target"].as_str().or_else(|| error["details"][0]["target"].as_str()).map(str::to_string);
    (message, target)
}

pub struct ODataConnection {
    shared: Arc<Shared>,
    /// The capture installed last on this connection (its `change_cursor` follows).
    capture: Option<crate::CaptureSpec>,
}

impl ODataConnection {
    /// Reads pages in `order` (the entity key appended: a unique order), from
    /// after `after`, handing each page's rows (all of `fetch` columns) to `on_page`.
    fn keyset(
        &self,
        set: &EntitySet,
        selection: &Selection,
        columns: &[String],
        order: &[String],
        on_page: &mut dyn FnMut(Vec<(Row, Vec<Value>)>) -> bool,
    ) -> Result<(), ConnectorError> {
        let q = Query { set };
        let mut order: Vec<String> = order.to_vec();
        for k in &set.key {
            if !order.contains(k) {
                order.push(k.clone());
            }
        }
        let mut select: Vec<&str> = columns.iter().map(String::as_str).collect();
        for c in &order {
            if !select.contains(&c.as_str()) {
                select.push(c);
            }
        }
        for c in &select {
            set.property(c).ok_or_else(|| query::missing(set, c))?;
        }
        // Each row is read as `select`'s values: the columns first, then the rest of the order.
        let fields: Vec<String> = select.iter().map(|c| c.to_string()).collect();
        let order_at: Vec<usize> = order.iter().filter_map(|c| fields.iter().position(|f| f == c)).collect();
        let base = q.selection(selection)?;
        let order_by: Vec<String> = order.iter().map(|c| format!("{c} asc")).collect();
        let page_size = self.shared.app.page_size;
        let sorts_bytes = self.shared.capabilities().sorts_bytes;
        // The next page is fetched while the caller works on this one (two
        // pages in hand at most): reading costs the service's time, not the sum.
        let (pages, received) = std::sync::mpsc::sync_channel::<Result<Vec<(Row, Vec<Value>)>, ConnectorError>>(1);
        type Pages = std::sync::mpsc::SyncSender<Result<Vec<(Row, Vec<Value>)>, ConnectorError>>;
        let read = |pages: &Pages| -> Result<(), ConnectorError> {
            let mut last: Option<Vec<Value>> = None;
            loop {
                let mut conditions: Vec<String> = base.iter().map(|b| format!("({b})")).collect();
                if let Some(last) = &last {
                    conditions.push(format!("({})", q.beyond(&order, last, "gt")?));
                }
                let mut path = format!(
                    "{}?$select={}&$orderby={}&$top={page_size}",
                    encode(&set.name),
                    encode(&select.join(",")),
                    encode(&order_by.join(","))
                );
                if !conditions.is_empty() {
                    path.push_str(&format!("&$filter={}", encode(&conditions.join(" and "))));
                }
                let page = self.shared.page_rows(&path, set, &fields, crate::ROW_SPARE)?;
                let (count, more) = (page.rows.len(), page.more);
                let mut rows = Vec::with_capacity(count);
                for mut row in page.rows {
                    let position: Vec<Value> = order_at.iter().map(|&i| row[i].clone()).collect();
                    row.truncate(columns.len());
                    let before = rows.last().map(|(_, p): &(Row, Vec<Value>)| p).or(last.as_ref()).filter(|_| sorts_bytes);
                    if let Some(before) = before {
                        if key_cmp(before, &position) != std::cmp::Ordering::Less {
                            return Err(not_binary_order(set, &order, before, &position));
                        }
                    }
                    rows.push((row, position));
                }
                let go_on = count > 0 && (count >= page_size || more);
                last = rows.last().map(|(_, p)| p.clone());
                // The caller stopped taking pages: stop reading.
                if count > 0 && pages.send(Ok(rows)).is_err() {
                    return Ok(());
                }
                if !go_on {
                    return Ok(());
                }
            }
        };
        // The receiver is moved in: dropped when the caller stops, so that the reader's
        // next send fails and it ends (the scope waits for it).
        std::thread::scope(move |scope| {
            scope.spawn(move || {
                if let Err(e) = read(&pages) {
                    let _ = pages.send(Err(e));
                }
            });
            for page in received {
                if !on_page(page?) {
                    return Ok(());
                }
            }
            Ok(())
        })
    }
}

impl ODataConnection {
    /// A scan of a service that does not sort keys in byte order: read in
    /// its own order, sorted here (memory bounded, runs on disk). A key range
    /// is applied here too, in byte order, since the service compares its way.
    fn scan_sorted_here(
        &self,
        set: &EntitySet,
        request: &ScanRequest,
        on_batch: &mut dyn FnMut(Vec<Row>) -> bool,
    ) -> Result<(), ConnectorError> {
        let mut selection = request.selection.clone();
        let range = selection.range.take();
        let order = &request.order_by;
        let at: Vec<usize> = match &range {
            None => Vec::new(),
            Some(r) => r
                .columns
                .iter()
                .map(|c| {
                    order.iter().position(|o| o == c).ok_or_else(|| {
                        ConnectorError::new(ErrorKind::Unsupported, format!("a key range on {c}, which the scan does not sort by"))
                    })
                })
                .collect::<Result<_, _>>()?,
        };
        let within = |position: &[Value]| {
            let Some(r) = &range else { return true };
            let values: Vec<Value> = at.iter().map(|&i| position[i].clone()).collect();
            r.after.as_ref().is_none_or(|a| key_cmp(&values, a).is_gt()) && r.upto.as_ref().is_none_or(|u| key_cmp(&values, u).is_le())
        };
        let mut sorter = sort::ExternalSort::new(self.shared.app.sort_run_rows);
        let mut failed = None;
        self.keyset(set, &selection, &request.columns, order, &mut |rows| {
            for (row, position) in rows {
                if within(&position) {
                    if let Err(e) = sorter.push(position, row) {
                        failed = Some(e);
                        return false;
                    }
                }
            }
            true
        })?;
        if let Some(e) = failed {
            return Err(e);
        }
        sorter.finish(request.batch_size.max(1), on_batch)
    }
}

fn not_binary_order(set: &EntitySet, order: &[String], before: &[Value], after: &[Value]) -> ConnectorError {
    let show =
        |v: &[Value]| v.iter().map(|x| if x.is_null() { "NULL".into() } else { x.display().into_owned() }).collect::<Vec<_>>().join(", ");
    let why = if after.iter().any(Value::is_null) {
        "it sorts NULL after values, where dualsync reads NULL first (a database behind it that puts NULLs last, as PostgreSQL does?)"
    } else {
        "a case-insensitive sort, as Dataverse's?"
    };
    ConnectorError::new(
        ErrorKind::Database,
        format!(
            "entity set {} does not sort {} in byte order: ({}) came before ({}) ({why}); \
             nothing was merged from this read. Set dialect = \"dataverse\" for Dataverse, or key the map on columns the service sorts exactly",
            set.name,
            order.join(", "),
            show(before),
            show(after)
        ),
    )
}

impl Connection for ODataConnection {
    fn describe(&mut self, table: &str) -> Result<TableSchema, ConnectorError> {
        Ok(self.shared.set(table)?.schema())
    }

    fn distinct(&mut self, selection: &Selection, column: &str) -> Result<Vec<Value>, ConnectorError> {
        let set = self.shared.set(&selection.table)?;
        let mut out: Vec<Value> = Vec::new();
        let columns = [column.to_string()];
        // A scan of the column in its own order: each page starts past the
        // last value's rows, so a page holds few repeats.
        self.keyset(&set, selection, &columns, &columns, &mut |rows| {
            for (mut row, _) in rows {
                let v = row.swap_remove(0);
                if !out.last().is_some_and(|l| l.same_as(&v)) {
                    out.push(v);
                }
            }
            true
        })?;
        out.sort_by(|a, b| a.key_cmp(b));
        out.dedup_by(|a, b| a.same_as(b));
        Ok(out)
    }

    fn count(&mut self, selection: &Selection) -> Result<u64, ConnectorError> {
        let set = self.shared.set(&selection.table)?;
        let filter = (Query { set: &set }).selection(selection)?;
        self.shared.count(&set, filter.as_deref(), "counting rows")
    }

    fn scan(&mut self, request: &ScanRequest, on_batch: &mut dyn FnMut(Vec<Row>) -> bool) -> Result<(), ConnectorError> {
        let set = self.shared.set(&request.selection.table)?;
        if !self.shared.capabilities().sorts_bytes {
            return self.scan_sorted_here(&set, request, on_batch);
        }
        let mut batch = Vec::with_capacity(request.batch_size);
        let mut go_on = true;
        self.keyset(&set, &request.selection, &request.columns, &request.order_by, &mut |rows| {
            for (row, _) in rows {
                batch.push(row);
                if batch.len() >= request.batch_size {
                    go_on = on_batch(std::mem::replace(&mut batch, Vec::with_capacity(request.batch_size)));
                    if !go_on {
                        return false;
                    }
                }
            }
            true
        })?;
        if go_on && !batch.is_empty() {
            on_batch(batch);
        }
        Ok(())
    }

    fn fetch(&mut self, request: &FetchRequest) -> Result<Vec<Row>, ConnectorError> {
        let set = self.shared.set(&request.selection.table)?;
        fetch_rows(&self.shared, &set, &request.selection, &request.columns, &request.match_columns, &request.keys)
    }

    fn write(&mut self, batch: &WriteBatch) -> Result<WriteOutcome, ConnectorError> {
        batch::write(&self.shared, batch)
    }

    fn probe(&mut self, _batch: &WriteBatch) -> Result<WriteOutcome, ConnectorError> {
        Err(ConnectorError::new(
            ErrorKind::Unsupported,
            "an OData service cannot write and then undo a batch: `plan` does not measure writes to it",
        ))
    }

    fn privileges(&mut self, _table: &str) -> Result<Privileges, ConnectorError> {
        Ok(Privileges::default())
    }

    fn database_identity(&mut self) -> Result<String, ConnectorError> {
        // A service has no copy to tell apart: it is where its root is.
        Ok(format!("odata {}", dualsync_model::config::redact_url(&self.shared.app.url)))
    }

    fn transport(&mut self) -> Result<Transport, ConnectorError> {
        // https is always verified (issuer and host name); http is plain.
        let url = &self.shared.app.url;
        let host = url.split("://").nth(1).unwrap_or("").split(['/', ':']).next().unwrap_or("");
        if url.starts_with("https://") {
            return Ok(Transport::Tls {
                version: "HTTPS".into(),
                cipher: String::new(),
                verified: "certificate and host name verified",
                settings: "https".into(),
                exposure: None,
            });
        }
        let exposure = (!dualsync_tls::is_loopback(host)).then(|| dualsync_tls::Exposure {
            message: format!("the connection to {host} is not encrypted (http://): anyone on the network in between can read and change what dualsync reads and writes, and the sign-in"),
            hint: "use the service's https:// url".into(),
        });
        Ok(Transport::Plain { settings: "http://".into(), exposure })
    }

    fn set_fence(&mut self, _fence: crate::Fence) -> Result<(), ConnectorError> {
        // A service keeps no fence row: a stalled holder's writes to it are
        // stopped by its lease deadline alone (docs/scale-out.md).
        Ok(())
    }

    fn install_capture(&mut self, spec: &crate::CaptureSpec) -> Result<(), ConnectorError> {
        capture::check(&self.shared, spec)?;
        self.capture = Some(spec.clone());
        Ok(())
    }

    fn capture_of(&mut self, table: &str) -> Result<Option<Vec<String>>, ConnectorError> {
        // Nothing is installed in a service: an empty list says capture can run
        // (polling: the set has the change column; change tracking: the set exists).
        Ok(capture::ready(&self.shared, table).then(Vec::new))
    }

    fn change_cursor(&mut self) -> Result<crate::Cursor, ConnectorError> {
        let spec =
            self.capture.clone().ok_or_else(|| ConnectorError::new(ErrorKind::Unsupported, "install capture before taking its cursor"))?;
        capture::start(&self.shared, &spec)
    }

    fn read_changes(
        &mut self,
        table: &str,
        after: &crate::Cursor,
        limit: usize,
    ) -> Result<(Vec<crate::Change>, crate::Cursor), ConnectorError> {
        capture::read(&self.shared, table, after, limit)
    }

    fn pending_changes(&mut self, table: &str, after: &crate::Cursor) -> Result<u64, ConnectorError> {
        capture::pending(&self.shared, table, after)
    }
}

/// The selected rows whose `match_columns` equal one of `keys`, as many keys
/// per request as a URL holds.
fn fetch_rows(
    shared: &Shared,
    set: &EntitySet,
    selection: &Selection,
    columns: &[String],
    match_columns: &[String],
    keys: &[Vec<Value>],
) -> Result<Vec<Row>, ConnectorError> {
    let q = Query { set };
    let base = q.selection(selection)?;
    for c in columns.iter().chain(match_columns) {
        set.property(c).ok_or_else(|| query::missing(set, c))?;
    }
    let mut select: Vec<&str> = columns.iter().map(String::as_str).collect();
    for k in &set.key {
        if !select.contains(&k.as_str()) {
            select.push(k);
        }
    }
    let fields: Vec<String> = select.iter().map(|c| c.to_string()).collect();
    let mut out = Vec::new();
    let mut start = 0;
    while start < keys.len() {
        // As many keys as fit the URL.
        // Measured as sent: percent-encoding triples every byte of an emoji.
        let mut end = start;
        let mut filter = String::new();
        let mut encoded = base.as_deref().map_or(0, |b| encode(b).len() + 12);
        while end < keys.len() {
            let one = q.one_of(match_columns, &keys[end..end + 1])?;
            let one_encoded = encode(&one).len() + 8;
            if end > start && encoded + one_encoded > MAX_FILTER {
                break;
            }
            encoded += one_encoded;
            if end > start {
                filter.push_str(" or ");
            }
            filter.push_str(&one);
            end += 1;
        }
        let filter = match &base {
            Some(b) => format!("({b}) and ({filter})"),
            None => filter,
        };
        let path = format!("{}?$select={}&$filter={}", encode(&set.name), encode(&select.join(",")), encode(&filter));
        let mut chunk_rows = 0;
        loop {
            let paged = if chunk_rows == 0 { path.clone() } else { format!("{path}&$skip={chunk_rows}") };
            let page = shared.page_rows(&paged, set, &fields, 0)?;
            let (got, more) = (page.rows.len(), page.more);
            chunk_rows += got;
            out.extend(page.rows.into_iter().map(|mut row| {
                row.truncate(columns.len());
                row
            }));
            // A service that pages the answer: the keys are few, an offset is safe here.
            if !more || got == 0 {
                break;
            }
        }
        start = end;
    }
    Ok(out)
}
