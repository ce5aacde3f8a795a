//! The two apps of a map. A map pairs one table of its first app (`A`, the
//! first `[maps.APP]` in the config) with one of its second (`B`); per-app
//! data is kept in `[T; 2]` arrays indexed by `Side`.

use std::ops::{Index, IndexMut};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Side {
    A,
    B,
}

impl Side {
    /// Both sides, in map order.
    pub const BOTH: [Side; 2] = [Side::A, Side::B];

    pub fn other(self) -> Side {
        match self {
            Side::A => Side::B,
            Side::B => Side::A,
        }
    }

    /// The position in the map's configuration (`sides[0]`, `sides[1]`).
    pub fn index(self) -> usize {
        self as usize
    }

    /// The side at a position of the map's configuration (0 or 1).
    pub fn of(index: usize) -> Side {
        match index {
            0 => Side::A,
            1 => Side::B,
            other => panic!("a map has two sides, not {other}"),
        }
    }
}

impl<T> Index<Side> for [T; 2] {
    type Output = T;
    fn index(&self, side: Side) -> &T {
        &self[side.index()]
    }
}

impl<T> IndexMut<Side> for [T; 2] {
    fn index_mut(&mut self, side: Side) -> &mut T {
        &mut self[side.index()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sides_index_pairs_and_know_each_other() {
        let mut pair = ["erp", "crm"];
        assert_eq!((pair[Side::A], pair[Side::B]), ("erp", "crm"));
        pair[Side::B] = "dataverse";
        assert_eq!(pair, ["erp", "dataverse"]);
        assert_eq!(Side::A.other(), Side::B);
        assert_eq!(Side::BOTH.map(Side::other), [Side::B, Side::A]);
        assert_eq!(Side::of(1), Side::B);
    }
}
