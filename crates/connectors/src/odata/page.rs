//! One page of a read, parsed straight into rows: each entity's selected
//! properties land in their column's place as they are read, with no map of
//! the entity built first. Reading is the hot path of an initial sync, and
//! the JSON is most of its cost.

use super::metadata::{EntitySet, Property};
use super::values::from_json_value;
use dualsync_model::Value;
use serde::de::{DeserializeSeed, Error as _, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserializer;
use serde_json::Value as Json;
use std::fmt;

/// A page's entities as rows of `fields`' values, in that order.
#[derive(Debug, Default)]
pub struct Page {
    pub rows: Vec<Vec<Value>>,
    /// Each row's `@odata.etag`, where the service sent one.
    pub etags: Vec<Option<String>>,
    /// Whether the service said more follow (`@odata.nextLink`).
    pub more: bool,
    /// A field some entity left out (a stream property is never in an answer): its index.
    pub missing: Option<usize>,
}

/// Parses an answer of `set`'s entities into rows of `fields` (each row with
/// room for `spare` more values).
pub fn parse(body: &[u8], set: &EntitySet, fields: &[String], spare: usize) -> Result<Page, String> {
    let properties: Vec<&Property> =
        fields.iter().map(|f| set.property(f).ok_or_else(|| format!("no property {f}"))).collect::<Result<_, _>>()?;
    // A field asked for twice (a key that is also a column) fills each of its places.
    let also: Vec<Vec<usize>> =
        fields.iter().enumerate().map(|(i, f)| (i + 1..fields.len()).filter(|&j| fields[j] == *f).collect()).collect();
    let mut de = serde_json::Deserializer::from_slice(body);
    let page = PageSeed { fields, properties: &properties, also: &also, spare }.deserialize(&mut de).map_err(|e| e.to_string())?;
    de.end().map_err(|e| e.to_string())?;
    Ok(page)
}

struct PageSeed<'a> {
    fields: &'a [String],
    properties: &'a [&'a Property],
    /// For each field, the later places of the same name.
    also: &'a [Vec<usize>],
    spare: usize,
}

impl<'de> DeserializeSeed<'de> for PageSeed<'_> {
    type Value = Page;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Page, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for PageSeed<'_> {
    type Value = Page;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an OData answer (an object with a \"value\" list)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Page, A::Error> {
        let mut page = Page::default();
        let mut listed = false;
        while let Some(key) = map.next_key_seed(Name(&[]))? {
            match key {
                Field::Value => {
                    map.next_value_seed(Rows { seed: &self, page: &mut page })?;
                    listed = true;
                }
                Field::NextLink => {
                    map.next_value::<IgnoredAny>()?;
                    page.more = true;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        if !listed {
            return Err(A::Error::custom("the answer holds no \"value\" list"));
        }
        Ok(page)
    }
}

/// What a key of an answer's object names.
enum Field {
    Column(usize),
    Etag,
    Value,
    NextLink,
    Other,
}

/// Names keys without allocating: the columns' names, or the annotations read.
struct Name<'a>(&'a [String]);

impl<'de> DeserializeSeed<'de> for Name<'_> {
    type Value = Field;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Field, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Name<'_> {
    type Value = Field;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a property name")
    }

    fn visit_str<E: serde::de::Error>(self, name: &str) -> Result<Field, E> {
        Ok(match name {
            "@odata.etag" => Field::Etag,
            "value" if self.0.is_empty() => Field::Value,
            "@odata.nextLink" if self.0.is_empty() => Field::NextLink,
            _ => self.0.iter().position(|f| f == name).map_or(Field::Other, Field::Column),
        })
    }
}

struct Rows<'s, 'p> {
    seed: &'s PageSeed<'s>,
    page: &'p mut Page,
}

impl<'de> DeserializeSeed<'de> for Rows<'_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Rows<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of entities")
    }

    fn visit_seq<S: SeqAccess<'de>>(self, mut seq: S) -> Result<(), S::Error> {
        while let Some((row, etag, missing)) = seq.next_element_seed(Entity(self.seed))? {
            self.page.rows.push(row);
            self.page.etags.push(etag);
            if self.page.missing.is_none() {
                self.page.missing = missing;
            }
        }
        Ok(())
    }
}

/// One entity: its fields' values in order, its ETag, and the first field it left out.
struct Entity<'s>(&'s PageSeed<'s>);

impl<'de> DeserializeSeed<'de> for Entity<'_> {
    type Value = (Vec<Value>, Option<String>, Option<usize>);
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Entity<'_> {
    type Value = (Vec<Value>, Option<String>, Option<usize>);
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an entity (an object)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let fields = self.0.fields;
        let mut slots: Vec<Option<Value>> = vec![None; fields.len()];
        let mut etag = None;
        while let Some(key) = map.next_key_seed(Name(fields))? {
            match key {
                Field::Column(i) => {
                    let json: Json = map.next_value()?;
                    let value = from_json_value(self.0.properties[i], json);
                    for &j in &self.0.also[i] {
                        slots[j] = Some(value.clone());
                    }
                    slots[i] = Some(value);
                }
                Field::Etag => etag = map.next_value::<Option<String>>()?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        let missing = slots.iter().position(Option::is_none);
        let mut row = Vec::with_capacity(fields.len() + self.0.spare);
        row.extend(slots.into_iter().map(|v| v.unwrap_or(Value::Null)));
        Ok((row, etag, missing))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::odata::metadata::Metadata;

    fn set() -> std::sync::Arc<EntitySet> {
        let csdl = r#"<edmx:Edmx Version="4.0" xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx"><edmx:DataServices>
<Schema Namespace="S" xmlns="http://docs.oasis-open.org/odata/ns/edm">
  <EntityType Name="Item"><Key><PropertyRef Name="k"/></Key><Property Name="k" Type="Edm.String"/>
    <Property Name="n" Type="Edm.Int64"/><Property Name="d" Type="Edm.Decimal"/><Property Name="t" Type="Edm.String"/></EntityType>
  <EntityContainer Name="C"><EntitySet Name="Item" EntityType="S.Item"/></EntityContainer>
</Schema></edmx:DataServices></edmx:Edmx>"#;
        Metadata::parse(csdl).unwrap().sets["Item"].clone()
    }

    #[test]
    fn rows_come_in_field_order_with_etags_exact_values_and_the_next_link_seen() {
        let body = br#"{"@odata.context":"$metadata#Item","value":[
            {"@odata.etag":"W/\"1\"","t":"a \"quoted\" \u00e9 \ud83d\ude80","k":"x","n":"9007199254740993","d":12345678901234567890.123456789,"extra":{"a":[1,2]}},
            {"k":"y","n":null,"d":"0.10","t":""}],
            "@odata.nextLink":"Item?$skiptoken=2"}"#;
        let fields: Vec<String> = ["k", "n", "d", "t"].map(String::from).to_vec();
        let page = parse(body, &set(), &fields, 2).unwrap();
        assert!(page.more);
        assert_eq!(page.missing, None);
        assert_eq!(page.etags, [Some("W/\"1\"".to_string()), None]);
        assert_eq!(
            page.rows[0],
            [
                Value::Text("x".into()),
                Value::Int(9007199254740993),
                Value::Decimal("12345678901234567890.123456789".into()),
                Value::Text("a \"quoted\" é 🚀".into())
            ]
        );
        assert_eq!(page.rows[1], [Value::Text("y".into()), Value::Null, Value::Decimal("0.10".into()), Value::Text(String::new())]);
        assert!(page.rows[0].capacity() >= 6, "room for the engine's spare values");
    }

    #[test]
    fn a_field_asked_for_twice_fills_both_places() {
        let fields: Vec<String> = ["k", "t", "k"].map(String::from).to_vec();
        let page = parse(br#"{"value":[{"k":"x","t":"a"}]}"#, &set(), &fields, 0).unwrap();
        assert_eq!(page.missing, None);
        assert_eq!(page.rows[0], [Value::Text("x".into()), Value::Text("a".into()), Value::Text("x".into())]);
    }

    #[test]
    fn a_left_out_field_and_a_bad_answer_are_reported() {
        let fields: Vec<String> = ["k", "t"].map(String::from).to_vec();
        let page = parse(br#"{"value":[{"k":"x","t":"a"},{"k":"y"}]}"#, &set(), &fields, 0).unwrap();
        assert_eq!((page.missing, page.more), (Some(1), false));
        assert!(parse(br#"{"error":{"message":"no"}}"#, &set(), &fields, 0).unwrap_err().contains("no \"value\" list"));
        assert!(parse(br#"{"value":[{"k":"x"}"#, &set(), &fields, 0).is_err());
        assert!(parse(br#"{"value":[]} trailing"#, &set(), &fields, 0).is_err());
    }
}
