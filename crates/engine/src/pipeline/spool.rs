//! A first-in, first-out list of keys that may outgrow memory: the first
//! thousands stay in memory, the rest go to a temporary file, so a partition
//! with millions of deleted rows still runs in bounded memory.

use dualsync_model::Value;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, Write};
use std::path::PathBuf;

/// Entries kept in memory before the spool moves to a file.
const IN_MEMORY: usize = 10_000;

/// One spooled entry: a tag (which app, say), a key and its merge base.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    pub tag: u8,
    pub key: Vec<Value>,
    pub base: Vec<u8>,
}

#[derive(Default)]
pub struct Spool {
    memory: Vec<Entry>,
    file: Option<(PathBuf, BufWriter<File>)>,
    len: usize,
}

impl Spool {
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn push(&mut self, entry: Entry) -> io::Result<()> {
        self.len += 1;
        if self.file.is_none() && self.memory.len() < IN_MEMORY {
            self.memory.push(entry);
            return Ok(());
        }
        if self.file.is_none() {
            let path = std::env::temp_dir().join(format!("dualsync-spool-{}-{}", std::process::id(), uuid::Uuid::now_v7()));
            let file = File::options().read(true).write(true).create_new(true).open(&path)?;
            self.file = Some((path, BufWriter::new(file)));
        }
        let (_, out) = self.file.as_mut().expect("opened above");
        encode(out, &entry)
    }

    /// Every entry, in the order pushed, `chunk` at a time (as often as asked).
    pub fn for_each_chunk<E: From<io::Error>>(&mut self, chunk: usize, mut each: impl FnMut(Vec<Entry>) -> Result<(), E>) -> Result<(), E> {
        for part in self.memory.chunks(chunk.max(1)) {
            each(part.to_vec())?;
        }
        let Some((_, out)) = self.file.as_mut() else { return Ok(()) };
        out.flush()?;
        let mut file = out.get_ref().try_clone()?;
        file.rewind()?;
        let mut input = BufReader::new(file);
        let mut part = Vec::with_capacity(chunk);
        while let Some(entry) = decode(&mut input)? {
            part.push(entry);
            if part.len() >= chunk.max(1) {
                each(std::mem::take(&mut part))?;
            }
        }
        if !part.is_empty() {
            each(part)?;
        }
        Ok(())
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        if let Some((path, _)) = self.file.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

fn encode(out: &mut impl Write, e: &Entry) -> io::Result<()> {
    out.write_all(&[e.tag])?;
    bytes(out, &e.base)?;
    out.write_all(&(e.key.len() as u32).to_le_bytes())?;
    for v in &e.key {
        match v {
            Value::Null => out.write_all(&[0])?,
            Value::Bool(b) => out.write_all(&[1, *b as u8])?,
            Value::Int(i) => {
                out.write_all(&[2])?;
                out.write_all(&i.to_le_bytes())?;
            }
            Value::Float(f) => {
                out.write_all(&[3])?;
                out.write_all(&f.to_bits().to_le_bytes())?;
            }
            Value::Decimal(s) => text(out, 4, s)?,
            Value::Text(s) => text(out, 5, s)?,
            Value::Bytes(b) => {
                out.write_all(&[6])?;
                bytes(out, b)?;
            }
            Value::Date(s) => text(out, 7, s)?,
            Value::Time(s) => text(out, 8, s)?,
            Value::Timestamp(s) => text(out, 9, s)?,
        }
    }
    Ok(())
}

fn text(out: &mut impl Write, tag: u8, s: &str) -> io::Result<()> {
    out.write_all(&[tag])?;
    bytes(out, s.as_bytes())
}

fn bytes(out: &mut impl Write, b: &[u8]) -> io::Result<()> {
    out.write_all(&(b.len() as u32).to_le_bytes())?;
    out.write_all(b)
}

fn decode(input: &mut impl Read) -> io::Result<Option<Entry>> {
    let mut tag = [0u8; 1];
    match input.read_exact(&mut tag) {
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        other => other?,
    }
    let base = read_bytes(input)?;
    let n = u32::from_le_bytes(array(input)?) as usize;
    let mut key = Vec::with_capacity(n);
    for _ in 0..n {
        let [kind] = array::<1>(input)?;
        let read_text = |input: &mut dyn Read| -> io::Result<String> {
            String::from_utf8(read_bytes(input)?).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
        };
        key.push(match kind {
            0 => Value::Null,
            1 => Value::Bool(array::<1>(input)?[0] != 0),
            2 => Value::Int(i64::from_le_bytes(array(input)?)),
            3 => Value::Float(f64::from_bits(u64::from_le_bytes(array(input)?))),
            4 => Value::Decimal(read_text(input)?),
            5 => Value::Text(read_text(input)?),
            6 => Value::Bytes(read_bytes(input)?),
            7 => Value::Date(read_text(input)?),
            8 => Value::Time(read_text(input)?),
            9 => Value::Timestamp(read_text(input)?),
            other => return Err(io::Error::new(io::ErrorKind::InvalidData, format!("spool: unknown value tag {other}"))),
        });
    }
    Ok(Some(Entry { tag: tag[0], key, base }))
}

fn array<const N: usize>(input: &mut (impl Read + ?Sized)) -> io::Result<[u8; N]> {
    let mut b = [0u8; N];
    input.read_exact(&mut b)?;
    Ok(b)
}

fn read_bytes(input: &mut (impl Read + ?Sized)) -> io::Result<Vec<u8>> {
    let n = u32::from_le_bytes(array(input)?) as usize;
    let mut b = vec![0u8; n];
    input.read_exact(&mut b)?;
    Ok(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_come_back_in_order_from_memory_and_file() {
        let mut spool = Spool::default();
        let key = |i: usize| {
            vec![
                Value::Int(i as i64),
                Value::Text(format!("k\"{i}\0é")),
                Value::Decimal("12345678901234567890.000000000000000001".into()),
                Value::Null,
                Value::Bytes(vec![0, 255, i as u8]),
                Value::Float(-0.5),
                Value::Bool(true),
                Value::Timestamp("2024-01-01T00:00:00Z".into()),
            ]
        };
        let n = IN_MEMORY + 2_345;
        for i in 0..n {
            spool.push(Entry { tag: (i % 2) as u8, key: key(i), base: vec![i as u8; 16] }).unwrap();
        }
        for _pass in 0..2 {
            let mut seen = 0;
            spool
                .for_each_chunk(1000, |part| -> io::Result<()> {
                    for e in part {
                        assert_eq!(e, Entry { tag: (seen % 2) as u8, key: key(seen), base: vec![seen as u8; 16] });
                        seen += 1;
                    }
                    Ok(())
                })
                .unwrap();
            assert_eq!(seen, n);
        }
    }
}
