//! The service's `$metadata` (CSDL XML), read once per app: its entity sets,
//! their keys and properties with type, nullability, `MaxLength`,
//! `Precision` and `Scale`, and which sets check ETags
//! (`Core.OptimisticConcurrency`) or compute a property themselves (`Core.Computed`),
//! and the alternate keys a type declares (`OData.Community.Keys.V1.AlternateKeys`,
//! as Dataverse does), by which an entity can be addressed in the URL.

use dualsync_model::schema::{ColumnInfo, TableSchema, TypeClass};
use quick_xml::events::{BytesStart, Event};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

#[derive(Clone, Debug)]
pub struct Property {
    pub name: String,
    /// `Edm.String`, `Edm.Decimal`, …
    pub edm: String,
    pub nullable: bool,
    pub max_length: Option<usize>,
    pub precision: Option<u32>,
    pub scale: Option<String>,
    /// Set by the service (a timestamp it stamps, an id it makes).
    pub computed: bool,
}

#[derive(Clone, Debug)]
pub struct EntitySet {
    pub name: String,
    pub key: Vec<String>,
    pub properties: Vec<Property>,
    /// Whether writes carry `If-Match` (the set declares optimistic concurrency).
    pub etag: bool,
    /// Other column lists that identify an entity (`accounts(accountnumber='A-1')`).
    pub alternate_keys: Vec<Vec<String>>,
}

impl EntitySet {
    pub fn property(&self, name: &str) -> Option<&Property> {
        self.properties.iter().find(|p| p.name == name)
    }

    /// The declared alternate key made of exactly `columns` (in any order), in its declared order.
    pub fn alternate_key(&self, columns: &[String]) -> Option<&[String]> {
        self.alternate_keys.iter().find(|k| k.len() == columns.len() && k.iter().all(|c| columns.contains(c))).map(Vec::as_slice)
    }

    pub fn schema(&self) -> TableSchema {
        TableSchema {
            name: self.name.clone(),
            columns: self
                .properties
                .iter()
                .map(|p| ColumnInfo {
                    name: p.name.clone(),
                    declared_type: p.declared(),
                    class: class_of(&p.edm),
                    nullable: p.nullable,
                    has_default: p.computed,
                })
                .collect(),
            primary_key: self.key.clone(),
            unique_keys: Vec::new(),
        }
    }
}

impl Property {
    /// `Edm.String(100)`, `Edm.Decimal(14,2)`: as `check` shows it.
    pub fn declared(&self) -> String {
        match (self.max_length, self.precision, &self.scale) {
            (Some(n), _, _) => format!("{}({n})", self.edm),
            (None, Some(p), Some(s)) => format!("{}({p},{s})", self.edm),
            (None, Some(p), None) => format!("{}({p})", self.edm),
            _ => self.edm.clone(),
        }
    }
}

pub fn class_of(edm: &str) -> TypeClass {
    match edm {
        "Edm.String" | "Edm.Guid" => TypeClass::Text,
        "Edm.Int16" | "Edm.Int32" | "Edm.Int64" | "Edm.Byte" | "Edm.SByte" => TypeClass::Integer,
        "Edm.Decimal" => TypeClass::Decimal,
        "Edm.Double" | "Edm.Single" => TypeClass::Real,
        "Edm.Boolean" => TypeClass::Bool,
        "Edm.Date" => TypeClass::Date,
        "Edm.TimeOfDay" => TypeClass::Time,
        "Edm.DateTimeOffset" => TypeClass::Timestamp,
        "Edm.Binary" => TypeClass::Blob,
        _ => TypeClass::Any,
    }
}

#[derive(Debug, Default)]
pub struct Metadata {
    /// Shared: each read and write of a set takes it from here without a copy.
    pub sets: HashMap<String, Arc<EntitySet>>,
}

#[derive(Default)]
struct EntityType {
    key: Vec<String>,
    properties: Vec<Property>,
    base: Option<String>,
    alternate_keys: Vec<Vec<String>>,
}

impl Metadata {
    pub fn parse(xml: &str) -> Result<Metadata, String> {
        let mut reader = quick_xml::Reader::from_str(xml);
        let mut types: HashMap<String, EntityType> = HashMap::new();
        let mut sets: Vec<(String, String)> = Vec::new();
        let mut aliases: HashMap<String, String> = HashMap::new();
        let mut etag_sets: HashSet<String> = HashSet::new();
        let mut computed: HashSet<String> = HashSet::new();
        let (mut namespace, mut current_type, mut current_set) = (String::new(), None::<String>, None::<String>);
        let mut in_key = false;
        let mut current_property: Option<String> = None;
        let mut annotations_target: Option<String> = None;
        // The type whose AlternateKeys annotation is being read.
        let mut alternate_keys_of: Option<String> = None;
        loop {
            let event = reader.read_event().map_err(|e| format!("$metadata is not valid XML at byte {}: {e}", reader.buffer_position()))?;
            let (start, empty) = match &event {
                Event::Start(e) => (Some(e), false),
                Event::Empty(e) => (Some(e), true),
                Event::End(e) => {
                    match e.local_name().into_inner() {
                        "EntityType" => current_type = None,
                        "EntitySet" => current_set = None,
                        "Key" => in_key = false,
                        "Property" => current_property = None,
                        "Annotations" => annotations_target = None,
                        "Annotation" => alternate_keys_of = None,
                        _ => {}
                    }
                    continue;
                }
                Event::Eof => break,
                _ => continue,
            };
            let Some(e) = start else { continue };
            match e.local_name().into_inner() {
                "Schema" => {
                    namespace = attr(e, "Namespace").unwrap_or_default();
                    if let Some(alias) = attr(e, "Alias") {
                        aliases.insert(alias, namespace.clone());
                    }
                }
                "EntityType" => {
                    let name = format!("{namespace}.{}", attr(e, "Name").unwrap_or_default());
                    types.entry(name.clone()).or_default().base = attr(e, "BaseType");
                    current_type = (!empty).then_some(name);
                }
                "Key" => in_key = true,
                "PropertyRef" if in_key => {
                    if let (Some(t), Some(name)) = (&current_type, attr(e, "Name")) {
                        types.entry(t.clone()).or_default().key.push(name);
                    }
                }
                "Property" => {
                    let Some(t) = &current_type else { continue };
                    let name = attr(e, "Name").unwrap_or_default();
                    let p = Property {
                        name: name.clone(),
                        edm: attr(e, "Type").unwrap_or_default(),
                        nullable: attr(e, "Nullable").as_deref() != Some("false"),
                        max_length: attr(e, "MaxLength").and_then(|v| v.parse().ok()),
                        precision: attr(e, "Precision").and_then(|v| v.parse().ok()),
                        scale: attr(e, "Scale"),
                        computed: false,
                    };
                    types.entry(t.clone()).or_default().properties.push(p);
                    if !empty {
                        current_property = Some(format!("{t}/{name}"));
                    }
                }
                "EntitySet" => {
                    let name = attr(e, "Name").unwrap_or_default();
                    sets.push((name.clone(), attr(e, "EntityType").unwrap_or_default()));
                    current_set = (!empty).then_some(name);
                }
                "Annotations" => annotations_target = attr(e, "Target"),
                "Annotation" => {
                    let term = attr(e, "Term").unwrap_or_default();
                    let term = term.rsplit('.').next().unwrap_or("");
                    let on = current_set.clone().or(current_property.clone()).or(annotations_target.clone()).unwrap_or_default();
                    // `Container/Set` or a bare set name; `Ns.Type/property`.
                    match term {
                        "OptimisticConcurrency" => {
                            etag_sets.insert(on.rsplit('/').next().unwrap_or("").to_string());
                        }
                        "Computed" if attr(e, "Bool").as_deref() != Some("false") => {
                            computed.insert(on);
                        }
                        "AlternateKeys" if !empty => {
                            alternate_keys_of = current_type.clone().or(annotations_target.clone().map(|t| resolve_in(&aliases, &t)));
                        }
                        _ => {}
                    }
                }
                // <Record Type="Keys.AlternateKey"> starts a key; its <PropertyValue Property="Name" PropertyPath="…"/> name its columns.
                "Record" if attr(e, "Type").is_some_and(|t| t.ends_with(".AlternateKey")) => {
                    if let Some(t) = &alternate_keys_of {
                        types.entry(t.clone()).or_default().alternate_keys.push(Vec::new());
                    }
                }
                "PropertyValue" if attr(e, "Property").as_deref() == Some("Name") => {
                    if let (Some(t), Some(path)) = (&alternate_keys_of, attr(e, "PropertyPath")) {
                        if let Some(key) = types.entry(t.clone()).or_default().alternate_keys.last_mut() {
                            key.push(path);
                        }
                    }
                }
                _ => {}
            }
        }
        let resolve = |name: &str| resolve_in(&aliases, name);
        let is_computed = |type_name: &str, property: &str| {
            computed.iter().any(|c| c.rsplit_once('/').is_some_and(|(t, p)| p == property && resolve(t) == type_name))
        };
        let mut out = Metadata::default();
        for (set, type_name) in sets {
            let type_name = resolve(&type_name);
            let (mut key, mut properties, mut alternate_keys) = (Vec::new(), Vec::new(), Vec::new());
            // A type's own properties, then its base types' (Dataverse keys sit on the base).
            let mut next = Some(type_name.clone());
            let mut depth = 0;
            while let Some(t) = next.take().filter(|_| depth < 16) {
                let Some(found) = types.get(&t) else { break };
                if key.is_empty() {
                    key = found.key.clone();
                }
                alternate_keys.extend(found.alternate_keys.iter().filter(|k| !k.is_empty()).cloned());
                for p in &found.properties {
                    let mut p = p.clone();
                    p.computed = is_computed(&t, &p.name);
                    properties.push(p);
                }
                next = found.base.as_deref().map(resolve);
                depth += 1;
            }
            if properties.is_empty() {
                continue;
            }
            out.sets
                .insert(set.clone(), Arc::new(EntitySet { etag: etag_sets.contains(&set), name: set, key, properties, alternate_keys }));
        }
        Ok(out)
    }
}

/// A qualified type name with its namespace's alias resolved: `Self.Item` → `S.Item`.
fn resolve_in(aliases: &HashMap<String, String>, name: &str) -> String {
    match name.rsplit_once('.') {
        Some((ns, t)) => format!("{}.{t}", aliases.get(ns).map(String::as_str).unwrap_or(ns)),
        None => name.to_string(),
    }
}

fn attr(e: &BytesStart<'_>, name: &str) -> Option<String> {
    e.attributes()
        .flatten()
        .find(|a| a.key.local_name().into_inner() == name)
        .and_then(|a| a.normalized_value(quick_xml::XmlVersion::Implicit1_0).ok().map(|v| v.into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CSDL: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<edmx:Edmx Version="4.0" xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx">
  <edmx:DataServices>
    <Schema Namespace="S" Alias="Self" xmlns="http://docs.oasis-open.org/odata/ns/edm">
      <EntityContainer Name="EntityContainer">
        <EntitySet Name="Item" EntityType="S.Item"/>
        <EntitySet Name="Line" EntityType="Self.Line">
          <Annotation Term="Core.OptimisticConcurrency"><Collection><PropertyPath>modifiedAt</PropertyPath></Collection></Annotation>
        </EntitySet>
      </EntityContainer>
      <EntityType Name="Item">
        <Key><PropertyRef Name="k"/></Key>
        <Property Name="k" Type="Edm.String" MaxLength="100" Nullable="false"/>
        <Property Name="price" Type="Edm.Decimal" Precision="14" Scale="2"/>
        <Property Name="modifiedAt" Type="Edm.DateTimeOffset" Precision="7"/>
      </EntityType>
      <EntityType Name="Line">
        <Key><PropertyRef Name="order"/><PropertyRef Name="no"/></Key>
        <Property Name="order" Type="Edm.String" Nullable="false"/>
        <Property Name="no" Type="Edm.Int32" Nullable="false"/>
        <Property Name="modifiedAt" Type="Edm.DateTimeOffset"/>
      </EntityType>
      <Annotations Target="S.Item/modifiedAt"><Annotation Term="Core.Computed" Bool="true"/></Annotations>
    </Schema>
  </edmx:DataServices>
</edmx:Edmx>"#;

    #[test]
    fn sets_keys_types_etags_and_computed_properties_are_read() {
        let m = Metadata::parse(CSDL).unwrap();
        let item = &m.sets["Item"];
        assert_eq!(item.key, ["k"]);
        assert!(!item.etag);
        let k = item.property("k").unwrap();
        assert_eq!((k.max_length, k.nullable, k.declared()), (Some(100), false, "Edm.String(100)".to_string()));
        assert_eq!(item.property("price").unwrap().declared(), "Edm.Decimal(14,2)");
        assert!(item.property("modifiedAt").unwrap().computed);
        assert!(!item.property("price").unwrap().computed);
        let line = &m.sets["Line"];
        assert_eq!(line.key, ["order", "no"]);
        assert!(line.etag, "the set's OptimisticConcurrency annotation");
        assert_eq!(line.schema().columns[1].class, TypeClass::Integer);
    }

    /// As Dataverse declares them: a key on the base type, alternate keys as an annotation of the type.
    #[test]
    fn alternate_keys_are_read_as_dataverse_declares_them() {
        let csdl = r#"<edmx:Edmx Version="4.0" xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx"><edmx:DataServices>
<Schema Namespace="Microsoft.Dynamics.CRM" Alias="mscrm" xmlns="http://docs.oasis-open.org/odata/ns/edm">
  <EntityType Name="crmbaseentity" Abstract="true"/>
  <EntityType Name="account" BaseType="mscrm.crmbaseentity">
    <Key><PropertyRef Name="accountid"/></Key>
    <Property Name="accountid" Type="Edm.Guid"/>
    <Property Name="accountnumber" Type="Edm.String" MaxLength="20"/>
    <Property Name="name" Type="Edm.String" MaxLength="160"/>
    <Annotation Term="OData.Community.Keys.V1.AlternateKeys"><Collection>
      <Record Type="OData.Community.Keys.V1.AlternateKey"><PropertyValue Property="Key"><Collection>
        <Record Type="OData.Community.Keys.V1.PropertyRef"><PropertyValue Property="Alias" String="accountnumber"/><PropertyValue Property="Name" PropertyPath="accountnumber"/></Record>
      </Collection></PropertyValue></Record>
    </Collection></Annotation>
  </EntityType>
  <EntityType Name="contact"><Key><PropertyRef Name="contactid"/></Key><Property Name="contactid" Type="Edm.Guid"/>
    <Property Name="a" Type="Edm.String"/><Property Name="b" Type="Edm.Int32"/></EntityType>
  <Annotations Target="mscrm.contact"><Annotation Term="OData.Community.Keys.V1.AlternateKeys"><Collection>
    <Record Type="OData.Community.Keys.V1.AlternateKey"><PropertyValue Property="Key"><Collection>
      <Record Type="OData.Community.Keys.V1.PropertyRef"><PropertyValue Property="Alias" String="a"/><PropertyValue Property="Name" PropertyPath="a"/></Record>
      <Record Type="OData.Community.Keys.V1.PropertyRef"><PropertyValue Property="Alias" String="b"/><PropertyValue Property="Name" PropertyPath="b"/></Record>
    </Collection></PropertyValue></Record>
  </Collection></Annotation></Annotations>
  <EntityContainer Name="System"><EntitySet Name="accounts" EntityType="Microsoft.Dynamics.CRM.account"/>
    <EntitySet Name="contacts" EntityType="mscrm.contact"/></EntityContainer>
</Schema></edmx:DataServices></edmx:Edmx>"#;
        let m = Metadata::parse(csdl).unwrap();
        let accounts = &m.sets["accounts"];
        assert_eq!(accounts.key, ["accountid"]);
        assert_eq!(accounts.alternate_keys, [vec!["accountnumber".to_string()]]);
        assert_eq!(accounts.alternate_key(&["accountnumber".into()]), Some(&["accountnumber".to_string()][..]));
        assert_eq!(accounts.alternate_key(&["name".into()]), None);
        let contacts = &m.sets["contacts"];
        assert_eq!(contacts.alternate_key(&["b".into(), "a".into()]), Some(&["a".to_string(), "b".to_string()][..]));
        assert!(Metadata::parse(CSDL).unwrap().sets["Item"].alternate_keys.is_empty());
    }

    #[test]
    fn bad_xml_is_an_error_with_its_place() {
        assert!(Metadata::parse("<a><b></a>").unwrap_err().contains("not valid XML"));
    }
}
