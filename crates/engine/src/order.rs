//! The order maps run in: a map after the maps its lookups refer to, maps
//! that do not depend on each other side by side, and maps whose lookups form
//! a cycle (or refer to their own map) in two passes: first every row without
//! the cyclic lookup columns, then everything, when the referenced rows exist.

use dualsync_model::config::MapConfig;
use dualsync_model::Config;
use std::collections::HashMap;

/// One map to sync, possibly without some of its lookup columns (pass 1 of a cycle).
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    pub map: String,
    /// Lookup columns left out of this pass, by their name in the map's first app.
    pub deferred: Vec<String>,
}

impl Step {
    /// The map as this step syncs it.
    pub fn map_config(&self, config: &Config) -> MapConfig {
        let mut map = config.map(&self.map).expect("ordered maps exist").clone();
        map.columns.retain(|c| !self.deferred.contains(&c.names[0]));
        map
    }

    pub fn label(&self) -> String {
        if self.deferred.is_empty() {
            self.map.clone()
        } else {
            format!("{} (without {})", self.map, self.deferred.join(", "))
        }
    }
}

/// Stages run one after the other; the steps of a stage may run at the same time.
#[derive(Clone, Debug, PartialEq)]
pub struct RunOrder {
    pub stages: Vec<Vec<Step>>,
}

/// The order of `selected` maps (all maps when empty); lookups to maps that
/// are not selected are taken as already synced.
pub fn run_order(config: &Config, selected: &[String]) -> RunOrder {
    let maps: Vec<&MapConfig> = config.maps.iter().filter(|m| selected.is_empty() || selected.contains(&m.name)).collect();
    let index: HashMap<&str, usize> = maps.iter().enumerate().map(|(i, m)| (m.name.as_str(), i)).collect();
    let edges: Vec<Vec<usize>> = maps.iter().map(|m| m.lookups().filter_map(|l| index.get(l).copied()).collect()).collect();
    let components = strongly_connected(&edges);
    let mut component_of = vec![0; maps.len()];
    for (c, members) in components.iter().enumerate() {
        for &m in members {
            component_of[m] = c;
        }
    }
    // Tarjan yields components with dependencies first: a level is one more than its deepest dependency.
    let mut level = vec![0usize; components.len()];
    for (c, members) in components.iter().enumerate() {
        level[c] = members
            .iter()
            .flat_map(|&m| &edges[m])
            .map(|&d| component_of[d])
            .filter(|&dc| dc != c)
            .map(|dc| level[dc] + 1)
            .max()
            .unwrap_or(0);
    }
    let depth = level.iter().max().map_or(0, |l| l + 1);
    // Each level has two stages: everything that can run (pass 1 of cycles), then pass 2 of cycles.
    let mut stages: Vec<Vec<Step>> = vec![Vec::new(); depth * 2];
    for (c, members) in components.iter().enumerate() {
        let cyclic = members.len() > 1 || edges[members[0]].contains(&members[0]);
        for &m in members {
            let map = maps[m];
            if cyclic {
                let deferred = map
                    .columns
                    .iter()
                    .filter(|col| col.lookup.as_deref().and_then(|l| index.get(l)).is_some_and(|&r| component_of[r] == c))
                    .map(|col| col.names[0].clone())
                    .collect();
                stages[level[c] * 2].push(Step { map: map.name.clone(), deferred });
                stages[level[c] * 2 + 1].push(Step { map: map.name.clone(), deferred: Vec::new() });
            } else {
                stages[level[c] * 2].push(Step { map: map.name.clone(), deferred: Vec::new() });
            }
        }
    }
    for stage in &mut stages {
        stage.sort_by_key(|s| config.maps.iter().position(|m| m.name == s.map));
    }
    stages.retain(|s| !s.is_empty());
    RunOrder { stages }
}

/// Tarjan's strongly connected components; each component comes after every
/// component it has edges to.
fn strongly_connected(edges: &[Vec<usize>]) -> Vec<Vec<usize>> {
    struct State<'a> {
        edges: &'a [Vec<usize>],
        index: Vec<Option<usize>>,
        low: Vec<usize>,
        on_stack: Vec<bool>,
        stack: Vec<usize>,
        next: usize,
        out: Vec<Vec<usize>>,
    }
    fn visit(s: &mut State<'_>, v: usize) {
        s.index[v] = Some(s.next);
        s.low[v] = s.next;
        s.next += 1;
        s.stack.push(v);
        s.on_stack[v] = true;
        for &w in &s.edges[v] {
            match s.index[w] {
                None => {
                    visit(s, w);
                    s.low[v] = s.low[v].min(s.low[w]);
                }
                Some(i) if s.on_stack[w] => s.low[v] = s.low[v].min(i),
                _ => {}
            }
        }
        if Some(s.low[v]) == s.index[v] {
            let mut component = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack[w] = false;
                component.push(w);
                if w == v {
                    break;
                }
            }
            component.sort();
            s.out.push(component);
        }
    }
    let n = edges.len();
    let mut s =
        State { edges, index: vec![None; n], low: vec![0; n], on_stack: vec![false; n], stack: Vec::new(), next: 0, out: Vec::new() };
    for v in 0..n {
        if s.index[v].is_none() {
            visit(&mut s, v);
        }
    }
    s.out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn config(maps: &[(&str, &[(&str, &str)])]) -> Config {
        let mut text = String::from("[apps.a]\nurl = \"sqlite://a.db\"\n[apps.b]\nurl = \"sqlite://b.db\"\n");
        for (name, lookups) in maps {
            text.push_str(&format!(
                "[[maps]]\nname = \"{name}\"\n[maps.a]\ntable = \"{name}\"\nkey = \"k\"\n[maps.b]\ntable = \"{name}\"\nkey = \"k\"\n[[maps.columns]]\na = \"k\"\nb = \"k\"\n"
            ));
            for (column, target) in *lookups {
                text.push_str(&format!("[[maps.columns]]\na = \"{column}\"\nb = \"{column}\"\nlookup = \"{target}\"\n"));
            }
        }
        dualsync_model::config::parse_config(&text, Path::new("/x/dualsync.toml")).unwrap()
    }

    fn step(map: &str, deferred: &[&str]) -> Step {
        Step { map: map.into(), deferred: deferred.iter().map(|d| d.to_string()).collect() }
    }

    #[test]
    fn independent_maps_share_a_stage_and_dependents_follow() {
        let c =
            config(&[("orders", &[("customer", "customers")]), ("customers", &[("grp", "groups")]), ("groups", &[]), ("currencies", &[])]);
        let order = run_order(&c, &[]);
        assert_eq!(
            order.stages,
            vec![vec![step("groups", &[]), step("currencies", &[])], vec![step("customers", &[])], vec![step("orders", &[])]]
        );
    }

    #[test]
    fn a_cycle_and_a_self_reference_run_in_two_passes() {
        let c = config(&[
            ("accounts", &[("parent", "accounts"), ("primary_contact", "contacts")]),
            ("contacts", &[("account", "accounts"), ("grp", "groups")]),
            ("groups", &[]),
            ("orders", &[("account", "accounts")]),
        ]);
        let order = run_order(&c, &[]);
        assert_eq!(
            order.stages,
            vec![
                vec![step("groups", &[])],
                vec![step("accounts", &["parent", "primary_contact"]), step("contacts", &["account"])],
                vec![step("accounts", &[]), step("contacts", &[])],
                vec![step("orders", &[])],
            ]
        );
    }

    #[test]
    fn unselected_maps_are_taken_as_synced() {
        let c = config(&[("customers", &[("grp", "groups")]), ("groups", &[])]);
        assert_eq!(run_order(&c, &["customers".into()]).stages, vec![vec![step("customers", &[])]]);
    }
}
