//! Which maps this process applies live, when it shares a PostgreSQL store
//! with other workers: a unit per group of maps linked by lookups (so that
//! a group keeps its lookup order in one process), each group held by one
//! worker, and every worker holding its fair share of the groups.

use crate::EngineError;
use dualsync_model::Config;
use dualsync_state::{StateStore, Unit, Worker};
use std::collections::HashMap;
use std::time::Instant;

pub(crate) struct LiveUnits {
    worker: Worker,
    /// The groups of lookup-linked maps, each in lookup order.
    groups: Vec<Vec<String>>,
    /// The unit of each map this worker applies now.
    held: HashMap<String, Unit>,
    balanced_at: Option<Instant>,
    /// Take every free group at once (a one-off catch-up) rather than a share.
    all: bool,
}

impl LiveUnits {
    /// `order` is every map in lookup order.
    pub fn new(worker: Worker, config: &Config, order: &[String], all: bool) -> LiveUnits {
        LiveUnits { worker, groups: groups(config, order), held: HashMap::new(), balanced_at: None, all }
    }

    /// Takes (or hands back) groups to hold this worker's share of those with
    /// a started map, a third of a lease after the last time at most.
    /// Returns the maps it no longer holds.
    pub fn balance(&mut self, store: &StateStore, started: &[String]) -> Result<Vec<String>, EngineError> {
        if self.balanced_at.is_some_and(|at| at.elapsed() < self.worker.ttl / 3) {
            return Ok(Vec::new());
        }
        let before: Vec<String> = self.held.keys().cloned().collect();
        let wanted: Vec<String> = self.groups.iter().filter(|g| g.iter().any(|m| started.contains(m))).map(|g| g.join(", ")).collect();
        let units = store.balance_live_units(&self.worker, &wanted, self.all)?;
        self.held = units.into_iter().flat_map(|u| u.step.split(", ").map(|m| (m.to_string(), u.clone())).collect::<Vec<_>>()).collect();
        self.balanced_at = Some(Instant::now());
        Ok(before.into_iter().filter(|m| !self.held.contains_key(m)).collect())
    }

    /// The unit under which this worker applies `map`, if it holds it.
    pub fn unit_of(&self, map: &str) -> Option<&Unit> {
        self.held.get(map)
    }

    /// Forgets a unit another worker took over; the next balance says what
    /// is held. Returns the maps of the unit.
    pub fn lost(&mut self, map: &str) -> Vec<String> {
        let mut gone = Vec::new();
        if let Some(unit) = self.held.get(map).cloned() {
            gone = self.held.iter().filter(|(_, u)| u.id == unit.id).map(|(m, _)| m.clone()).collect();
            self.held.retain(|_, u| u.id != unit.id);
        }
        self.balanced_at = None;
        gone
    }

    /// Hands every held unit back (the end of a one-off catch-up).
    pub fn release(&mut self, store: &StateStore) -> Result<(), EngineError> {
        let mut units: Vec<Unit> = self.held.drain().map(|(_, u)| u).collect();
        units.dedup_by_key(|u| u.id);
        store.release_units(&self.worker, &units)?;
        Ok(())
    }
}

/// The groups of maps linked by lookups (either way), each in `order`.
fn groups(config: &Config, order: &[String]) -> Vec<Vec<String>> {
    let mut group_of: HashMap<&str, usize> = order.iter().enumerate().map(|(i, m)| (m.as_str(), i)).collect();
    // Union by relabelling: few maps, so the simple way is clear enough.
    for map in &config.maps {
        for target in map.lookups() {
            let (Some(&a), Some(&b)) = (group_of.get(map.name.as_str()), group_of.get(target)) else { continue };
            if a != b {
                for g in group_of.values_mut() {
                    if *g == b {
                        *g = a;
                    }
                }
            }
        }
    }
    let mut groups: Vec<(usize, Vec<String>)> = Vec::new();
    for map in order {
        let g = group_of[map.as_str()];
        match groups.iter_mut().find(|(id, _)| *id == g) {
            Some((_, maps)) => maps.push(map.clone()),
            None => groups.push((g, vec![map.clone()])),
        }
    }
    groups.into_iter().map(|(_, maps)| maps).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn maps_linked_by_lookups_either_way_form_one_group_in_lookup_order() {
        let mut text = String::from("[apps.a]\nurl = \"sqlite://a.db\"\n[apps.b]\nurl = \"sqlite://b.db\"\n");
        for (name, lookup) in [("orders", Some("customers")), ("customers", Some("groups")), ("groups", None), ("currencies", None)] {
            text.push_str(&format!(
                "[[maps]]\nname = \"{name}\"\n[maps.a]\ntable = \"{name}\"\nkey = \"k\"\n[maps.b]\ntable = \"{name}\"\nkey = \"k\"\n\
                 [[maps.columns]]\na = \"k\"\nb = \"k\"\n"
            ));
            if let Some(target) = lookup {
                text.push_str(&format!("[[maps.columns]]\na = \"r\"\nb = \"r\"\nlookup = \"{target}\"\n"));
            }
        }
        let config = dualsync_model::config::parse_config(&text, Path::new("/x/dualsync.toml")).unwrap();
        let order: Vec<String> = ["groups", "currencies", "customers", "orders"].map(String::from).to_vec();
        assert_eq!(groups(&config, &order), vec![vec!["groups", "customers", "orders"], vec!["currencies"]]);
    }
}
