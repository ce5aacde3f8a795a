//! RFC 4180 CSV that keeps what the sync keeps: NULL is an empty unquoted
//! field, an empty string is `""`, every other value is quoted (quotes
//! doubled), so commas, quotes, CR and LF inside values survive byte for byte.
//! Binary values are written as `\x` and hex digits, and read back as bytes in
//! blob columns.

use dualsync_model::value::hex;
use dualsync_model::{TypeClass, Value};
use std::io::{self, BufRead, Write};

/// Writes one record; `None` is NULL.
pub fn write_record(out: &mut (impl Write + ?Sized), fields: &[Option<String>]) -> io::Result<()> {
    let mut line = String::new();
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            line.push(',');
        }
        if let Some(text) = f {
            line.push('"');
            line.push_str(&text.replace('"', "\"\""));
            line.push('"');
        }
    }
    line.push_str("\r\n");
    out.write_all(line.as_bytes())
}

/// A value as a CSV field.
pub fn field(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::Bytes(b) => Some(format!("\\x{}", hex(b))),
        Value::Bool(b) => Some(if *b { "true" } else { "false" }.to_string()),
        other => Some(other.display().into_owned()),
    }
}

/// A field as the value a column of this class holds, or why it cannot be.
pub fn value(field: Option<&str>, class: TypeClass) -> Result<Value, String> {
    let Some(text) = field else { return Ok(Value::Null) };
    let bad = |what: &str| Err(format!("{text:?} is not {what}"));
    match class {
        TypeClass::Integer => text.parse().map(Value::Int).or_else(|_| bad("a whole number")),
        TypeClass::Real => text.parse().map(Value::Float).or_else(|_| bad("a number")),
        TypeClass::Decimal => {
            if text.trim_start_matches('-').bytes().all(|b| b.is_ascii_digit() || b == b'.') && !text.is_empty() {
                Ok(Value::Decimal(text.to_string()))
            } else {
                bad("a decimal number")
            }
        }
        TypeClass::Bool => match text {
            "true" | "t" | "1" => Ok(Value::Bool(true)),
            "false" | "f" | "0" => Ok(Value::Bool(false)),
            _ => bad("true or false"),
        },
        TypeClass::Blob => match text.strip_prefix("\\x") {
            Some(h) if h.len() % 2 == 0 => (0..h.len() / 2)
                .map(|i| u8::from_str_radix(&h[2 * i..2 * i + 2], 16))
                .collect::<Result<Vec<u8>, _>>()
                .map(Value::Bytes)
                .or_else(|_| bad("binary data as \\x and hex digits")),
            _ => bad("binary data as \\x and hex digits"),
        },
        TypeClass::Date => Ok(Value::Date(text.to_string())),
        TypeClass::Time => Ok(Value::Time(text.to_string())),
        TypeClass::Timestamp => Ok(Value::Timestamp(text.to_string())),
        TypeClass::Text | TypeClass::Any => Ok(Value::Text(text.to_string())),
    }
}

/// Records read one by one, with the line each starts on.
pub struct Reader<R> {
    input: R,
    line: usize,
}

/// A record, or a malformed one with its line and what is wrong.
pub type Record = Result<(usize, Vec<Option<String>>), (usize, String)>;

impl<R: BufRead> Reader<R> {
    pub fn new(input: R) -> Self {
        Reader { input, line: 0 }
    }

    /// The next record; None at the end of the input.
    pub fn next_record(&mut self) -> Option<Record> {
        let mut fields: Vec<Option<String>> = Vec::new();
        let mut buf = String::new();
        if self.input.read_line(&mut buf).ok()? == 0 {
            return None;
        }
        self.line += 1;
        let start = self.line;
        let mut field = String::new();
        let mut quoted = false; // the current field started with a quote
        let mut in_quotes = false;
        let mut chars: Vec<char> = buf.chars().collect();
        let mut i = 0;
        loop {
            if i >= chars.len() {
                if in_quotes {
                    // A quoted field goes on over the line break.
                    let mut more = String::new();
                    match self.input.read_line(&mut more) {
                        Ok(0) | Err(_) => return Some(Err((start, "a quoted field is never closed (a missing \")".into()))),
                        Ok(_) => {
                            self.line += 1;
                            chars = more.chars().collect();
                            i = 0;
                            continue;
                        }
                    }
                }
                break;
            }
            let c = chars[i];
            if in_quotes {
                if c == '"' {
                    if chars.get(i + 1) == Some(&'"') {
                        field.push('"');
                        i += 2;
                        continue;
                    }
                    in_quotes = false;
                    i += 1;
                    continue;
                }
                field.push(c);
                i += 1;
                continue;
            }
            match c {
                '"' if field.is_empty() && !quoted => {
                    quoted = true;
                    in_quotes = true;
                }
                '"' => return Some(Err((self.line, "a quote inside an unquoted field (quote the field and double its quotes)".into()))),
                ',' => {
                    fields.push(if quoted || !field.is_empty() { Some(std::mem::take(&mut field)) } else { None });
                    quoted = false;
                }
                '\r' if chars.get(i + 1) == Some(&'\n') => {}
                '\n' => break,
                c if quoted => return Some(Err((self.line, format!("text {c:?} after the closing quote of a field")))),
                c => field.push(c),
            }
            i += 1;
        }
        fields.push(if quoted || !field.is_empty() { Some(field) } else { None });
        Some(Ok((start, fields)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_text_and_null_round_trips() {
        let fields = vec![
            Some("He said \"hi\", then\r\nleft".to_string()),
            None,
            Some(String::new()),
            Some("tab\there, emoji 🚀, עברית".to_string()),
            Some("\\x00ff".to_string()),
        ];
        let mut out = Vec::new();
        write_record(&mut out, &fields).unwrap();
        write_record(&mut out, &[None, Some("x".into())]).unwrap();
        let mut r = Reader::new(&out[..]);
        assert_eq!(r.next_record().unwrap().unwrap(), (1, fields));
        assert_eq!(r.next_record().unwrap().unwrap(), (3, vec![None, Some("x".into())]), "the second record starts on line 3");
        assert!(r.next_record().is_none());
    }

    #[test]
    fn a_broken_quote_is_reported_with_its_line() {
        let text = "\"a\",\"b\"\r\n\"c\",x\"y\r\n\"d\",\"e\"\r\n\"never closed\r\n";
        let mut r = Reader::new(text.as_bytes());
        assert!(r.next_record().unwrap().is_ok());
        assert_eq!(r.next_record().unwrap().unwrap_err().0, 2);
        assert_eq!(r.next_record().unwrap().unwrap(), (3, vec![Some("d".into()), Some("e".into())]), "reading goes on after a bad line");
        assert_eq!(r.next_record().unwrap().unwrap_err(), (4, "a quoted field is never closed (a missing \")".into()));
    }

    #[test]
    fn values_by_column_class() {
        assert_eq!(value(Some("\\x00ff"), TypeClass::Blob), Ok(Value::Bytes(vec![0, 255])));
        assert_eq!(value(Some("12"), TypeClass::Integer), Ok(Value::Int(12)));
        assert!(value(Some("1.5"), TypeClass::Integer).is_err());
        assert_eq!(value(None, TypeClass::Text), Ok(Value::Null));
        assert_eq!(value(Some(""), TypeClass::Text), Ok(Value::Text(String::new())));
        assert_eq!(field(&Value::Bytes(vec![1, 2])), Some("\\x0102".into()));
    }
}
