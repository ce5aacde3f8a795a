//! What a connector says about a table.

/// The broad kind of a column, enough to decide whether a value can move
/// between two apps without loss.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TypeClass {
    Integer,
    Real,
    Decimal,
    Text,
    Blob,
    Bool,
    Date,
    Time,
    Timestamp,
    /// No declared type (SQLite lets a column hold anything).
    Any,
}

impl TypeClass {
    /// Whether values of `self` fit a column of `target` without changing meaning.
    pub fn fits_into(self, target: TypeClass) -> bool {
        use TypeClass::*;
        match (self, target) {
            (a, b) if a == b => true,
            (_, Any) | (Any, _) => true,
            (Bool, Integer | Decimal | Real) => true,
            (Integer, Decimal | Real) => true,
            (Decimal, Real) | (Real, Decimal) => true,
            (_, Text) => !matches!(self, Blob),
            (Date | Time | Timestamp, Date | Time | Timestamp) => true,
            _ => false,
        }
    }

    /// Whether two key columns sort alike (a text key and an integer key do not).
    pub fn sorts_like(self, other: TypeClass) -> bool {
        use TypeClass::*;
        let group = |t: TypeClass| match t {
            Integer | Real | Decimal | Bool => 1,
            Text | Date | Time | Timestamp => 2,
            Blob => 3,
            Any => 0,
        };
        let (a, b) = (group(self), group(other));
        a == 0 || b == 0 || a == b
    }
}

#[derive(Clone, Debug)]
pub struct ColumnInfo {
    pub name: String,
    /// The type as the database declares it (`VARCHAR(60)`, `NUMERIC(10,2)`).
    pub declared_type: String,
    pub class: TypeClass,
    pub nullable: bool,
    pub has_default: bool,
}

#[derive(Clone, Debug)]
pub struct TableSchema {
    pub name: String,
    pub columns: Vec<ColumnInfo>,
    pub primary_key: Vec<String>,
    /// Column sets under a UNIQUE constraint or unique index (the primary key excluded).
    pub unique_keys: Vec<Vec<String>>,
}

impl TableSchema {
    pub fn column(&self, name: &str) -> Option<&ColumnInfo> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// Whether `columns` (in any order) are the primary key or a unique key.
    pub fn is_unique(&self, columns: &[String]) -> bool {
        let same = |k: &Vec<String>| k.len() == columns.len() && k.iter().all(|c| columns.contains(c));
        same(&self.primary_key) || self.unique_keys.iter().any(same)
    }

    pub fn column_names(&self) -> String {
        self.columns.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", ")
    }
}
