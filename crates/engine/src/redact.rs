//! `redact = true` on a map's column: its values never reach the error log
//! or the conflict queue (and so no output or API), a hash stands for them.
//! Rows are redacted here, where they become records; the state store and
//! the connectors know nothing of it.

use crate::shape::MapShape;
use crate::side::Side;
use dualsync_model::redact::{redact_in, redacted};
use dualsync_model::Value;
use dualsync_state::NewError;

impl MapShape {
    /// Whether the column named `name` on `side` is redacted.
    pub fn hides(&self, side: Side, name: &str) -> bool {
        self.columns[side].iter().zip(&self.redacted).any(|(c, r)| *r && c == name)
    }

    /// The error as the log may keep it: the value of its column, if that
    /// column is redacted, becomes its hash, in the message too.
    pub fn redact_error(&self, side: Side, mut e: NewError) -> NewError {
        if let (Some(column), Some(value)) = (&e.column, &e.value) {
            if self.hides(side, column) {
                e.message = redact_in(&e.message, value);
                e.value = Some(redacted(value));
            }
        }
        e
    }

    /// `message` with every redacted value of the row (`row`: column names on
    /// `side`, values) that it quotes replaced by its hash: a server's
    /// message may quote the whole row ("Failing row contains (…)").
    pub fn redact_quoted(&self, side: Side, message: String, row: &[(&str, &Value)]) -> String {
        row.iter()
            .filter(|(column, value)| !value.is_null() && self.hides(side, column))
            .fold(message, |message, (_, value)| redact_in(&message, &value.display()))
    }

    /// A row (common form) as the conflict queue keeps it: redacted columns hashed.
    pub fn redact_row_json(&self, values: &[Value]) -> serde_json::Value {
        let object = self.columns[0]
            .iter()
            .zip(values)
            .zip(&self.redacted)
            .map(|((c, v), hide)| {
                let shown = match (hide, v) {
                    (true, v) if !v.is_null() => serde_json::Value::String(redacted(&v.display())),
                    _ => v.to_json(),
                };
                (c.clone(), shown)
            })
            .collect();
        serde_json::Value::Object(object)
    }
}
