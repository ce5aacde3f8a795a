//! The pure decision for one key: given the rows both apps hold (in common
//! form), what to write where. No I/O, so every rule is unit-tested here.

use crate::side::Side;
use dualsync_model::config::Direction;
use dualsync_model::row::column_hashes;
use dualsync_model::Value;

/// A row in the map's common form.
#[derive(Clone, Debug, PartialEq)]
pub struct CommonRow {
    pub values: Vec<Value>,
    /// Lookup columns whose stored id refers to no row: (column, the raw id).
    /// Their value in `values` is NULL; writing them anywhere is refused.
    pub unresolved: Vec<(usize, Value)>,
}

impl CommonRow {
    pub fn new(values: Vec<Value>) -> Self {
        CommonRow { values, unresolved: Vec::new() }
    }

    fn unresolved(&self, column: usize) -> Option<&Value> {
        self.unresolved.iter().find(|u| u.0 == column).map(|u| &u.1)
    }
}

/// The parts of a map the decision needs.
#[derive(Clone, Debug)]
pub struct Rules {
    pub directions: Vec<Direction>,
    /// The side whose values win for bidirectional columns.
    pub master: Side,
    pub key_positions: Vec<usize>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Write {
    /// Insert the source row (common form) into this side.
    Insert(Vec<Value>),
    /// Set these columns (by position) of this side's row.
    Update(Vec<(usize, Value)>),
    /// Delete this side's row (live and incremental sync only).
    Delete,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    /// What to write into each side.
    pub writes: [Option<Write>; 2],
    pub key: Vec<Value>,
    /// The column hashes of the content both sides hold once the writes are done: the merge base.
    pub base: Vec<u8>,
    /// Writes refused before reaching a database.
    pub refused: Vec<Refusal>,
}

/// A write the decision refused before any database saw it.
#[derive(Clone, Debug, PartialEq)]
pub struct Refusal {
    /// The side that would have been written.
    pub target: Side,
    /// The column (by position) that stops it.
    pub column: usize,
    pub why: String,
}

/// Decides for one key. Takes the rows by value: an insert moves the row on
/// instead of copying it (this runs once per row of every sync).
pub fn decide(rules: &Rules, rows: [Option<CommonRow>; 2]) -> Decision {
    match rows {
        [Some(a), Some(b)] => reconcile(rules, [a, b]),
        [Some(a), None] => insert(rules, a, Side::A),
        [None, Some(b)] => insert(rules, b, Side::B),
        [None, None] => Decision { writes: [None, None], key: Vec::new(), base: Vec::new(), refused: Vec::new() },
    }
}

/// A row on one side only is created whole on the other (see `TargetWriter`).
pub(crate) fn insert(rules: &Rules, row: CommonRow, source: Side) -> Decision {
    let target = source.other();
    let key = rules.key_positions.iter().map(|&p| row.values[p].clone()).collect();
    let base = column_hashes(&row.values);
    let refused: Vec<_> = row.unresolved.iter().map(|(c, id)| Refusal { target, column: *c, why: unresolved_message(id) }).collect();
    let mut writes = [None, None];
    if refused.is_empty() {
        writes[target] = Some(Write::Insert(row.values));
    }
    Decision { writes, key, base, refused }
}

fn reconcile(rules: &Rules, rows: [CommonRow; 2]) -> Decision {
    with_winners(rules, rows, |c| rules.winner_of(c, rules.master))
}

impl Rules {
    /// The side whose value of column `c` wins when `both_way` wins the map's
    /// bidirectional columns: a one-way column's source always wins.
    pub fn winner_of(&self, c: usize, both_way: Side) -> Side {
        match self.directions[c] {
            _ if self.key_positions.contains(&c) => Side::A,
            Direction::Both => both_way,
            Direction::From(s) => Side::of(s),
        }
    }
}

/// Writes that give both rows each column's value from the side `winner_of` names.
pub(crate) fn with_winners(rules: &Rules, rows: [CommonRow; 2], winner_of: impl Fn(usize) -> Side) -> Decision {
    let mut sets: [Vec<(usize, Value)>; 2] = [Vec::new(), Vec::new()];
    let mut refused = Vec::new();
    for c in 0..rules.directions.len() {
        if rules.key_positions.contains(&c) {
            continue;
        }
        let winner = winner_of(c);
        let loser = winner.other();
        let (w, l) = (&rows[winner].values[c], &rows[loser].values[c]);
        match (rows[winner].unresolved(c), rows[loser].unresolved(c)) {
            // Both hold ids of rows that do not exist: nothing sensible to write.
            (Some(_), Some(_)) => {}
            (Some(id), None) => refused.push(Refusal { target: loser, column: c, why: unresolved_message(id) }),
            // A dangling id on the losing side is replaced even by NULL.
            (None, dangling) => {
                if dangling.is_some() || !w.same_as(l) {
                    sets[loser].push((c, w.clone()));
                }
            }
        }
    }
    let base = column_hashes((0..rules.directions.len()).map(|c| &rows[winner_of(c)].values[c]));
    let key = rules.key_positions.iter().map(|&p| rows[0].values[p].clone()).collect();
    let mut writes = [None, None];
    for side in Side::BOTH {
        let blocked = refused.iter().any(|r| r.target == side);
        let set = std::mem::take(&mut sets[side]);
        if !set.is_empty() && !blocked {
            writes[side] = Some(Write::Update(set));
        }
    }
    Decision { writes, key, base, refused }
}

fn unresolved_message(id: &Value) -> String {
    format!("the lookup holds id {} which refers to no row of the referenced table; fix the reference in the source app", id.display())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Value {
        Value::Text(s.into())
    }

    fn rules(directions: Vec<Direction>, master: usize) -> Rules {
        Rules { directions, master: Side::of(master), key_positions: vec![0] }
    }

    fn row(values: &[Value]) -> CommonRow {
        CommonRow::new(values.to_vec())
    }

    #[test]
    fn a_row_on_one_side_is_inserted_on_the_other() {
        let r = rules(vec![Direction::Both, Direction::Both], 0);
        let a = row(&[t("K1"), t("Ann")]);
        let d = decide(&r, [Some(a.clone()), None]);
        assert_eq!(d.writes, [None, Some(Write::Insert(a.values.clone()))]);
        let d = decide(&r, [None, Some(a.clone())]);
        assert_eq!(d.writes, [Some(Write::Insert(a.values.clone())), None]);
    }

    #[test]
    fn a_new_row_is_created_whole_even_with_one_way_columns() {
        // Column 1 flows crm -> erp only; a row only the ERP holds still carries it.
        let r = rules(vec![Direction::Both, Direction::From(1)], 0);
        let a = row(&[t("K1"), t("erp value")]);
        assert_eq!(decide(&r, [Some(a.clone()), None]).writes, [None, Some(Write::Insert(a.values.clone()))]);
    }

    #[test]
    fn the_master_wins_a_conflict_on_a_bidirectional_column() {
        let a = row(&[t("K1"), t("from erp")]);
        let b = row(&[t("K1"), t("from crm")]);
        for master in [0, 1] {
            let d = decide(&rules(vec![Direction::Both, Direction::Both], master), [Some(a.clone()), Some(b.clone())]);
            let winner = if master == 0 { "from erp" } else { "from crm" };
            let mut expected = [None, None];
            expected[Side::of(master).other()] = Some(Write::Update(vec![(1, t(winner))]));
            assert_eq!(d.writes, expected);
            assert_eq!(d.base, column_hashes(&[t("K1"), t(winner)]), "the merge base is the winner's content");
        }
    }

    #[test]
    fn a_one_way_column_never_flows_back_even_from_the_master() {
        // Column 1 flows crm -> erp only, and erp is the master.
        let r = rules(vec![Direction::Both, Direction::From(1)], 0);
        let a = row(&[t("K1"), Value::Int(100)]);
        let b = row(&[t("K1"), Value::Int(200)]);
        let d = decide(&r, [Some(a.clone()), Some(b.clone())]);
        assert_eq!(d.writes, [Some(Write::Update(vec![(1, Value::Int(200))])), None]);
    }

    #[test]
    fn equal_rows_write_nothing_and_types_do_not_make_a_difference() {
        let r = rules(vec![Direction::Both, Direction::Both, Direction::Both], 0);
        let a = row(&[t("K1"), Value::Int(5), Value::Null]);
        let b = row(&[t("K1"), Value::Float(5.0), Value::Null]);
        assert_eq!(decide(&r, [Some(a.clone()), Some(b.clone())]).writes, [None, None]);
    }

    #[test]
    fn null_and_empty_text_are_a_difference() {
        let r = rules(vec![Direction::Both, Direction::Both], 1);
        let a = row(&[t("K1"), Value::Null]);
        let b = row(&[t("K1"), t("")]);
        assert_eq!(decide(&r, [Some(a.clone()), Some(b.clone())]).writes, [Some(Write::Update(vec![(1, t(""))])), None]);
    }

    #[test]
    fn an_unresolved_lookup_blocks_only_the_write_that_needs_it() {
        let r = rules(vec![Direction::Both, Direction::Both, Direction::Both], 0);
        let mut a = row(&[t("K1"), Value::Null, t("x")]);
        a.unresolved.push((1, t("id-404")));
        // Inserting a's row elsewhere needs the dangling lookup: refused.
        let d = decide(&r, [Some(a.clone()), None]);
        assert_eq!(d.writes, [None, None]);
        assert_eq!(d.refused.len(), 1);
        assert!(d.refused[0].why.contains("id-404"));
        // With crm as master, the good value overwrites the dangling one.
        let b = row(&[t("K1"), t("G1"), t("x")]);
        let d = decide(&rules(r.directions.clone(), 1), [Some(a.clone()), Some(b.clone())]);
        assert_eq!(d.writes, [Some(Write::Update(vec![(1, t("G1"))])), None]);
    }
}
