//! The three-way merge of one changed key (incremental and live sync): both
//! apps' rows as they are now against the merge base, the column hashes of
//! what both held after the last sync. Pure, like `decide`, so every rule is
//! unit-tested here.
//!
//! - A column changed on one side only takes that side's value.
//! - A column changed on both sides to different values is a conflict, settled
//!   by the map's policy: `master` (the master's whole row wins), `latest` (the
//!   row changed last wins), `merge` (each column from the side that changed
//!   it, the master's value where both did) or `manual` (nothing is written;
//!   the key waits in the conflict queue for `dualsync resolve`).
//! - A one-way column always takes its source's value, as in the initial sync.
//! - A row deleted on one side is deleted on the other, unless it changed
//!   there since the base: that is a conflict too (`on_delete = "ignore"`
//!   leaves the other row alone).
//! - A key without a base (never synced) follows the initial sync's rule.

use crate::decide::{decide, insert, with_winners, CommonRow, Decision, Rules, Write};
use crate::side::Side;
use dualsync_model::config::{ConflictPolicy, OnDelete};
use dualsync_model::{column_hashes, Value};

#[derive(Clone, Debug)]
pub struct MergeRules {
    pub rules: Rules,
    pub policy: ConflictPolicy,
    pub on_delete: OnDelete,
    /// The apps' names, for conflict resolutions people read.
    pub apps: [String; 2],
}

/// One side of a changed key.
#[derive(Clone, Debug, Default)]
pub struct SideNow {
    /// The row as it is now (None: absent, or outside the map's filter or company).
    pub row: Option<CommonRow>,
    /// Whether the side's last captured change of the key was a delete.
    pub deleted: bool,
    /// When the side last changed the key (µs since 1970), if it did in this batch.
    pub changed_at: Option<i64>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Conflict {
    /// Columns (by position) both sides changed; empty for a delete against an update.
    pub columns: Vec<usize>,
    /// How the policy settled it; None: parked for `dualsync resolve`.
    pub resolution: Option<String>,
    /// Both sides' rows as they were (None: deleted), for the conflict queue.
    pub rows: [Option<Vec<Value>>; 2],
}

#[derive(Clone, Debug, PartialEq)]
pub struct Merge {
    pub decision: Decision,
    /// The merge base once the writes are done: Some(new base), or None to forget the key.
    pub base: Option<Vec<u8>>,
    pub conflict: Option<Conflict>,
}

impl Merge {
    fn nothing(decision_key: Vec<dualsync_model::Value>, base: Option<Vec<u8>>) -> Merge {
        Merge {
            decision: Decision { writes: [None, None], key: decision_key, base: Vec::new(), refused: Vec::new() },
            base,
            conflict: None,
        }
    }
}

pub fn merge(m: &MergeRules, sides: [SideNow; 2], base: Option<&[u8]>) -> Merge {
    let width = m.rules.directions.len();
    let base = base.filter(|b| b.len() == width * 8);
    let Some(base) = base else {
        let [a, b] = sides;
        // Never synced: as the initial sync would.
        // The base moves to the merge's own field (`Decision::base` is left empty): this runs once per row.
        let mut decision = decide(&m.rules, [a.row, b.row]);
        let base = (!decision.base.is_empty()).then(|| std::mem::take(&mut decision.base));
        return Merge { decision, base, conflict: None };
    };
    let at = [sides[0].changed_at, sides[1].changed_at];
    let deleted = [sides[0].deleted, sides[1].deleted];
    match sides.map(|s| s.row) {
        [None, None] => Merge::nothing(Vec::new(), None),
        [Some(row), None] => one_side_gone(m, row, Side::A, deleted[Side::B], at, base),
        [None, Some(row)] => one_side_gone(m, row, Side::B, deleted[Side::A], at, base),
        [Some(ra), Some(rb)] => both_present(m, [ra, rb], at, base),
    }
}

fn changed(row: &CommonRow, base: &[u8]) -> bool {
    column_hashes(&row.values) != base
}

fn key_of(m: &MergeRules, row: &CommonRow) -> Vec<dualsync_model::Value> {
    m.rules.key_positions.iter().map(|&p| row.values[p].clone()).collect()
}

/// The newer side by change time; a side without a change in the batch is
/// older. Without any change time (a full diff of apps without capture) the
/// master is taken as the newer side.
fn latest(at: [Option<i64>; 2], master: Side) -> Side {
    match at {
        [Some(x), Some(y)] if y > x => Side::B,
        [Some(_), Some(_)] | [Some(_), None] => Side::A,
        [None, Some(_)] => Side::B,
        [None, None] => master,
    }
}

/// `present` holds the row; the other side does not.
fn one_side_gone(m: &MergeRules, row: CommonRow, present: Side, deleted: bool, at: [Option<i64>; 2], base: &[u8]) -> Merge {
    let gone = present.other();
    let key = key_of(m, &row);
    // Absent without a delete: the row left the map's filter or company there; nothing flows.
    if !deleted || m.on_delete == OnDelete::Ignore {
        return Merge::nothing(key, Some(base.to_vec()));
    }
    let delete_it = |key| {
        let mut writes = [None, None];
        writes[present] = Some(Write::Delete);
        Merge { decision: Decision { writes, key, base: Vec::new(), refused: Vec::new() }, base: None, conflict: None }
    };
    if !changed(&row, base) {
        return delete_it(key);
    }
    // Deleted on one side, changed on the other since the base.
    let mut rows = [None, None];
    rows[present] = Some(row.values.clone());
    let winner = match m.policy {
        ConflictPolicy::Master | ConflictPolicy::Merge => m.rules.master,
        ConflictPolicy::Latest => latest(at, m.rules.master),
        ConflictPolicy::Manual => {
            let mut merge = Merge::nothing(key, Some(base.to_vec()));
            merge.conflict = Some(Conflict { columns: Vec::new(), resolution: None, rows });
            return merge;
        }
    };
    let resolution =
        Some(format!("{}: {} wins ({})", policy_name(m.policy), m.apps[winner], if winner == gone { "deleted" } else { "kept" }));
    let mut merge = if winner == gone {
        delete_it(key)
    } else {
        let mut decision = insert(&m.rules, row, present);
        Merge { base: Some(std::mem::take(&mut decision.base)), decision, conflict: None }
    };
    merge.conflict = Some(Conflict { columns: Vec::new(), resolution, rows });
    merge
}

fn both_present(m: &MergeRules, rows: [CommonRow; 2], at: [Option<i64>; 2], base: &[u8]) -> Merge {
    let width = m.rules.directions.len();
    let hashes = [column_hashes(&rows[0].values), column_hashes(&rows[1].values)];
    // Per column: which side changed it since the base.
    let mut changed_by: Vec<[bool; 2]> = Vec::with_capacity(width);
    let mut conflicting = Vec::new();
    for c in 0..width {
        let ch = Side::BOTH.map(|s| column(&hashes[s], c) != column(base, c));
        // Only bidirectional columns can conflict (not one-way columns, not the key).
        let both_ways = m.rules.winner_of(c, Side::A) != m.rules.winner_of(c, Side::B);
        if ch[0] && ch[1] && both_ways && !rows[0].values[c].same_as(&rows[1].values[c]) {
            conflicting.push(c);
        }
        changed_by.push(ch);
    }
    let mut conflict = None;
    let row_winner = match (conflicting.is_empty(), m.policy) {
        (true, _) => None,
        (false, ConflictPolicy::Master) => Some(m.rules.master),
        (false, ConflictPolicy::Latest) => Some(latest(at, m.rules.master)),
        (false, ConflictPolicy::Merge) => None,
        (false, ConflictPolicy::Manual) => {
            let mut merge = Merge::nothing(key_of(m, &rows[0]), Some(base.to_vec()));
            merge.conflict = Some(Conflict { columns: conflicting, resolution: None, rows: rows.map(|r| Some(r.values)) });
            return merge;
        }
    };
    if !conflicting.is_empty() {
        let winner = row_winner.unwrap_or(m.rules.master);
        conflict = Some(Conflict {
            resolution: Some(format!("{}: {} wins", policy_name(m.policy), m.apps[winner])),
            columns: conflicting.clone(),
            rows: [Some(rows[0].values.clone()), Some(rows[1].values.clone())],
        });
    }
    let winner_of = |c: usize| {
        let both_way = match row_winner {
            Some(w) => w,
            // Each column from the side that changed it; the master where both or neither did.
            None => match changed_by[c] {
                [true, false] => Side::A,
                [false, true] => Side::B,
                _ => m.rules.master,
            },
        };
        m.rules.winner_of(c, both_way)
    };
    let mut decision = with_winners(&m.rules, rows, winner_of);
    Merge { base: Some(std::mem::take(&mut decision.base)), decision, conflict }
}

/// Column `c`'s 8 bytes of a merge base.
fn column(hashes: &[u8], c: usize) -> &[u8] {
    &hashes[c * 8..c * 8 + 8]
}

fn policy_name(p: ConflictPolicy) -> &'static str {
    match p {
        ConflictPolicy::Master => "master",
        ConflictPolicy::Latest => "latest",
        ConflictPolicy::Merge => "merge",
        ConflictPolicy::Manual => "manual",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dualsync_model::config::Direction;
    use dualsync_model::Value;

    fn t(s: &str) -> Value {
        Value::Text(s.into())
    }

    fn rules(policy: ConflictPolicy, master: usize) -> MergeRules {
        MergeRules {
            rules: Rules { directions: vec![Direction::Both; 3], master: Side::of(master), key_positions: vec![0] },
            policy,
            on_delete: OnDelete::Delete,
            apps: ["erp".into(), "crm".into()],
        }
    }

    fn side(values: &[&str], at: i64) -> SideNow {
        SideNow { row: Some(CommonRow::new(values.iter().map(|v| t(v)).collect())), deleted: false, changed_at: Some(at) }
    }

    fn base(values: &[&str]) -> Vec<u8> {
        column_hashes(&values.iter().map(|v| t(v)).collect::<Vec<_>>())
    }

    fn gone(at: i64) -> SideNow {
        SideNow { row: None, deleted: true, changed_at: Some(at) }
    }

    #[test]
    fn a_change_on_one_side_flows_to_the_other_even_from_the_non_master() {
        let b0 = base(&["K", "x", "y"]);
        let m = merge(&rules(ConflictPolicy::Master, 0), [side(&["K", "x", "y"], 1), side(&["K", "x", "Y2"], 2)], Some(&b0));
        assert_eq!(m.decision.writes, [Some(Write::Update(vec![(2, t("Y2"))])), None]);
        assert_eq!(m.base, Some(base(&["K", "x", "Y2"])));
        assert_eq!(m.conflict, None);
    }

    #[test]
    fn different_columns_changed_on_each_side_both_flow() {
        let b0 = base(&["K", "x", "y"]);
        for policy in [ConflictPolicy::Master, ConflictPolicy::Latest, ConflictPolicy::Merge, ConflictPolicy::Manual] {
            let m = merge(&rules(policy, 0), [side(&["K", "X1", "y"], 1), side(&["K", "x", "Y2"], 2)], Some(&b0));
            assert_eq!(m.decision.writes, [Some(Write::Update(vec![(2, t("Y2"))])), Some(Write::Update(vec![(1, t("X1"))]))]);
            assert_eq!(m.conflict, None, "{policy:?}");
        }
    }

    #[test]
    fn the_same_change_on_both_sides_is_no_conflict() {
        let b0 = base(&["K", "x", "y"]);
        let m = merge(&rules(ConflictPolicy::Manual, 0), [side(&["K", "same", "y"], 1), side(&["K", "same", "y"], 2)], Some(&b0));
        assert_eq!(m.decision.writes, [None, None]);
        assert_eq!(m.conflict, None);
        assert_eq!(m.base, Some(base(&["K", "same", "y"])));
    }

    #[test]
    fn each_policy_settles_a_conflict_its_way() {
        let b0 = base(&["K", "x", "y"]);
        // erp changed col 1 at t=1; crm changed col 1 and col 2 at t=2.
        let sides = || [side(&["K", "erp", "y"], 1), side(&["K", "crm", "Y2"], 2)];
        let m = merge(&rules(ConflictPolicy::Master, 0), sides(), Some(&b0));
        assert_eq!(m.decision.writes, [None, Some(Write::Update(vec![(1, t("erp")), (2, t("y"))]))], "master: erp's whole row");
        assert_eq!(m.conflict.as_ref().unwrap().columns, vec![1]);
        let m = merge(&rules(ConflictPolicy::Latest, 0), sides(), Some(&b0));
        assert_eq!(m.decision.writes, [Some(Write::Update(vec![(1, t("crm")), (2, t("Y2"))])), None], "latest: crm changed last");
        let m = merge(&rules(ConflictPolicy::Merge, 0), sides(), Some(&b0));
        assert_eq!(
            m.decision.writes,
            [Some(Write::Update(vec![(2, t("Y2"))])), Some(Write::Update(vec![(1, t("erp"))]))],
            "merge: crm's col 2, the master's col 1"
        );
        assert_eq!(m.base, Some(base(&["K", "erp", "Y2"])));
        let m = merge(&rules(ConflictPolicy::Manual, 0), sides(), Some(&b0));
        assert_eq!(m.decision.writes, [None, None]);
        let c = m.conflict.unwrap();
        assert_eq!((c.columns, c.resolution), (vec![1], None));
        assert_eq!(c.rows, [Some(vec![t("K"), t("erp"), t("y")]), Some(vec![t("K"), t("crm"), t("Y2")])]);
        assert_eq!(m.base, Some(b0.clone()), "the base stays until resolved");
    }

    #[test]
    fn a_one_way_column_changed_on_the_wrong_side_is_put_back() {
        let mut r = rules(ConflictPolicy::Master, 1);
        r.rules.directions[2] = Direction::From(0);
        let b0 = base(&["K", "x", "y"]);
        let m = merge(&r, [side(&["K", "x", "y"], 1), side(&["K", "x", "crm edit"], 2)], Some(&b0));
        assert_eq!(m.decision.writes, [None, Some(Write::Update(vec![(2, t("y"))]))]);
        assert_eq!(m.conflict, None);
    }

    #[test]
    fn a_delete_flows_unless_the_row_changed_on_the_other_side() {
        let b0 = base(&["K", "x", "y"]);
        let m = merge(&rules(ConflictPolicy::Master, 1), [side(&["K", "x", "y"], 1), gone(2)], Some(&b0));
        assert_eq!(m.decision.writes, [Some(Write::Delete), None]);
        assert_eq!(m.base, None, "the key is forgotten");
        // erp changed it: with erp as master the row comes back to crm.
        let m = merge(&rules(ConflictPolicy::Master, 0), [side(&["K", "X1", "y"], 1), gone(2)], Some(&b0));
        assert!(matches!(m.decision.writes, [None, Some(Write::Insert(_))]));
        assert!(m.conflict.is_some());
        // latest: the delete came last.
        let m = merge(&rules(ConflictPolicy::Latest, 0), [side(&["K", "X1", "y"], 1), gone(2)], Some(&b0));
        assert_eq!(m.decision.writes, [Some(Write::Delete), None]);
        let m = merge(&rules(ConflictPolicy::Manual, 0), [side(&["K", "X1", "y"], 1), gone(2)], Some(&b0));
        assert_eq!(m.decision.writes, [None, None]);
        let c = m.conflict.unwrap();
        assert_eq!((c.columns, c.resolution, c.rows), (vec![], None, [Some(vec![t("K"), t("X1"), t("y")]), None]));
    }

    #[test]
    fn ignore_and_out_of_scope_rows_delete_nothing() {
        let b0 = base(&["K", "x", "y"]);
        let mut r = rules(ConflictPolicy::Master, 0);
        r.on_delete = OnDelete::Ignore;
        let m = merge(&r, [side(&["K", "x", "y"], 1), gone(2)], Some(&b0));
        assert_eq!(m.decision.writes, [None, None]);
        let outside = SideNow { row: None, deleted: false, changed_at: Some(2) };
        let m = merge(&rules(ConflictPolicy::Master, 0), [side(&["K", "x", "y"], 1), outside], Some(&b0));
        assert_eq!(m.decision.writes, [None, None], "a row that left the filter is not a delete");
    }

    #[test]
    fn a_key_without_base_follows_the_initial_sync_rule() {
        let m = merge(&rules(ConflictPolicy::Manual, 0), [side(&["K", "a", "b"], 1), SideNow::default()], None);
        assert!(matches!(m.decision.writes, [None, Some(Write::Insert(_))]));
        assert_eq!(m.base, Some(base(&["K", "a", "b"])));
        let m = merge(&rules(ConflictPolicy::Manual, 0), [SideNow::default(), SideNow::default()], None);
        assert_eq!(m.base, None);
    }
}
