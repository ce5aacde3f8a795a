//! A map compiled for the engine: the column lists each side reads and writes,
//! value translations, and where each lookup resolves.
//!
//! The *common form* of a row is the map's columns in mapping order, with
//! translated values spelled as app 0 spells them and lookups holding the
//! referenced row's key (never an app's internal id).

use crate::side::Side;
use dualsync_model::config::{ConflictPolicy, Direction, IdDefault, MapConfig, OnDelete, Threading, DEFAULT_BATCH_SIZE};
use dualsync_model::{Config, Filter, Value};
use std::collections::HashMap;

#[derive(Clone, Debug)]
pub struct MapShape {
    pub name: String,
    pub apps: [String; 2],
    pub tables: [String; 2],
    /// Mapped column names per side, in mapping order.
    pub columns: [Vec<String>; 2],
    pub key_positions: Vec<usize>,
    /// Key column names per side, in the common key order.
    pub key_columns: [Vec<String>; 2],
    pub company: [Option<String>; 2],
    /// Where a side's company column holds ids of the companies map's rows.
    pub company_lookup: [Option<CompanyLookup>; 2],
    pub id: [Option<(String, Option<IdDefault>)>; 2],
    pub filter: [Option<Filter>; 2],
    pub directions: Vec<Direction>,
    pub translations: Vec<Option<Translation>>,
    /// Per column: `redact = true` (see `redact.rs`).
    pub redacted: Vec<bool>,
    pub lookups: Vec<Option<LookupTarget>>,
    pub master: Side,
    /// How a key changed in both apps since its merge base is settled, and whether deletes flow.
    pub conflict: ConflictPolicy,
    pub on_delete: OnDelete,
    /// The mass-delete guard of a full diff (`MapConfig::max_delete_percent`).
    pub max_delete_percent: u8,
    pub threading: Threading,
    pub workers: usize,
    /// A cycle's first pass: the positions (in the whole map) of the lookup
    /// columns it leaves out, and the whole map's width. Empty otherwise.
    pub deferred: Vec<usize>,
    pub full_width: usize,
    /// Rows per read batch.
    pub batch_size: usize,
    /// Rows per write transaction into each side (see `with_write_batches`).
    pub write_batch: [usize; 2],
}

/// `values = { Net30 = "1" }`: app 0's spelling ↔ app 1's spelling.
#[derive(Clone, Debug, Default)]
pub struct Translation {
    to_side1: HashMap<String, String>,
    to_side0: HashMap<String, String>,
    /// App 0's values in config order, for messages.
    listing: String,
}

impl Translation {
    /// App `side`'s value in common form. A value without an entry stays as it
    /// is; writing it to the other app is then refused (see [`Translation::to_side`]).
    pub fn to_common(&self, side: Side, v: Value) -> Value {
        if side == Side::A || v.is_null() {
            return v;
        }
        match self.to_side0.get(v.display().as_ref()) {
            Some(s) => Value::Text(s.clone()),
            None => v,
        }
    }

    /// The common value as app `side` spells it, or why it cannot be.
    pub fn to_side(&self, side: Side, v: &Value) -> Result<Value, String> {
        if v.is_null() {
            return Ok(Value::Null);
        }
        let shown = v.display();
        match (side, self.to_side1.get(shown.as_ref())) {
            (Side::A, Some(_)) => Ok(v.clone()),
            (Side::B, Some(s)) => Ok(Value::Text(s.clone())),
            _ => Err(format!("value {shown:?} has no entry in the column's values ({}); add it to values in the config", self.listing)),
        }
    }
}

/// A side's companies table, when its company column holds the company row's id.
#[derive(Clone, Debug)]
pub struct CompanyLookup {
    pub map: String,
    pub table: String,
    pub key_column: String,
    pub id_column: String,
}

/// Where a lookup column's values point: the referenced map's table on each side.
#[derive(Clone, Debug)]
pub struct LookupTarget {
    pub map: String,
    pub tables: [String; 2],
    pub key_column: [String; 2],
    /// Where a side stores the referenced row's id instead of its key.
    pub id_column: [Option<String>; 2],
    /// The referenced table's company column, or None for a global map.
    pub company: [Option<String>; 2],
    /// Whether that company column holds the company row's id (a company lookup) rather than its code.
    pub company_is_id: [bool; 2],
    pub filter: [Option<Filter>; 2],
}

impl MapShape {
    pub fn new(map: &MapConfig, config: &Config) -> MapShape {
        let side = |s: usize| &map.sides[s];
        let key_positions = map.key_positions();
        let names = |s: usize| map.columns.iter().map(|c| c.names[s].clone()).collect::<Vec<_>>();
        let key_columns = |s: usize| key_positions.iter().map(|&p| map.columns[p].names[s].clone()).collect::<Vec<_>>();
        let translations = map
            .columns
            .iter()
            .map(|c| {
                (!c.values.is_empty()).then(|| Translation {
                    to_side1: c.values.iter().cloned().collect(),
                    to_side0: c.values.iter().map(|(a, b)| (b.clone(), a.clone())).collect(),
                    listing: c.values.iter().map(|(a, _)| a.as_str()).collect::<Vec<_>>().join(", "),
                })
            })
            .collect();
        let lookups = map
            .columns
            .iter()
            .map(|c| {
                let r = config.map(c.lookup.as_deref()?)?;
                // The referenced map may list the two apps in the other order.
                let rs = |s: usize| &r.sides[r.side_of_app(map.app(s)).expect("validated: same apps")];
                let key_col = |s: usize| {
                    let k = &r.sides[0].key[0];
                    let pos = r.columns.iter().position(|c| &c.names[0] == k).expect("validated: key mapped");
                    r.columns[pos].names[r.side_of_app(map.app(s)).unwrap()].clone()
                };
                Some(LookupTarget {
                    map: r.name.clone(),
                    tables: [rs(0).table.clone(), rs(1).table.clone()],
                    key_column: [key_col(0), key_col(1)],
                    id_column: [rs(0).id.clone(), rs(1).id.clone()],
                    company: if r.is_global() { [None, None] } else { [rs(0).company.clone(), rs(1).company.clone()] },
                    company_is_id: [0, 1].map(|s| company_lookup(config, &rs(s).app, rs(s).company_lookup.as_deref()).is_some()),
                    filter: [rs(0).filter.clone(), rs(1).filter.clone()],
                })
            })
            .collect();
        MapShape {
            name: map.name.clone(),
            apps: [side(0).app.clone(), side(1).app.clone()],
            tables: [side(0).table.clone(), side(1).table.clone()],
            columns: [names(0), names(1)],
            key_columns: [key_columns(0), key_columns(1)],
            key_positions,
            company: [side(0).company.clone(), side(1).company.clone()],
            company_lookup: [0, 1].map(|s| company_lookup(config, &side(s).app, side(s).company_lookup.as_deref())),
            id: [0, 1].map(|s| side(s).id.clone().map(|i| (i, side(s).id_default))),
            filter: [side(0).filter.clone(), side(1).filter.clone()],
            directions: map.columns.iter().map(|c| c.direction).collect(),
            translations,
            redacted: map.columns.iter().map(|c| c.redact).collect(),
            lookups,
            master: Side::of(map.master),
            conflict: map.conflict,
            on_delete: map.on_delete,
            max_delete_percent: map.max_delete_percent,
            threading: map.threading,
            workers: if map.threading == Threading::Single { 1 } else { map.workers },
            deferred: Vec::new(),
            full_width: map.columns.len(),
            batch_size: map.batch_size.unwrap_or(DEFAULT_BATCH_SIZE),
            write_batch: [map.batch_size.unwrap_or(DEFAULT_BATCH_SIZE); 2],
        }
    }

    /// The shape of one step of a run: a cycle's first pass leaves its
    /// deferred lookup columns out (see `order.rs`).
    pub fn of_step(step: &crate::order::Step, config: &Config) -> (MapConfig, MapShape) {
        let whole = config.map(&step.map).expect("ordered maps exist");
        let map = step.map_config(config);
        let mut shape = MapShape::new(&map, config);
        shape.deferred = whole.columns.iter().enumerate().filter(|(_, c)| step.deferred.contains(&c.names[0])).map(|(i, _)| i).collect();
        shape.full_width = whole.columns.len();
        (map, shape)
    }

    /// A cycle's first pass, which only creates the rows one app lacks (see `sync/join.rs`).
    pub fn is_first_pass(&self) -> bool {
        !self.deferred.is_empty()
    }

    /// The merge base of a row a first pass inserted, widened to the whole
    /// map: a left-out lookup column gets the hash of NULL, the placeholder
    /// the new row holds there, so that the second pass takes the source
    /// app's reference as the change it is and writes it.
    pub fn whole_base(&self, pass: Vec<u8>) -> Vec<u8> {
        if self.deferred.is_empty() {
            return pass;
        }
        let null = dualsync_model::column_hashes(&[Value::Null]);
        let mut columns = pass.chunks(8);
        let mut whole = Vec::with_capacity(self.full_width * 8);
        for c in 0..self.full_width {
            match self.deferred.contains(&c) {
                true => whole.extend_from_slice(&null),
                false => whole.extend_from_slice(columns.next().unwrap_or(&null)),
            }
        }
        whole
    }

    /// Write transactions sized for each target database (a server commits
    /// fewer, larger batches faster), unless the map sets `batch_size`.
    pub fn with_write_batches(mut self, map: &MapConfig, apps: &crate::Apps) -> MapShape {
        if map.batch_size.is_none() {
            self.write_batch = Side::BOTH.map(|s| apps.connector(&self.apps[s]).write_batch_size());
        }
        self
    }

    /// A write the decision refused before any database saw it (`Decision::refused`),
    /// as the error log keeps it.
    pub fn refused_error(&self, company: &str, key: String, refusal: &crate::decide::Refusal) -> dualsync_state::NewError {
        let source = refusal.target.other();
        dualsync_state::NewError {
            map: self.name.clone(),
            company: company.to_string(),
            source_app: self.apps[source].clone(),
            target_app: self.apps[refusal.target].clone(),
            key,
            column: Some(self.columns[source][refusal.column].clone()),
            value: None,
            message: refusal.why.clone(),
        }
    }

    /// A conflict of the merge, as the conflict queue keeps it.
    pub fn conflict_record(&self, company: &str, key: String, c: &crate::merge::Conflict) -> dualsync_state::NewConflict {
        let row_json = |values: &Vec<Value>| self.redact_row_json(values).to_string();
        dualsync_state::NewConflict {
            map: self.name.clone(),
            company: company.to_string(),
            key,
            columns: c.columns.iter().map(|&i| self.columns[self.master][i].clone()).collect(),
            values: Side::BOTH.map(|s| c.rows[s].as_ref().map(row_json)),
            policy: format!("{:?}", self.conflict).to_lowercase(),
            resolution: c.resolution.clone(),
        }
    }

    /// The key of a row in common form, as owned values.
    pub fn key_values(&self, values: &[Value]) -> Vec<Value> {
        self.key_positions.iter().map(|&p| values[p].clone()).collect()
    }

    /// Compares two rows (common form) by key, as the databases sort them.
    pub fn key_order(&self, a: &[Value], b: &[Value]) -> std::cmp::Ordering {
        for &p in &self.key_positions {
            let o = a[p].key_cmp(&b[p]);
            if o.is_ne() {
                return o;
            }
        }
        std::cmp::Ordering::Equal
    }

    pub fn rules(&self) -> crate::Rules {
        crate::Rules { directions: self.directions.clone(), master: self.master, key_positions: self.key_positions.clone() }
    }

    /// The rules of the three-way merge against a key's merge base.
    pub fn merge_rules(&self) -> crate::merge::MergeRules {
        crate::merge::MergeRules { rules: self.rules(), policy: self.conflict, on_delete: self.on_delete, apps: self.apps.clone() }
    }
}

/// The companies table of `app` when a company column refers to map `name`'s rows by id.
fn company_lookup(config: &Config, app: &str, name: Option<&str>) -> Option<CompanyLookup> {
    let map = config.map(name?)?;
    let side = &map.sides[map.side_of_app(app)?];
    Some(CompanyLookup { map: map.name.clone(), table: side.table.clone(), key_column: side.key[0].clone(), id_column: side.id.clone()? })
}
