//! Writing a batch through JSON `$batch`: the ops in changesets
//! (`atomicityGroup`s) of `changeset_size`, many changesets per request.
//!
//! - A changeset the service refuses is rolled back whole, even where its
//!   other items answer 201. Its refused items become row failures with the
//!   service's message and the field it names; the rest go again in a new
//!   changeset, until every row is in or logged alone.
//! - Updates and deletes carry the ETag of the row as dualsync read it; a
//!   412 means another writer changed the row since: it is a row failure,
//!   never overwritten, and that writer's change is reconciled when polled.
//! - A request that got no answer (a reset) may have been applied: each of
//!   its changesets is read back, and only those not in the service go again.
//! - Where the dialect upserts by PATCH (Dataverse), an insert is a PATCH to
//!   the row's address: sent twice, it is still one row. Where it addresses
//!   rows by alternate keys, a map keyed on one writes to
//!   `accounts(accountnumber='A-1')` without looking the row up first.

use super::metadata::EntitySet;
use super::query::Query;
use super::values::{to_json, utf16_len};
use super::{error_of, fetch_rows, key_text, Shared, ACCEPT};
use crate::{ConnectorError, ErrorKind, RowFailure, Selection, WriteBatch, WriteOp, WriteOutcome};
use dualsync_model::Value;
use serde_json::{json, Map, Value as Json};
use std::collections::HashMap;

/// Rounds of re-sending before a batch gives up (each round settles at least one op).
const MAX_ROUNDS: usize = 200;

struct Item {
    /// The op's position in the batch.
    index: usize,
    method: &'static str,
    url: String,
    body: Option<Map<String, Json>>,
    if_match: Option<String>,
    /// How the entity is named (to read it back, and its ETag), where known.
    address: Option<Address>,
    /// A PATCH that creates the row where it is missing: never with `If-Match`.
    upsert: bool,
}

/// Key columns and their values naming one entity: its entity key, or a declared alternate key.
#[derive(Clone)]
struct Address {
    columns: Vec<String>,
    values: Vec<Value>,
}

impl Address {
    /// The entity key, where this address is one (the ETag map is by entity key).
    fn entity_key(&self, set: &EntitySet) -> Option<&Vec<Value>> {
        (self.columns == set.key).then_some(&self.values)
    }
}

pub fn write(shared: &Shared, batch: &WriteBatch) -> Result<WriteOutcome, ConnectorError> {
    let set = shared.set(&batch.table)?;
    let mut failures = Vec::new();
    let mut items = prepare(shared, &set, batch, &mut failures)?;
    let size = shared.app.changeset_size.max(1);
    let mut pending: Vec<Vec<usize>> = (0..items.len()).collect::<Vec<_>>().chunks(size).map(<[usize]>::to_vec).collect();
    let mut rounds = 0;
    while !pending.is_empty() {
        rounds += 1;
        if rounds > MAX_ROUNDS {
            return Err(ConnectorError::new(
                ErrorKind::Database,
                format!("writing {}: the service kept refusing changesets without naming a row", set.name),
            ));
        }
        let body = request_body(&items, &pending);
        let headers = [
            ("Content-Type", "application/json;IEEE754Compatible=true".to_string()),
            ("Accept", ACCEPT.to_string()),
            ("OData-Version", "4.0".into()),
        ];
        let answer = match shared.client.send("POST", "$batch", &headers, Some(&body), false)? {
            super::http::Sent::InDoubt(_) => {
                pending = not_applied(shared, &set, &items, pending)?;
                continue;
            }
            super::http::Sent::Answered(a) => a,
        };
        shared.refused(&answer, &format!("the $batch writing {}", set.name))?;
        let responses = responses(&answer.body)?;
        let mut next = Vec::new();
        for group in pending {
            settle(shared, &set, &mut items, group, &responses, &mut failures, &mut next)?;
        }
        pending = next;
    }
    failures.sort_by_key(|f| f.index);
    Ok(WriteOutcome { failures })
}

/// Each op as a request; ops the service would refuse for their length are failures at once.
fn prepare(shared: &Shared, set: &EntitySet, batch: &WriteBatch, failures: &mut Vec<RowFailure>) -> Result<Vec<Item>, ConnectorError> {
    let q = Query { set };
    // The ETags as dualsync read the rows, before a lookup reads them anew.
    let as_read = match batch.key_columns == set.key {
        true => shared.etags.lock().unwrap_or_else(|p| p.into_inner()).clone_for(batch.ops.iter().filter_map(|op| match op {
            WriteOp::Update { key, .. } | WriteOp::Delete { key } => Some(key),
            WriteOp::Insert(_) => None,
        })),
        false => HashMap::new(),
    };
    let capabilities = shared.capabilities();
    // The map's key is a declared alternate key: rows are addressed by it, never looked up.
    let alternate = match capabilities.alternate_keys_in_url && batch.scope.is_empty() && batch.key_columns != set.key {
        true => set.alternate_key(&batch.key_columns).map(<[String]>::to_vec),
        false => None,
    };
    let entities = if alternate.is_some() { HashMap::new() } else { entity_keys(shared, set, batch)? };
    let mut items = Vec::with_capacity(batch.ops.len());
    let property = |c: &str| set.property(c).ok_or_else(|| super::query::missing(set, c));
    for (index, op) in batch.ops.iter().enumerate() {
        let values: Vec<(&str, &Value)> = match op {
            WriteOp::Insert(row) => {
                batch.columns.iter().map(String::as_str).zip(row.iter()).chain(batch.scope.iter().map(|(c, v)| (c.as_str(), v))).collect()
            }
            WriteOp::Update { set: assignments, .. } => assignments.iter().map(|(c, v)| (c.as_str(), v)).collect(),
            WriteOp::Delete { .. } => Vec::new(),
        };
        let mut body = Map::new();
        let mut too_long = None;
        for (column, value) in &values {
            let p = property(column)?;
            if p.computed && !set.key.contains(&p.name) {
                continue; // the service sets it
            }
            if let (Some(max), Value::Text(t)) = (p.max_length, value) {
                let len = utf16_len(t);
                if len > max && too_long.is_none() {
                    too_long = Some(RowFailure {
                        index,
                        column: Some(p.name.clone()),
                        message: format!("{} holds {len} characters as the service counts them (UTF-16 code units: an emoji counts 2), more than its MaxLength of {max}", p.name),
                    });
                }
            }
            body.insert(p.name.clone(), to_json(p, value));
        }
        if let Some(f) = too_long {
            failures.push(f);
            continue;
        }
        let is_delete = matches!(op, WriteOp::Delete { .. });
        let item = match op {
            WriteOp::Insert(_) => {
                let named_by = |columns: &[String]| -> Option<Address> {
                    let values =
                        columns.iter().map(|k| values.iter().find(|(c, _)| c == k).map(|(_, v)| (*v).clone())).collect::<Option<_>>()?;
                    Some(Address { columns: columns.to_vec(), values })
                };
                let address = named_by(&set.key).or_else(|| alternate.as_deref().and_then(named_by));
                match address {
                    Some(address) if capabilities.upserts_by_patch => {
                        for c in &address.columns {
                            body.remove(c); // in the URL
                        }
                        let url = q.address(&address.columns, &address.values)?;
                        Item { index, method: "PATCH", url, body: Some(body), if_match: None, address: Some(address), upsert: true }
                    }
                    address => Item {
                        index,
                        method: "POST",
                        url: super::http::encode(&set.name),
                        body: Some(body),
                        if_match: None,
                        address: address.filter(|a| a.columns == set.key),
                        upsert: false,
                    },
                }
            }
            WriteOp::Update { key, .. } | WriteOp::Delete { key } if alternate.is_some() => {
                let columns = alternate.clone().unwrap_or_default();
                let values = columns
                    .iter()
                    .map(|c| batch.key_columns.iter().position(|k| k == c).map(|i| key[i].clone()))
                    .collect::<Option<Vec<Value>>>()
                    .unwrap_or_default();
                Item {
                    index,
                    method: if is_delete { "DELETE" } else { "PATCH" },
                    url: q.address(&columns, &values)?,
                    body: (!is_delete).then_some(body),
                    if_match: None,
                    address: Some(Address { columns, values }),
                    upsert: false,
                }
            }
            WriteOp::Update { key, .. } | WriteOp::Delete { key } => {
                let Some(entity) = entities.get(&key_text(key)) else {
                    if matches!(op, WriteOp::Delete { .. }) {
                        continue; // already gone
                    }
                    failures.push(RowFailure {
                        index,
                        column: None,
                        message: format!("no row of {} has this key (or it is outside the company) at the service", set.name),
                    });
                    continue;
                };
                Item {
                    index,
                    method: if is_delete { "DELETE" } else { "PATCH" },
                    url: q.entity(entity)?,
                    body: (!is_delete).then_some(body),
                    if_match: None,
                    address: Some(Address { columns: set.key.clone(), values: entity.clone() }),
                    upsert: false,
                }
            }
        };
        items.push(item);
    }
    attach_etags(shared, set, &as_read, &mut items);
    Ok(items)
}

/// The entity key of each update's and delete's row, by the op's key text.
/// Where the map's key is the entity key and no company scopes it, the key
/// is the address; otherwise the rows are looked up (within the scope).
fn entity_keys(shared: &Shared, set: &EntitySet, batch: &WriteBatch) -> Result<HashMap<String, Vec<Value>>, ConnectorError> {
    let keys: Vec<Vec<Value>> = batch
        .ops
        .iter()
        .filter_map(|op| match op {
            WriteOp::Update { key, .. } | WriteOp::Delete { key } => Some(key.clone()),
            WriteOp::Insert(_) => None,
        })
        .collect();
    if keys.is_empty() {
        return Ok(HashMap::new());
    }
    let direct = batch.scope.is_empty() && batch.key_columns == set.key;
    let has_deletes = batch.ops.iter().any(|op| matches!(op, WriteOp::Delete { .. }));
    if direct && !has_deletes && !set.etag {
        return Ok(keys.into_iter().map(|k| (key_text(&k), k)).collect());
    }
    // Read the rows: their entity keys, their ETags, and which are gone.
    let mut columns = batch.key_columns.clone();
    columns.extend(set.key.iter().cloned());
    let selection = Selection { table: set.name.clone(), equals: batch.scope.clone(), ..Default::default() };
    let rows = fetch_rows(shared, set, &selection, &columns, &batch.key_columns, &keys)?;
    let width = batch.key_columns.len();
    Ok(rows.into_iter().map(|r| (key_text(&r[..width]), r[width..].to_vec())).collect())
}

/// Updates and deletes carry the ETag of the row as read (`as_read`, else as
/// the lookup found it); without one, `*`: the row must exist (Dataverse's
/// PATCH would create a row that is gone).
fn attach_etags(shared: &Shared, set: &EntitySet, as_read: &HashMap<String, String>, items: &mut [Item]) {
    let needs = |i: &Item| i.method != "POST" && !i.upsert && (set.etag || shared.capabilities().if_match_always);
    let found = shared
        .etags
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone_for(items.iter().filter(|i| needs(i)).filter_map(|i| i.address.as_ref()?.entity_key(set)));
    for item in items.iter_mut().filter(|i| needs(i)) {
        let key = item.address.as_ref().and_then(|a| a.entity_key(set)).map(|e| key_text(e)).unwrap_or_default();
        item.if_match = as_read.get(&key).or_else(|| found.get(&key)).cloned().or_else(|| Some("*".into()));
    }
}

/// A copy of the ETags of some entities (the lock is not held while writing).
trait CloneFor {
    fn clone_for<'a>(&self, keys: impl Iterator<Item = &'a Vec<Value>>) -> HashMap<String, String>;
}

impl CloneFor for HashMap<String, String> {
    fn clone_for<'a>(&self, keys: impl Iterator<Item = &'a Vec<Value>>) -> HashMap<String, String> {
        keys.filter_map(|k| {
            let t = key_text(k);
            self.get(&t).map(|e| (t, e.clone()))
        })
        .collect()
    }
}

fn request_body(items: &[Item], groups: &[Vec<usize>]) -> Vec<u8> {
    let mut requests = Vec::new();
    for (g, group) in groups.iter().enumerate() {
        for &i in group {
            let item = &items[i];
            let mut headers = Map::new();
            headers.insert("content-type".into(), "application/json;IEEE754Compatible=true".into());
            if item.method != "DELETE" {
                headers.insert("prefer".into(), "return=minimal".into());
            }
            if let Some(m) = &item.if_match {
                headers.insert("if-match".into(), m.clone().into());
            }
            let mut r = json!({ "id": i.to_string(), "method": item.method, "url": item.url, "headers": headers });
            if group.len() > 1 {
                r["atomicityGroup"] = format!("g{g}").into();
            }
            if let Some(b) = &item.body {
                r["body"] = Json::Object(b.clone());
            }
            requests.push(r);
        }
    }
    serde_json::to_vec(&json!({ "requests": requests })).unwrap_or_default()
}

/// Each item's status and body, by id.
fn responses(body: &[u8]) -> Result<HashMap<String, (u16, Json)>, ConnectorError> {
    let json: Json = serde_json::from_slice(body).map_err(|e| {
        ConnectorError::new(
            ErrorKind::Database,
            format!("the $batch answer is not JSON: {e} (does the service take JSON $batch? OData 4.01)"),
        )
    })?;
    let list = json["responses"]
        .as_array()
        .ok_or_else(|| ConnectorError::new(ErrorKind::Database, "the $batch answer holds no \"responses\" list"))?;
    Ok(list
        .iter()
        .filter_map(|r| Some((r["id"].as_str()?.to_string(), (r["status"].as_u64().unwrap_or(0) as u16, r["body"].clone()))))
        .collect())
}

/// One changeset's outcome: applied, or its refused items logged and the rest queued again.
fn settle(
    shared: &Shared,
    set: &EntitySet,
    items: &mut [Item],
    group: Vec<usize>,
    responses: &HashMap<String, (u16, Json)>,
    failures: &mut Vec<RowFailure>,
    next: &mut Vec<Vec<usize>>,
) -> Result<(), ConnectorError> {
    let status = |i: usize| responses.get(&i.to_string()).map(|(s, _)| *s);
    let deletes: Vec<bool> = group.iter().map(|&i| items[i].method == "DELETE").collect();
    let position = |i: usize| group.iter().position(|&g| g == i).unwrap_or(0);
    let fine = |i: usize, s: Option<u16>| s.is_some_and(|s| (200..300).contains(&s) || (s == 404 && deletes[position(i)]));
    if group.iter().all(|&i| fine(i, status(i))) {
        return Ok(());
    }
    let mut again = Vec::new();
    let mut refused_any = false;
    for &i in &group {
        match status(i) {
            s if fine(i, s) => again.push(i),
            None | Some(429) | Some(503) => again.push(i),
            Some(412) => {
                refused_any = true;
                if let Some(e) = items[i].address.as_ref().and_then(|a| a.entity_key(set)) {
                    shared.etags.lock().unwrap_or_else(|p| p.into_inner()).remove(&key_text(e));
                }
                failures.push(RowFailure {
                    index: items[i].index,
                    column: None,
                    message: "the row changed at the service since dualsync read it (412 Precondition Failed): not overwritten; live sync reconciles it with that change, `dualsync retry` writes it again".into(),
                });
            }
            Some(428) if items[i].if_match.is_none() => {
                // The service wants ETags on this set: read the row's, then go again.
                if let Some(e) = items[i].address.as_ref().and_then(|a| a.entity_key(set)).cloned() {
                    let selection = Selection { table: set.name.clone(), ..Default::default() };
                    fetch_rows(shared, set, &selection, &set.key, &set.key, &[e.clone()])?;
                    items[i].if_match = Some(
                        shared.etags.lock().unwrap_or_else(|p| p.into_inner()).get(&key_text(&e)).cloned().unwrap_or_else(|| "*".into()),
                    );
                }
                again.push(i);
            }
            Some(s) => {
                refused_any = true;
                let body = &responses[&i.to_string()].1;
                let (message, target) = error_of(body, &body.to_string());
                let message = if message.ends_with(&format!("({s})")) { message } else { format!("{message} (HTTP {s})") };
                failures.push(RowFailure { index: items[i].index, column: target, message });
            }
        }
    }
    if again.is_empty() {
        return Ok(());
    }
    if !refused_any && again.len() == group.len() && group.len() > 1 {
        // Refused without naming an item: halve the changeset to find it.
        let (a, b) = again.split_at(again.len() / 2);
        next.push(a.to_vec());
        next.push(b.to_vec());
    } else {
        next.push(again);
    }
    Ok(())
}

/// After a request that got no answer: the changesets whose effect is not
/// in the service (each is all or nothing), to send again.
fn not_applied(shared: &Shared, set: &EntitySet, items: &[Item], groups: Vec<Vec<usize>>) -> Result<Vec<Vec<usize>>, ConnectorError> {
    // The rows to read back, by the key columns that name them.
    let mut wanted: HashMap<Vec<String>, Vec<Vec<Value>>> = HashMap::new();
    for &i in groups.iter().flatten() {
        match &items[i].address {
            Some(a) => wanted.entry(a.columns.clone()).or_default().push(a.values.clone()),
            None => {
                return Err(ConnectorError::new(
                    ErrorKind::Unavailable,
                    format!("the connection broke while writing {} and a new row's key is the service's own: whether it was written cannot be read back; run `dualsync sync` to reconcile", set.name),
                ))
            }
        }
    }
    // Only what is compared: the keys and the columns sent (a stream property is never in an answer).
    let mut columns: Vec<String> = set.key.clone();
    for &i in groups.iter().flatten() {
        let sent = items[i].body.iter().flat_map(|b| b.keys());
        for c in items[i].address.iter().flat_map(|a| &a.columns).chain(sent) {
            if !columns.contains(c) {
                columns.push(c.clone());
            }
        }
    }
    let selection = Selection { table: set.name.clone(), ..Default::default() };
    let mut now: HashMap<(Vec<String>, String), Vec<Value>> = HashMap::new();
    for (key_columns, keys) in wanted {
        let at: Vec<usize> = key_columns.iter().filter_map(|k| columns.iter().position(|c| c == k)).collect();
        for row in fetch_rows(shared, set, &selection, &columns, &key_columns, &keys)? {
            let key = key_text(&at.iter().map(|&p| row[p].clone()).collect::<Vec<_>>());
            now.insert((key_columns.clone(), key), row);
        }
    }
    let visible = |item: &Item| {
        let row = item.address.as_ref().and_then(|a| now.get(&(a.columns.clone(), key_text(&a.values))));
        match (item.method, row) {
            ("DELETE", row) => row.is_none(),
            (_, None) => false,
            ("POST", Some(_)) => true,
            (_, Some(row)) => item.body.iter().flatten().all(|(c, sent)| {
                let Some(p) = set.property(c) else { return true };
                let at = columns.iter().position(|x| x == c).map(|i| &row[i]);
                at.is_some_and(|v| super::values::from_json(p, sent).same_as(v))
            }),
        }
    };
    Ok(groups.into_iter().filter(|g| !g.iter().all(|&i| visible(&items[i]))).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::odata::metadata::Metadata;
    use dualsync_model::config::odata::{Dialect, ODataApp, ODataAuth};
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    /// A Dataverse-like service whose `$metadata` is already read: preparing
    /// writes by an alternate key must not need the network (the url answers nothing).
    fn dataverse() -> Shared {
        let csdl = r#"<edmx:Edmx Version="4.0" xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx"><edmx:DataServices>
<Schema Namespace="Microsoft.Dynamics.CRM" Alias="mscrm" xmlns="http://docs.oasis-open.org/odata/ns/edm">
  <EntityType Name="account"><Key><PropertyRef Name="accountid"/></Key>
    <Property Name="accountid" Type="Edm.Guid"/><Property Name="accountnumber" Type="Edm.String" MaxLength="20"/>
    <Property Name="name" Type="Edm.String" MaxLength="160"/>
    <Annotation Term="OData.Community.Keys.V1.AlternateKeys"><Collection><Record Type="OData.Community.Keys.V1.AlternateKey">
      <PropertyValue Property="Key"><Collection><Record Type="OData.Community.Keys.V1.PropertyRef">
        <PropertyValue Property="Alias" String="accountnumber"/><PropertyValue Property="Name" PropertyPath="accountnumber"/>
      </Record></Collection></PropertyValue></Record></Collection></Annotation>
  </EntityType>
  <EntityContainer Name="System"><EntitySet Name="accounts" EntityType="Microsoft.Dynamics.CRM.account"/></EntityContainer>
</Schema></edmx:DataServices></edmx:Edmx>"#;
        let app = ODataApp {
            url: "http://127.0.0.1:9/api/data/v9.2".into(),
            auth: ODataAuth::None,
            dialect: Dialect::Dataverse,
            page_size: 1000,
            changeset_size: 100,
            timeout_seconds: 1,
            max_requests: 1,
            changed: None,
            change_window_seconds: 5,
            delete_scan_seconds: 300,
            sort_run_rows: 1000,
        };
        let client =
            super::super::http::Client::new(&app.url, super::super::auth::SignIn::new(&app.auth, None).unwrap(), Duration::from_secs(1), 1)
                .unwrap();
        Shared { app, client, metadata: Mutex::new(Some(Arc::new(Metadata::parse(csdl).unwrap()))), etags: Mutex::new(HashMap::new()) }
    }

    fn text(s: &str) -> Value {
        Value::Text(s.into())
    }

    /// A batch of accounts keyed on their account number (an alternate key).
    fn by_account_number(ops: Vec<WriteOp>) -> WriteBatch {
        WriteBatch {
            table: "accounts".into(),
            columns: vec!["accountnumber".into(), "name".into()],
            key_columns: vec!["accountnumber".into()],
            scope: Vec::new(),
            ops,
        }
    }

    #[test]
    fn dataverse_writes_address_rows_by_their_alternate_key_and_insert_by_upsert() {
        let shared = dataverse();
        let set = shared.set("accounts").unwrap();
        let batch = by_account_number(vec![
            WriteOp::Insert(vec![text("A-1"), text("new")]),
            WriteOp::Update { key: vec![text("A'2")], set: vec![("name".into(), text("changed"))] },
            WriteOp::Delete { key: vec![text("A-3")] },
        ]);
        let mut failures = Vec::new();
        let items = prepare(&shared, &set, &batch, &mut failures).unwrap();
        assert!(failures.is_empty());
        let shown: Vec<(&str, &str, Option<&str>)> = items.iter().map(|i| (i.method, i.url.as_str(), i.if_match.as_deref())).collect();
        assert_eq!(
            shown,
            [
                // An upsert: no If-Match, which would forbid the create.
                ("PATCH", "accounts(accountnumber='A-1')", None),
                // Updates and deletes must find the row: If-Match: * (no ETag was read).
                ("PATCH", "accounts(accountnumber='A''2')", Some("*")),
                ("DELETE", "accounts(accountnumber='A-3')", Some("*")),
            ]
        );
        assert!(items[0].upsert);
        // The key is in the URL, not in the body.
        assert_eq!(items[0].body.as_ref().unwrap().keys().collect::<Vec<_>>(), ["name"]);
    }

    #[test]
    fn without_the_capability_an_insert_is_a_post_and_keys_are_looked_up() {
        let mut shared = dataverse();
        shared.app.dialect = Dialect::Standard;
        let set = shared.set("accounts").unwrap();
        let batch = by_account_number(vec![WriteOp::Insert(vec![text("A-1"), text("new")])]);
        let items = prepare(&shared, &set, &batch, &mut Vec::new()).unwrap();
        assert_eq!((items[0].method, items[0].url.as_str(), items[0].upsert), ("POST", "accounts", false));
    }
}
