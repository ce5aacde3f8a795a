//! Change capture through the service's own change tracking (Dataverse):
//! a read with `Prefer: odata.track-changes` ends with a delta link, and a
//! GET of that link answers the entities created or changed since, and the
//! deleted ones as `$deletedEntity` entries, then the next delta link.
//!
//! Built from the OData 4.0 JSON format (§15, delta responses) and
//! Dataverse's documentation; no live Dataverse was reached (see the README).
//! The cursor (`odata-delta:{…}`) holds the link to read next: a page's
//! `@odata.nextLink` while a delta is paged, then its `@odata.deltaLink`.

use super::super::metadata::EntitySet;
use super::super::values::from_json;
use super::super::{encode, values_of, Shared, ACCEPT};
use crate::{CaptureSpec, Change, ChangeKind, ConnectorError, Cursor, ErrorKind};
use dualsync_model::value::epoch_micros;
use dualsync_model::Value;
use serde_json::{json, Map, Value as Json};

pub const PREFIX: &str = "odata-delta:";
const WAY: &str = "change tracking";

/// At most this many pages are read to count a backlog (`status`): the
/// count says "at least" beyond it rather than reading a long delta twice.
const COUNT_PAGES: usize = 20;

struct Position {
    table: String,
    columns: Vec<String>,
    /// A link relative to the service root: the next page, or the delta.
    link: String,
}

impl Position {
    fn cursor(&self) -> Cursor {
        Cursor(format!("{PREFIX}{}", json!({ "table": self.table, "columns": self.columns, "link": self.link })))
    }

    fn parse(cursor: &Cursor) -> Result<Position, ConnectorError> {
        let (json, table, columns) = super::cursor_fields(cursor, PREFIX, WAY)?;
        let link = json["link"].as_str().ok_or_else(|| super::bad_cursor(cursor, WAY))?.to_string();
        Ok(Position { table, columns, link })
    }
}

/// One page of a delta: its changes and the link to read after it.
#[derive(Debug, PartialEq)]
pub struct DeltaPage {
    pub changes: Vec<Change>,
    /// `@odata.nextLink` (more of this delta) or `@odata.deltaLink` (the delta after it).
    pub next: Option<String>,
    /// Whether `next` is a delta link: this delta is read to its end.
    pub at_end: bool,
}

/// Reads a page of a delta answer. An entity is a change of the row it names
/// (its `columns`' values); a `$deletedEntity` (OData 4.0) or an `@removed`
/// entry (4.01) is a delete, when its key gives the `columns`. A delete whose
/// key does not (a map keyed on other columns than the entity key) is left to
/// live sync's key scan, which finds every deleted row.
pub fn parse_page(set: &EntitySet, columns: &[String], changed: Option<&str>, body: &Json, now: i64) -> Result<DeltaPage, ConnectorError> {
    let not_delta = |what: &str| ConnectorError::new(ErrorKind::Database, format!("the delta answer for {} {what}", set.name));
    let items = body["value"].as_array().ok_or_else(|| not_delta("holds no \"value\" list"))?;
    let mut changes = Vec::with_capacity(items.len());
    for item in items {
        let Json::Object(entity) = item else { return Err(not_delta("holds an entry that is no object")) };
        if is_deleted(entity) {
            if let Some(key) = deleted_key(set, entity).filter(|_| *columns == set.key) {
                changes.push(Change { values: key, kind: ChangeKind::Delete, at_micros: now });
            }
            continue;
        }
        let at_micros = changed.and_then(|c| entity.get(c)).and_then(Json::as_str).and_then(epoch_micros).map_or(now, |(micros, _)| micros);
        changes.push(Change { values: values_of(set, columns, entity)?, kind: ChangeKind::Update, at_micros });
    }
    let (next, at_end) = match (body["@odata.nextLink"].as_str(), body["@odata.deltaLink"].as_str()) {
        (Some(next), _) => (Some(next.to_string()), false),
        (None, Some(delta)) => (Some(delta.to_string()), true),
        (None, None) => (None, true),
    };
    Ok(DeltaPage { changes, next, at_end })
}

fn is_deleted(entity: &Map<String, Json>) -> bool {
    entity.contains_key("@removed")
        || entity.contains_key("@odata.removed")
        || entity.get("@odata.context").and_then(Json::as_str).is_some_and(|c| c.ends_with("/$deletedEntity"))
}

/// The deleted entity's key: its key properties (4.01), else its `id`,
/// which Dataverse gives as the bare key value and OData 4.0 as the
/// entity's address (`Customers('ALFKI')`) or its canonical URL.
fn deleted_key(set: &EntitySet, entity: &Map<String, Json>) -> Option<Vec<Value>> {
    if let Ok(key) = values_of(set, &set.key, entity) {
        return Some(key);
    }
    let [column] = set.key.as_slice() else { return None };
    let id = entity.get("id").or_else(|| entity.get("@id")).or_else(|| entity.get("@odata.id"))?.as_str()?;
    let literal = match id.rfind('(') {
        Some(open) if id.ends_with(')') => &id[open + 1..id.len() - 1],
        _ => id,
    };
    let literal = literal.strip_prefix(&format!("{column}=")).unwrap_or(literal);
    let text = match literal.strip_prefix('\'').and_then(|l| l.strip_suffix('\'')) {
        Some(quoted) => quoted.replace("''", "'"),
        None => literal.to_string(),
    };
    let property = set.property(column)?;
    let json = match property.edm.as_str() {
        "Edm.String" | "Edm.Guid" => Json::String(text),
        _ => serde_json::from_str(&text).ok()?,
    };
    Some(vec![from_json(property, &json)])
}

/// A delta link the service gave, relative to the service root. A link
/// elsewhere is refused: the app's credentials go to its own service only.
fn relative(shared: &Shared, link: &str) -> Result<String, ConnectorError> {
    let root = shared.client.root().trim_end_matches('/');
    if let Some(rest) = link.strip_prefix(root) {
        return Ok(rest.trim_start_matches('/').to_string());
    }
    if !link.contains("://") {
        return Ok(link.trim_start_matches('/').to_string());
    }
    Err(ConnectorError::new(
        ErrorKind::Database,
        format!(
            "the service's delta link points outside the app's url ({}); dualsync sends the app's credentials to that url only",
            dualsync_model::config::redact_url(root)
        ),
    ))
}

fn preference(shared: &Shared, page_size: usize) -> String {
    match shared.capabilities().max_page_size_preference {
        true => format!("odata.track-changes,odata.maxpagesize={page_size}"),
        false => "odata.track-changes".into(),
    }
}

/// GETs one page of a delta read: the JSON answer and the service's clock.
fn get(shared: &Shared, path: &str, page_size: usize) -> Result<(Json, i64), ConnectorError> {
    let answer = shared.client.get(path, ACCEPT, Some(&preference(shared, page_size)))?;
    if answer.status == 410 {
        return Err(ConnectorError::new(
            ErrorKind::Schema,
            "the service no longer knows this delta link (410 Gone: expired or reset); `dualsync stop` and `start` the map, which syncs it whole again",
        ));
    }
    shared.refused(&answer, &format!("reading changes of {}", super::super::http::path_only(path)))?;
    let json = serde_json::from_slice(&answer.body).map_err(|e| {
        ConnectorError::new(ErrorKind::Database, format!("the delta answer to {} is not JSON: {e}", super::super::http::path_only(path)))
    })?;
    Ok((json, super::clock(answer.date.as_deref())))
}

/// The columns a delta read selects: the entity key, the captured columns, the change timestamp.
fn selected(shared: &Shared, set: &EntitySet, columns: &[String]) -> Vec<String> {
    let mut select: Vec<String> = set.key.clone();
    for c in columns.iter().chain(shared.app.changed.as_ref()) {
        if !select.contains(c) && set.property(c).is_some() {
            select.push(c.clone());
        }
    }
    select
}

/// A cursor before every change from now on: the delta link at the end of a
/// tracked read of the set (its rows are passed over, one page at a time).
pub fn start(shared: &Shared, spec: &CaptureSpec) -> Result<Cursor, ConnectorError> {
    let set = shared.set(&spec.table)?;
    let mut path = format!("{}?$select={}", encode(&set.name), encode(&selected(shared, &set, &spec.columns).join(",")));
    loop {
        let (body, _) = get(shared, &path, shared.app.page_size)?;
        match (body["@odata.nextLink"].as_str(), body["@odata.deltaLink"].as_str()) {
            (Some(next), _) => path = relative(shared, next)?,
            (None, Some(delta)) => {
                let link = relative(shared, delta)?;
                return Ok(Position { table: set.name.clone(), columns: spec.columns.clone(), link }.cursor());
            }
            (None, None) => {
                return Err(ConnectorError::new(
                    ErrorKind::Unsupported,
                    format!(
                        "entity set {} does not track changes (its answer to Prefer: odata.track-changes has no delta link); \
                         turn on Track changes for the table (Power Apps: Table settings > Advanced options), then start the map again",
                        set.name
                    ),
                ))
            }
        }
    }
}

/// The changes after the cursor: one page of the delta (`limit` asked as its size).
pub fn read(shared: &Shared, table: &str, after: &Cursor, limit: usize) -> Result<(Vec<Change>, Cursor), ConnectorError> {
    let mut at = Position::parse(after)?;
    let set = shared.set(table)?;
    let (body, now) = get(shared, &at.link, limit.max(1))?;
    let page = parse_page(&set, &at.columns, shared.app.changed.as_deref(), &body, now)?;
    let Some(next) = page.next else {
        return Err(ConnectorError::new(
            ErrorKind::Database,
            format!("the delta answer for {} has neither a next link nor a delta link; nothing was read from it", set.name),
        ));
    };
    at.link = relative(shared, &next)?;
    Ok((page.changes, at.cursor()))
}

/// Changes waiting after the cursor, counted over at most `COUNT_PAGES` pages.
pub fn pending(shared: &Shared, after: &Cursor) -> Result<u64, ConnectorError> {
    let mut link = Position::parse(after)?.link;
    let mut count = 0u64;
    for _ in 0..COUNT_PAGES {
        let (body, _) = get(shared, &link, shared.app.page_size)?;
        count += body["value"].as_array().map_or(0, |v| v.len() as u64);
        match body["@odata.nextLink"].as_str() {
            Some(next) => link = relative(shared, next)?,
            None => break,
        }
    }
    Ok(count)
}

/// Whether the cursor is one of change tracking.
pub fn owns(cursor: &Cursor) -> bool {
    cursor.0.starts_with(PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::odata::metadata::Metadata;

    fn accounts() -> std::sync::Arc<EntitySet> {
        let csdl = r#"<edmx:Edmx Version="4.0" xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx"><edmx:DataServices>
<Schema Namespace="Microsoft.Dynamics.CRM" Alias="mscrm" xmlns="http://docs.oasis-open.org/odata/ns/edm">
  <EntityType Name="account"><Key><PropertyRef Name="accountid"/></Key>
    <Property Name="accountid" Type="Edm.Guid"/><Property Name="name" Type="Edm.String"/>
    <Property Name="accountnumber" Type="Edm.String"/><Property Name="telephone1" Type="Edm.String"/>
    <Property Name="fax" Type="Edm.String"/><Property Name="modifiedon" Type="Edm.DateTimeOffset"/></EntityType>
  <EntityContainer Name="System"><EntitySet Name="accounts" EntityType="Microsoft.Dynamics.CRM.account"/></EntityContainer>
</Schema></edmx:DataServices></edmx:Edmx>"#;
        Metadata::parse(csdl).unwrap().sets["accounts"].clone()
    }

    /// The delta answer of Dataverse's documentation ("Use change tracking to
    /// synchronize data with external systems"): one changed account, one
    /// deleted, and the next delta link.
    const DOCUMENTED: &str = r#"{
  "@odata.context": "https://org.crm.dynamics.com/api/data/v9.2/$metadata#accounts(name,accountnumber,telephone1,fax)/$delta",
  "@odata.deltaLink": "https://org.crm.dynamics.com/api/data/v9.2/accounts?$select=name,accountnumber,telephone1,fax&$deltatoken=919058%2108%2f22%2f2017%2008%3a21%3a20",
  "value": [
    {"@odata.etag": "W/\"915244\"", "name": "Monte Orton", "accountnumber": null, "telephone1": "555-0122", "fax": null,
     "accountid": "60c4e274-0d87-e711-80e5-00155db19e6d"},
    {"@odata.context": "https://org.crm.dynamics.com/api/data/v9.2/$metadata#accounts/$deletedEntity",
     "id": "2e451910-d587-e711-80e5-00155db19e6d", "reason": "deleted"}
  ]
}"#;

    fn text(s: &str) -> Value {
        Value::Text(s.into())
    }

    #[test]
    fn dataverse_s_documented_delta_gives_a_change_a_delete_and_the_next_link() {
        let set = accounts();
        let key = vec!["accountid".to_string()];
        let page = parse_page(&set, &key, None, &serde_json::from_str(DOCUMENTED).unwrap(), 7).unwrap();
        assert_eq!(
            page.changes,
            vec![
                Change { values: vec![text("60c4e274-0d87-e711-80e5-00155db19e6d")], kind: ChangeKind::Update, at_micros: 7 },
                Change { values: vec![text("2e451910-d587-e711-80e5-00155db19e6d")], kind: ChangeKind::Delete, at_micros: 7 },
            ]
        );
        assert!(page.at_end);
        assert!(page.next.unwrap().ends_with("$deltatoken=919058%2108%2f22%2f2017%2008%3a21%3a20"));
    }

    #[test]
    fn a_paged_delta_goes_on_by_its_next_link_and_takes_the_change_time() {
        let set = accounts();
        let body = json!({
            "@odata.nextLink": "https://org.crm.dynamics.com/api/data/v9.2/accounts?$skiptoken=abc",
            "value": [{"accountid": "a1", "accountnumber": "N-1", "modifiedon": "2024-05-01T10:00:00Z"}]
        });
        let columns = vec!["accountnumber".to_string()];
        let page = parse_page(&set, &columns, Some("modifiedon"), &body, 7).unwrap();
        assert_eq!(page.changes, vec![Change { values: vec![text("N-1")], kind: ChangeKind::Update, at_micros: 1_714_557_600_000_000 }]);
        assert_eq!(
            (page.next.as_deref(), page.at_end),
            (Some("https://org.crm.dynamics.com/api/data/v9.2/accounts?$skiptoken=abc"), false)
        );
    }

    /// A map keyed on other columns than the entity key cannot name a deleted
    /// row from its id: the delete is left to the key scan, never guessed.
    #[test]
    fn deletes_are_read_from_every_documented_form_or_left_to_the_key_scan() {
        let set = accounts();
        let key = vec!["accountid".to_string()];
        let forms = [
            json!({"@odata.context": "$metadata#accounts/$deletedEntity", "id": "accounts(9b2c7ef4-0000-0000-0000-000000000001)", "reason": "deleted"}),
            json!({"@odata.context": "x/$metadata#accounts/$deletedEntity", "id": "https://h/svc/accounts('9b2c7ef4-0000-0000-0000-000000000001')"}),
            json!({"@removed": {"reason": "deleted"}, "accountid": "9b2c7ef4-0000-0000-0000-000000000001"}),
        ];
        for form in forms {
            let page = parse_page(&set, &key, None, &json!({"value": [form.clone()], "@odata.deltaLink": "d"}), 1).unwrap();
            assert_eq!(page.changes.len(), 1, "{form}");
            assert_eq!(page.changes[0].kind, ChangeKind::Delete);
            assert_eq!(page.changes[0].values, [text("9b2c7ef4-0000-0000-0000-000000000001")], "{form}");
        }
        let by_number = vec!["accountnumber".to_string()];
        let deleted = json!({"value": [{"@odata.context": "$metadata#accounts/$deletedEntity", "id": "a1", "reason": "deleted"}]});
        assert!(parse_page(&set, &by_number, None, &deleted, 1).unwrap().changes.is_empty());
    }

    #[test]
    fn an_answer_that_is_no_delta_is_an_error_naming_the_set() {
        let set = accounts();
        let e = parse_page(&set, &["accountid".into()], None, &json!({"error": {"message": "x"}}), 1).unwrap_err();
        assert!(e.message.contains("accounts"), "{e}");
        // An entity without a captured column (not selected by the delta link) is an error, not a NULL.
        let e = parse_page(&set, &["name".into()], None, &json!({"value": [{"accountid": "a"}]}), 1).unwrap_err();
        assert!(e.message.contains("name"), "{e}");
    }

    #[test]
    fn cursors_round_trip_and_foreign_ones_are_refused() {
        let at = Position { table: "accounts".into(), columns: vec!["accountid".into()], link: "accounts?$deltatoken=1%212".into() };
        assert!(owns(&at.cursor()));
        let back = Position::parse(&at.cursor()).unwrap();
        assert_eq!((back.table, back.columns, back.link), (at.table, at.columns, at.link));
        assert!(Position::parse(&Cursor("odata:{}".into())).is_err());
    }
}
