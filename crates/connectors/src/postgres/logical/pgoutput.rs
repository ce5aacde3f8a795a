//! Decoding `pgoutput` (protocol version 1) into the changes capture records:
//! the captured columns of each inserted, updated or deleted row, placed by
//! their transaction's commit position and their order within it.
//!
//! A transaction that begins with dualsync's logical message (`prefix
//! dualsync`, written by every write transaction of dualsync's sessions) is
//! dualsync's own: its changes are skipped, so nothing dualsync writes comes back.
//! Changes are sent only for committed transactions, in commit order, so a
//! change may be handed on as soon as it arrives.

use super::session::{be_i32, be_u64};
use crate::log::{LogEvent, LogPos, Logged};
use crate::{Change, ChangeKind, ConnectorError, ErrorKind};
use dualsync_model::Value;
use std::collections::HashMap;

/// The prefix of the logical message that marks dualsync's transactions.
const MARKER: &str = "dualsync";

/// What dualsync's write transactions run first, to carry the marker.
pub const MARK_TRANSACTION: &str = "SELECT pg_logical_emit_message(true, 'dualsync', '')";

/// The prefix of the message a reader writes (outside any transaction) to
/// learn where the log ends: once the stream hands it over, every
/// transaction that committed before it has been handed over too, since
/// the log is decoded in order and a commit record ends before the next
/// record begins. A keepalive's position is the sender's, which the protocol
/// does not promise lies after every commit it has yet to send.
const TICK: &str = "dualsync-tick";

/// Writes a tick and returns its place in the log.
pub const EMIT_TICK: &str = "SELECT pg_logical_emit_message(false, 'dualsync-tick', '')::text";

/// Microseconds from 1970 to 2000, PostgreSQL's epoch.
const EPOCH_2000: i64 = 946_684_800_000_000;

struct Relation {
    /// Column name and type oid, in table order.
    columns: Vec<(String, u32)>,
}

struct Txn {
    commit: u64,
    xid: u32,
    at_micros: i64,
    ordinal: u64,
    ours: bool,
}

pub struct Decoder {
    /// The captured columns, in the order changes record them.
    columns: Vec<String>,
    relations: HashMap<u32, Relation>,
    txn: Option<Txn>,
}

/// A cursor over one message's bytes.
struct Bytes<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Bytes<'a> {
    fn need(&self, n: usize) -> Result<(), ConnectorError> {
        if self.at + n <= self.b.len() {
            Ok(())
        } else {
            Err(malformed("a message ends early"))
        }
    }
    fn u8(&mut self) -> Result<u8, ConnectorError> {
        self.need(1)?;
        self.at += 1;
        Ok(self.b[self.at - 1])
    }
    fn i16(&mut self) -> Result<i16, ConnectorError> {
        self.need(2)?;
        self.at += 2;
        Ok(i16::from_be_bytes([self.b[self.at - 2], self.b[self.at - 1]]))
    }
    fn i32(&mut self) -> Result<i32, ConnectorError> {
        self.need(4)?;
        self.at += 4;
        Ok(be_i32(self.b, self.at - 4))
    }
    fn u64(&mut self) -> Result<u64, ConnectorError> {
        self.need(8)?;
        self.at += 8;
        Ok(be_u64(self.b, self.at - 8))
    }
    fn cstr(&mut self) -> Result<String, ConnectorError> {
        let end = self.b[self.at..].iter().position(|&c| c == 0).ok_or_else(|| malformed("a name has no end"))?;
        let s = String::from_utf8_lossy(&self.b[self.at..self.at + end]).into_owned();
        self.at += end + 1;
        Ok(s)
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8], ConnectorError> {
        self.need(n)?;
        self.at += n;
        Ok(&self.b[self.at - n..self.at])
    }
}

fn malformed(what: &str) -> ConnectorError {
    ConnectorError::new(ErrorKind::Unavailable, format!("pgoutput: {what}; the replication session restarts"))
}

/// One tuple's columns: None where unchanged TOAST or missing, Some(None) for NULL.
type Tuple = Vec<Option<Option<String>>>;

impl Decoder {
    pub fn new(columns: Vec<String>) -> Decoder {
        Decoder { columns, relations: HashMap::new(), txn: None }
    }

    pub fn decode(&mut self, message: &[u8], out: &mut Vec<LogEvent>) -> Result<(), ConnectorError> {
        let mut m = Bytes { b: message, at: 1 };
        match message.first() {
            Some(b'B') => {
                let commit = m.u64()?;
                let at = m.u64()? as i64;
                let xid = m.i32()? as u32;
                self.txn = Some(Txn { commit, xid, at_micros: at + EPOCH_2000, ordinal: 0, ours: false });
            }
            Some(b'C') => {
                let _flags = m.u8()?;
                let _commit = m.u64()?;
                let end = m.u64()?;
                self.txn = None;
                out.push(LogEvent::Passed(LogPos::new(end, 0)));
            }
            Some(b'M') => {
                let flags = m.u8()?;
                let lsn = m.u64()?;
                let prefix = m.cstr()?;
                match (flags & 1, self.txn.as_mut()) {
                    (1, Some(txn)) => txn.ours |= prefix == MARKER,
                    (0, _) if prefix == TICK => out.push(LogEvent::Passed(LogPos::new(lsn, 0))),
                    _ => {}
                }
            }
            Some(b'R') => {
                let id = m.i32()? as u32;
                let _schema = m.cstr()?;
                let _name = m.cstr()?;
                let _identity = m.u8()?;
                let n = m.i16()?;
                let mut columns = Vec::with_capacity(n.max(0) as usize);
                for _ in 0..n {
                    let _flags = m.u8()?;
                    let name = m.cstr()?;
                    let oid = m.i32()? as u32;
                    let _typmod = m.i32()?;
                    columns.push((name, oid));
                }
                self.relations.insert(id, Relation { columns });
            }
            Some(b'I') => {
                let id = m.i32()? as u32;
                m.u8()?; // 'N'
                let new = tuple(&mut m)?;
                self.change(id, ChangeKind::Insert, &new, out)?;
            }
            Some(b'U') => {
                let id = m.i32()? as u32;
                let mut old = None;
                let mut tag = m.u8()?;
                if tag == b'K' || tag == b'O' {
                    old = Some(tuple(&mut m)?);
                    tag = m.u8()?;
                }
                if tag != b'N' {
                    return Err(malformed("an update without its new row"));
                }
                let new = tuple(&mut m)?;
                // An update that moves the captured columns (a key or company change) also deletes the old key.
                if let Some(old) = old {
                    if self.captured(id, &old)? != self.captured(id, &new)? {
                        self.change(id, ChangeKind::Delete, &old, out)?;
                    }
                }
                self.change(id, ChangeKind::Update, &new, out)?;
            }
            Some(b'D') => {
                let id = m.i32()? as u32;
                m.u8()?; // 'K' or 'O'
                let old = tuple(&mut m)?;
                self.change(id, ChangeKind::Delete, &old, out)?;
            }
            // Types, origins, truncates (TRUNCATE fires no row trigger either: it is not captured).
            _ => {}
        }
        Ok(())
    }

    fn change(&mut self, relation: u32, kind: ChangeKind, tuple: &Tuple, out: &mut Vec<LogEvent>) -> Result<(), ConnectorError> {
        let values = self.captured(relation, tuple)?;
        let txn = self.txn.as_mut().ok_or_else(|| malformed("a change outside a transaction"))?;
        if txn.ours {
            return Ok(());
        }
        txn.ordinal += 1;
        let change = Change { values, kind, at_micros: txn.at_micros };
        out.push(LogEvent::Change(Logged { pos: LogPos::new(txn.commit, txn.ordinal), change, txn: txn.xid }));
        Ok(())
    }

    /// The captured columns' values of a tuple, typed as trigger capture records them.
    fn captured(&self, relation: u32, tuple: &Tuple) -> Result<Vec<Value>, ConnectorError> {
        let rel = self.relations.get(&relation).ok_or_else(|| malformed("a change of a table it did not describe"))?;
        self.columns
            .iter()
            .map(|name| {
                let i = rel.columns.iter().position(|(c, _)| c == name).ok_or_else(|| {
                    ConnectorError::new(ErrorKind::Schema, format!("the captured column {name:?} is no longer in the table"))
                })?;
                Ok(match tuple.get(i).cloned().flatten() {
                    Some(Some(text)) => typed(&text, rel.columns[i].1),
                    _ => Value::Null,
                })
            })
            .collect()
    }
}

fn tuple(m: &mut Bytes<'_>) -> Result<Tuple, ConnectorError> {
    let n = m.i16()?;
    let mut values = Vec::with_capacity(n.max(0) as usize);
    for _ in 0..n {
        values.push(match m.u8()? {
            b'n' => Some(None),
            b'u' => None,
            b't' | b'b' => {
                let len = m.i32()?;
                Some(Some(String::from_utf8_lossy(m.take(len.max(0) as usize)?).into_owned()))
            }
            _ => return Err(malformed("a column of unknown kind")),
        });
    }
    Ok(values)
}

/// A column's text as a value: numbers as numbers and booleans as booleans
/// (what trigger capture records), everything else as its text.
fn typed(text: &str, oid: u32) -> Value {
    match oid {
        20 | 21 | 23 | 26 => text.parse().map(Value::Int).unwrap_or_else(|_| Value::Text(text.to_string())),
        700 | 701 => text.parse().map(Value::Float).unwrap_or_else(|_| Value::Text(text.to_string())),
        1700 => Value::Decimal(text.to_string()),
        16 => Value::Bool(text == "t"),
        _ => Value::Text(text.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn relation() -> Vec<u8> {
        let mut m = vec![b'R'];
        m.extend(7i32.to_be_bytes());
        m.extend(b"public\0item\0d");
        m.extend(2i16.to_be_bytes());
        for (name, oid) in [("id", 23u32), ("co", 25)] {
            m.push(1);
            m.extend(name.as_bytes());
            m.push(0);
            m.extend(oid.to_be_bytes());
            m.extend((-1i32).to_be_bytes());
        }
        m
    }

    fn begin(commit: u64) -> Vec<u8> {
        let mut m = vec![b'B'];
        m.extend(commit.to_be_bytes());
        m.extend(0u64.to_be_bytes());
        m.extend(1i32.to_be_bytes());
        m
    }

    fn row(tag: u8, values: &[&str]) -> Vec<u8> {
        let mut m = vec![tag];
        m.extend((values.len() as i16).to_be_bytes());
        for v in values {
            m.push(b't');
            m.extend((v.len() as i32).to_be_bytes());
            m.extend(v.as_bytes());
        }
        m
    }

    fn update(old: Option<&[&str]>, new: &[&str]) -> Vec<u8> {
        let mut m = vec![b'U'];
        m.extend(7i32.to_be_bytes());
        if let Some(old) = old {
            m.extend(row(b'K', old));
        }
        m.extend(row(b'N', new));
        m
    }

    #[test]
    fn a_key_change_is_a_delete_and_an_update_and_dualsyncs_transactions_are_skipped() {
        let mut d = Decoder::new(vec!["id".into(), "co".into()]);
        let mut out = Vec::new();
        d.decode(&relation(), &mut out).unwrap();
        d.decode(&begin(100), &mut out).unwrap();
        d.decode(&update(Some(&["1", "A"]), &["2", "A"]), &mut out).unwrap();
        d.decode(&update(None, &["2", "A"]), &mut out).unwrap();
        let mut commit = vec![b'C', 0];
        commit.extend(100u64.to_be_bytes());
        commit.extend(120u64.to_be_bytes());
        commit.extend(0u64.to_be_bytes());
        d.decode(&commit, &mut out).unwrap();
        let kinds: Vec<_> = out
            .iter()
            .map(|e| match e {
                LogEvent::Change(l) => format!("{}:{} {:?} {:?}", l.pos.major, l.pos.ordinal, l.change.kind, l.change.values),
                LogEvent::Passed(pos) => format!("passed {}", pos.major),
            })
            .collect();
        assert_eq!(
            kinds,
            [
                r#"100:1 Delete [Int(1), Text("A")]"#,
                r#"100:2 Update [Int(2), Text("A")]"#,
                r#"100:3 Update [Int(2), Text("A")]"#,
                "passed 120"
            ]
        );
        out.clear();
        d.decode(&begin(200), &mut out).unwrap();
        let mut marker = vec![b'M', 1];
        marker.extend(200u64.to_be_bytes());
        marker.extend(b"dualsync\0");
        marker.extend(0i32.to_be_bytes());
        d.decode(&marker, &mut out).unwrap();
        d.decode(&update(None, &["3", "B"]), &mut out).unwrap();
        assert!(out.is_empty(), "dualsync's own transaction is skipped");
        assert!(MARK_TRANSACTION.contains(&format!("'{MARKER}'")));
        assert!(EMIT_TICK.contains(&format!("'{TICK}'")));
        let mut tick = vec![b'M', 0];
        tick.extend(300u64.to_be_bytes());
        tick.extend(b"dualsync-tick\0");
        tick.extend(0i32.to_be_bytes());
        d.decode(&commit, &mut out).unwrap();
        out.clear();
        d.decode(&tick, &mut out).unwrap();
        assert!(matches!(out[..], [LogEvent::Passed(LogPos { major: 300, ordinal: 0 })]), "a tick is a place passed");
    }
}
