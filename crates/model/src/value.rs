//! One cell of a row, keeping every distinction the databases make:
//! NULL is not '', 1 is not '1', and text is kept byte for byte.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::fmt;

/// A single value read from or written to an app.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    /// An exact decimal kept as its digits (NUMERIC(65,30) exceeds every binary type).
    Decimal(String),
    Text(String),
    Bytes(Vec<u8>),
    /// ISO 8601 date `YYYY-MM-DD`.
    Date(String),
    /// ISO 8601 time `HH:MM:SS[.fff]`.
    Time(String),
    /// ISO 8601 timestamp, with offset where the database keeps one.
    Timestamp(String),
}

/// The canonical form used for comparison and hashing: numbers compare by
/// value whatever their storage type, text-like values by their exact bytes.
#[derive(Debug, PartialEq, Eq, Hash)]
pub enum Canonical<'a> {
    Null,
    Number(Cow<'a, str>),
    Text(&'a str),
    /// A time or timestamp in one spelling (see [`canonical_temporal`]).
    Temporal(Cow<'a, str>),
    Bytes(&'a [u8]),
}

impl Value {
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    pub fn canonical(&self) -> Canonical<'_> {
        match self {
            Value::Null => Canonical::Null,
            Value::Bool(b) => Canonical::Number(Cow::Borrowed(if *b { "1" } else { "0" })),
            Value::Int(i) => Canonical::Number(Cow::Owned(i.to_string())),
            Value::Float(f) => Canonical::Number(Cow::Owned(canonical_float(*f))),
            Value::Decimal(d) => Canonical::Number(canonical_decimal(d)),
            Value::Text(s) | Value::Date(s) => Canonical::Text(s),
            Value::Time(s) | Value::Timestamp(s) => Canonical::Temporal(canonical_temporal(s)),
            Value::Bytes(b) => Canonical::Bytes(b),
        }
    }

    /// Equal for synchronization purposes: the same content, whatever the
    /// storage type (an INTEGER 5 and a REAL 5.0 are the same amount).
    /// Numbers are compared exactly, at any precision (see [`Value::key_cmp`]).
    pub fn same_as(&self, other: &Value) -> bool {
        match (self, other) {
            (Value::Int(a), Value::Int(b)) => a == b,
            (Value::Text(a), Value::Text(b)) => a == b,
            _ if self.is_number() && other.is_number() => number_cmp(self, other).is_eq(),
            _ => self.canonical() == other.canonical(),
        }
    }

    /// The order in which databases sort keys with a binary collation:
    /// NULL, then numbers by value, then text by bytes, then blobs by bytes.
    ///
    /// Numbers compare exactly, whatever their precision: as decimal digits
    /// (sign, integer digits, fraction), never through `f64`. A float is the
    /// number its shortest round-trip decimal spells (`0.1` is 0.1), so the
    /// order agrees with [`Value::same_as`] and with the hashes of the
    /// canonical form. NaN sorts after every number, as in PostgreSQL.
    pub fn key_cmp(&self, other: &Value) -> Ordering {
        fn rank(v: &Value) -> u8 {
            match v {
                Value::Null => 0,
                Value::Bool(_) | Value::Int(_) | Value::Float(_) | Value::Decimal(_) => 1,
                Value::Text(_) | Value::Date(_) | Value::Time(_) | Value::Timestamp(_) => 2,
                Value::Bytes(_) => 3,
            }
        }
        match (self, other) {
            (Value::Int(a), Value::Int(b)) => a.cmp(b),
            (Value::Text(a), Value::Text(b)) => a.as_bytes().cmp(b.as_bytes()),
            _ => match rank(self).cmp(&rank(other)) {
                Ordering::Equal if rank(self) == 1 => number_cmp(self, other),
                Ordering::Equal => match (self.canonical(), other.canonical()) {
                    (Canonical::Text(a), Canonical::Text(b)) => a.as_bytes().cmp(b.as_bytes()),
                    (Canonical::Temporal(a), Canonical::Temporal(b)) => a.as_bytes().cmp(b.as_bytes()),
                    (Canonical::Text(a), Canonical::Temporal(b)) => a.as_bytes().cmp(b.as_bytes()),
                    (Canonical::Temporal(a), Canonical::Text(b)) => a.as_bytes().cmp(b.as_bytes()),
                    (Canonical::Bytes(a), Canonical::Bytes(b)) => a.cmp(b),
                    _ => Ordering::Equal,
                },
                other => other,
            },
        }
    }

    fn is_number(&self) -> bool {
        matches!(self, Value::Bool(_) | Value::Int(_) | Value::Float(_) | Value::Decimal(_))
    }

    /// The text a person reads in a report or the error log (`NULL` for NULL).
    pub fn display(&self) -> Cow<'_, str> {
        match self {
            Value::Null => Cow::Borrowed("NULL"),
            Value::Bytes(b) => Cow::Owned(format!("0x{}", hex(b))),
            Value::Text(s) | Value::Date(s) | Value::Time(s) | Value::Timestamp(s) => Cow::Borrowed(s),
            Value::Bool(b) => Cow::Borrowed(if *b { "1" } else { "0" }),
            Value::Int(i) => Cow::Owned(i.to_string()),
            Value::Float(f) => Cow::Owned(canonical_float(*f)),
            Value::Decimal(d) => normalize_decimal(d),
        }
    }

    /// The value as JSON, as the error log and `--format json` show it.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Value::Null => serde_json::Value::Null,
            Value::Bool(b) => (*b).into(),
            Value::Int(i) => (*i).into(),
            Value::Float(f) => {
                serde_json::Number::from_f64(*f).map(serde_json::Value::Number).unwrap_or_else(|| canonical_float(*f).into())
            }
            Value::Bytes(b) => serde_json::json!({ "hex": hex(b) }),
            other => other.display().into_owned().into(),
        }
    }

    /// Reads back what [`Value::to_json`] wrote (decimals and temporals come back as text).
    pub fn from_json(json: &serde_json::Value) -> Value {
        match json {
            serde_json::Value::Null => Value::Null,
            serde_json::Value::Bool(b) => Value::Bool(*b),
            serde_json::Value::Number(n) => match n.as_i64() {
                Some(i) => Value::Int(i),
                None => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
            },
            serde_json::Value::String(s) => Value::Text(s.clone()),
            serde_json::Value::Object(o) => match o.get("hex").and_then(|h| h.as_str()) {
                Some(h) => Value::Bytes(unhex(h)),
                None => Value::Text(json.to_string()),
            },
            serde_json::Value::Array(_) => Value::Text(json.to_string()),
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.display())
    }
}

/// A float as the decimal it is compared and hashed as: Rust prints the
/// shortest text that reads back as the same f64, never with an exponent
/// (`0.1`, `1e300` as `1` and 300 zeros); `NaN`, `inf` and `-inf` otherwise.
fn canonical_float(f: f64) -> String {
    if f.is_finite() {
        normalize_decimal(&format!("{f}")).into_owned()
    } else {
        format!("{f}")
    }
}

/// A decimal's canonical spelling: its normalized digits, or `NaN`, `inf`,
/// `-inf` as a float spells them (PostgreSQL's `numeric` holds those too).
fn canonical_decimal(d: &str) -> Cow<'_, str> {
    match decimal_num(d) {
        Num::Finite(p) => p.render(d),
        Num::NegInf => Cow::Borrowed("-inf"),
        Num::PosInf => Cow::Borrowed("inf"),
        Num::NaN => Cow::Borrowed("NaN"),
        Num::Other(_) => Cow::Borrowed(d),
    }
}

/// `+001.500` → `1.5`, `-0.0` → `0`; text that is not a plain decimal is kept as it is.
/// Borrows from `s` whenever the result is a part of it (`5.00` → `5`, `-0.50` → `-0.5`).
pub fn normalize_decimal(s: &str) -> Cow<'_, str> {
    match Plain::parse(s) {
        Some(p) => p.render(s),
        None => Cow::Borrowed(s),
    }
}

/// A plain decimal `[+-]digits[.digits]` as parts of its text: the integer
/// digits without leading zeros (empty for 0), the fraction without trailing
/// zeros; zero is never negative. Two numbers are equal when their parts are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Plain<'a> {
    negative: bool,
    int: &'a str,
    frac: &'a str,
}

impl<'a> Plain<'a> {
    fn parse(s: &'a str) -> Option<Plain<'a>> {
        // One pass over the bytes; `trim` (Unicode) only when the ends are not digits.
        let b = s.as_bytes();
        let clean = matches!(b.first(), Some(b'0'..=b'9' | b'-' | b'+' | b'.')) && matches!(b.last(), Some(b'0'..=b'9' | b'.'));
        let t = if clean { s } else { s.trim() };
        let b = t.as_bytes();
        let (negative, start) = match b.first() {
            Some(b'-') => (true, 1),
            Some(b'+') => (false, 1),
            _ => (false, 0),
        };
        let mut dot = usize::MAX;
        for (i, &c) in b.iter().enumerate().skip(start) {
            if c.wrapping_sub(b'0') > 9 {
                if c != b'.' || dot != usize::MAX {
                    return None;
                }
                dot = i;
            }
        }
        let (int, frac) = if dot == usize::MAX { (&t[start..], "") } else { (&t[start..dot], &t[dot + 1..]) };
        if int.is_empty() && frac.is_empty() {
            return None;
        }
        let int = &int[int.bytes().take_while(|&c| c == b'0').count()..];
        let frac = &frac[..frac.len() - frac.bytes().rev().take_while(|&c| c == b'0').count()];
        Some(Plain { negative: negative && !(int.is_empty() && frac.is_empty()), int, frac })
    }

    /// Compares amounts: sign, then the number of integer digits, then the
    /// digits themselves (byte order is digit order; without trailing zeros a
    /// shorter fraction that is a prefix of a longer one is the smaller).
    fn cmp(&self, other: &Plain<'_>) -> Ordering {
        if self.negative != other.negative {
            return if self.negative { Ordering::Less } else { Ordering::Greater };
        }
        let magnitude = self
            .int
            .len()
            .cmp(&other.int.len())
            .then_with(|| self.int.as_bytes().cmp(other.int.as_bytes()))
            .then_with(|| self.frac.as_bytes().cmp(other.frac.as_bytes()));
        if self.negative {
            magnitude.reverse()
        } else {
            magnitude
        }
    }

    /// The normalized spelling, `-`, integer digits (`0` when none), `.` and
    /// the fraction when there is one: a slice of `s` (which `self` was parsed
    /// from) when it holds it in one piece, else a new string.
    fn render(&self, s: &'a str) -> Cow<'a, str> {
        let offset = |part: &str| part.as_ptr() as usize - s.as_ptr() as usize;
        let bytes = s.as_bytes();
        let int_start = offset(self.int);
        // The `0` of a zero integer part comes from the text when it has one (`0.5`, `-00`).
        let start = match self.int.is_empty() {
            false => Some(int_start),
            true => (int_start > 0 && bytes[int_start - 1] == b'0').then(|| int_start - 1),
        };
        let start = match (start, self.negative) {
            (Some(i), false) => Some(i),
            (Some(i), true) => (i > 0 && bytes[i - 1] == b'-').then(|| i - 1),
            (None, _) => None,
        };
        if let Some(start) = start {
            let end = if self.frac.is_empty() { int_start + self.int.len() } else { offset(self.frac) + self.frac.len() };
            return Cow::Borrowed(&s[start..end]);
        }
        let mut out = String::with_capacity(self.int.len() + self.frac.len() + 3);
        if self.negative {
            out.push('-');
        }
        out.push_str(if self.int.is_empty() { "0" } else { self.int });
        if !self.frac.is_empty() {
            out.push('.');
            out.push_str(self.frac);
        }
        Cow::Owned(out)
    }
}

/// A number as it compares: -inf < every finite number < inf < NaN < text
/// that is not a number (in a decimal; by its bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Num<'a> {
    NegInf,
    Finite(Plain<'a>),
    PosInf,
    NaN,
    Other(&'a str),
}

impl Num<'_> {
    fn cmp(&self, other: &Num<'_>) -> Ordering {
        fn class(n: &Num<'_>) -> u8 {
            match n {
                Num::NegInf => 0,
                Num::Finite(_) => 1,
                Num::PosInf => 2,
                Num::NaN => 3,
                Num::Other(_) => 4,
            }
        }
        match (self, other) {
            (Num::Finite(a), Num::Finite(b)) => a.cmp(b),
            (Num::Other(a), Num::Other(b)) => a.as_bytes().cmp(b.as_bytes()),
            _ => class(self).cmp(&class(other)),
        }
    }
}

fn decimal_num(d: &str) -> Num<'_> {
    if let Some(p) = Plain::parse(d) {
        return Num::Finite(p);
    }
    let t = d.trim();
    let is = |names: &[&str]| names.iter().any(|n| t.eq_ignore_ascii_case(n));
    if is(&["NaN"]) {
        Num::NaN
    } else if is(&["Infinity", "+Infinity", "inf", "+inf"]) {
        Num::PosInf
    } else if is(&["-Infinity", "-inf"]) {
        Num::NegInf
    } else {
        Num::Other(d)
    }
}

/// Room to spell an integer (on the stack) or a float while comparing.
#[derive(Default)]
struct NumText {
    int: [u8; 20],
    float: String,
}

/// A number value (Bool, Int, Float, Decimal) as it compares; `text` holds the
/// digits of an integer or a float.
fn num<'a>(v: &'a Value, text: &'a mut NumText) -> Num<'a> {
    let NumText { int, float } = text;
    match v {
        Value::Bool(b) => Num::Finite(Plain { negative: false, int: if *b { "1" } else { "" }, frac: "" }),
        Value::Int(i) => {
            let mut n = i.unsigned_abs();
            let mut at = int.len();
            while n > 0 {
                at -= 1;
                int[at] = b'0' + (n % 10) as u8;
                n /= 10;
            }
            let digits = std::str::from_utf8(&int[at..]).unwrap_or_default();
            Num::Finite(Plain { negative: *i < 0, int: digits, frac: "" })
        }
        Value::Float(f) if f.is_nan() => Num::NaN,
        Value::Float(f) if f.is_infinite() => {
            if *f > 0.0 {
                Num::PosInf
            } else {
                Num::NegInf
            }
        }
        Value::Float(f) => {
            use std::fmt::Write;
            float.clear();
            let _ = write!(float, "{f}");
            let float: &'a String = float;
            Plain::parse(float).map_or(Num::Other(float), Num::Finite)
        }
        Value::Decimal(d) => decimal_num(d),
        _ => Num::Other(""),
    }
}

/// Compares two numbers exactly (see [`Value::key_cmp`]). Integers, floats
/// and an integer with a float below 2⁵³ compare without spelling them; the
/// rest compare as decimal digits.
fn number_cmp(a: &Value, b: &Value) -> Ordering {
    fn int(v: &Value) -> Option<i64> {
        match v {
            Value::Int(i) => Some(*i),
            Value::Bool(b) => Some(*b as i64),
            _ => None,
        }
    }
    let fast = match (a, b) {
        (Value::Decimal(x), Value::Decimal(y)) if x == y => Some(Ordering::Equal),
        (Value::Float(x), Value::Float(y)) => Some(float_cmp(*x, *y)),
        (Value::Float(f), other) => int(other).and_then(|i| int_float_cmp(i, *f)).map(Ordering::reverse),
        (other, Value::Float(f)) => int(other).and_then(|i| int_float_cmp(i, *f)),
        (Value::Decimal(d), other) => int(other).and_then(|i| int_decimal_cmp(i, d)).map(Ordering::reverse),
        (other, Value::Decimal(d)) => int(other).and_then(|i| int_decimal_cmp(i, d)),
        _ => match (int(a), int(b)) {
            (Some(x), Some(y)) => Some(x.cmp(&y)),
            _ => None,
        },
    };
    fast.unwrap_or_else(|| {
        let (mut x, mut y) = (NumText::default(), NumText::default());
        num(a, &mut x).cmp(&num(b, &mut y))
    })
}

/// An integer and a plain decimal, without spelling the integer: the
/// decimal's integer digits as a number, then its fraction. None when the
/// decimal is not plain (NaN, infinity, text).
fn int_decimal_cmp(i: i64, d: &str) -> Option<Ordering> {
    let p = Plain::parse(d)?;
    if p.int.len() > 19 {
        // At least 10^19: beyond every i64.
        return Some(if p.negative { Ordering::Greater } else { Ordering::Less });
    }
    let magnitude = p.int.bytes().fold(0u64, |n, b| n * 10 + (b - b'0') as u64) as i128;
    let whole = if p.negative { -magnitude } else { magnitude };
    // The decimal lies strictly between `whole` and the next integer away from zero when it has a fraction.
    Some(match (i as i128).cmp(&whole) {
        Ordering::Equal if p.frac.is_empty() => Ordering::Equal,
        Ordering::Equal if p.negative => Ordering::Greater,
        Ordering::Equal => Ordering::Less,
        other => other,
    })
}

/// Two floats: their order is that of their shortest decimals (which are
/// monotonic in the value); -0.0 = 0.0; NaN equals NaN and follows everything.
fn float_cmp(x: f64, y: f64) -> Ordering {
    match (x.is_nan(), y.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        (false, false) => x.partial_cmp(&y).unwrap_or(Ordering::Equal),
    }
}

/// An integer and a float of magnitude below 9·10¹⁵ (< 2⁵³), where a float's
/// shortest decimal is its exact value when whole, and lies strictly between
/// two integers when not; None for any other float (compared as digits).
fn int_float_cmp(i: i64, f: f64) -> Option<Ordering> {
    if f.is_nan() || f.abs() >= 9.0e15 {
        return None;
    }
    let floor = f.floor();
    Some(match i.cmp(&(floor as i64)) {
        Ordering::Equal if f == floor => Ordering::Equal,
        Ordering::Equal => Ordering::Less,
        other => other,
    })
}

/// One spelling for times and timestamps, in which equal values are equal text:
///
/// - a value with an offset is an instant, spelled in UTC without a zone:
///   `2024-01-01 10:00:00+05:30`, `2024-01-01T04:30:00Z` and
///   `2024-01-01 04:30:00+00` are all `2024-01-01T04:30:00`;
/// - a value without an offset is a wall-clock value, never shifted: it equals
///   the instant with the same UTC reading (dualsync's sessions run in UTC, so
///   that is what a database makes of it when dualsync writes one into the other);
/// - a `T` between date and time, seconds always (`10:00` is `10:00:00`), no
///   trailing zeros in the fraction;
/// - a time of day with an offset (`timetz`) keeps it, as `±HH:MM`: it is not
///   an instant (`+00`, `Z` are dropped, as for timestamps).
///
/// In UTC, byte order is time order (for years of four digits). Text outside
/// that pattern (`infinity`, years BC) keeps its own spelling, with a `T` and
/// `Z` for a zero offset.
pub fn canonical_temporal(s: &str) -> Cow<'_, str> {
    let t = s.trim();
    match Clock::parse(t) {
        // Most values are already spelled so (PostgreSQL, MySQL, ISO text): a part of the text.
        Some(c) if c.as_written() => Cow::Borrowed(&t[..c.body_end]),
        Some(c) => match c.render() {
            Some(out) if out == s => Cow::Borrowed(s),
            Some(out) => Cow::Owned(out),
            None => other_temporal(s),
        },
        None => other_temporal(s),
    }
}

/// The UTC reading of a date and time with an offset, which is what a column
/// without zone must receive for it (`2024-01-01 10:00:00+05:30` →
/// `2024-01-01T04:30:00`), and what [`canonical_temporal`] compares it as.
/// None when `s` has no offset, or is not a plain date and time (a time of
/// day, `infinity`, years BC).
pub fn utc_reading(s: &str) -> Option<String> {
    let t = s.trim();
    // Most values have no offset: the bytes after the date say so without parsing.
    if !t.as_bytes().get(10..).is_some_and(|rest| rest.iter().any(|b| matches!(b, b'+' | b'-' | b'Z' | b'z'))) {
        return None;
    }
    let c = Clock::parse(t)?;
    if c.date.is_none() || c.offset.is_none() {
        return None;
    }
    c.render()
}

/// A plain `YYYY-MM-DD` date as days since 1970-01-01; None for anything else
/// (a time part, a year before 1 or after 9999, `infinity`, `BC`).
pub fn epoch_days(s: &str) -> Option<i64> {
    if s.len() != 10 {
        return None;
    }
    let c = Clock::parse(s)?;
    let (year, month, day) = c.date?;
    (1..=9999).contains(&year).then(|| days_from_civil(year, month, day))
}

/// A timestamp as microseconds since 1970-01-01 00:00:00 (the UTC instant
/// when it has an offset), and whether it had one. None for a date or time
/// alone, hour 24, more than six decimals, or a year before 1 or after 9999:
/// forms that only the database's own parser should interpret.
pub fn epoch_micros(s: &str) -> Option<(i64, bool)> {
    let c = Clock::parse(s)?;
    let (year, month, day) = c.date?;
    if !(1..=9999).contains(&year) || c.hour > 23 || c.frac.len() > 6 || s.len() == 10 {
        return None;
    }
    let frac = c.frac.bytes().chain(std::iter::repeat(b'0')).take(6).fold(0i64, |n, d| n * 10 + (d - b'0') as i64);
    let seconds = days_from_civil(year, month, day) * 86_400 + c.hour * 3600 + c.minute * 60 + c.second - c.offset.unwrap_or(0);
    Some((seconds * 1_000_000 + frac, c.offset.is_some()))
}

/// Microseconds since 1970-01-01 00:00:00 spelled as PostgreSQL's JSON spells
/// a timestamp (`2015-06-14T21:19:50.5`, `+00:00` appended for an instant,
/// ` BC` for years before 1): the inverse of [`epoch_micros`].
pub fn iso_from_epoch_micros(micros: i64, instant: bool) -> String {
    let (seconds, frac) = (micros.div_euclid(1_000_000), micros.rem_euclid(1_000_000));
    let (year, month, day) = civil_from_days(seconds.div_euclid(86_400));
    let time = seconds.rem_euclid(86_400);
    let mut out = String::with_capacity(32);
    push_date_time(&mut out, if year <= 0 { 1 - year } else { year }, month, day, time);
    if frac != 0 {
        out.push('.');
        push_digits(&mut out, frac, 6);
        // Not empty: the fraction has a digit other than zero.
        out.truncate(out.trim_end_matches('0').len());
    }
    if instant {
        out.push_str("+00:00");
    }
    if year <= 0 {
        out.push_str(" BC");
    }
    out
}

/// A time or timestamp taken apart:
/// `[YYYY-MM-DD[(T| )]]HH:MM[:SS[.fff]][ ][Z | ±HH[[:]MM[[:]SS]]]`.
struct Clock<'a> {
    date: Option<(i64, u32, u32)>,
    /// A negative time (MySQL `TIME` is a duration).
    negative: bool,
    hour: i64,
    minute: i64,
    second: i64,
    /// Without trailing zeros.
    frac: &'a str,
    /// Seconds east of UTC, when the value has an offset.
    offset: Option<i64>,
    /// Where the date and time end (before the offset).
    body_end: usize,
    /// Whether the text up to `body_end` is the canonical spelling (`T`, four-digit
    /// year, two-digit hour, seconds, no trailing zeros in the fraction).
    canonical_body: bool,
}

impl<'a> Clock<'a> {
    fn parse(t: &'a str) -> Option<Clock<'a>> {
        let b = t.as_bytes();
        let mut i = 0;
        let digits = |i: &mut usize, min: usize, max: usize| -> Option<i64> {
            let start = *i;
            let mut n = 0i64;
            while *i < b.len() && *i - start < max && b[*i].is_ascii_digit() {
                n = n * 10 + (b[*i] - b'0') as i64;
                *i += 1;
            }
            (*i - start >= min).then_some(n)
        };
        let eat = |i: &mut usize, c: u8| -> bool {
            let hit = b.get(*i) == Some(&c);
            *i += hit as usize;
            hit
        };
        let year_digits = b.iter().take_while(|c| c.is_ascii_digit()).count();
        let mut date = None;
        let mut canonical_body = true;
        if year_digits >= 4 && b.get(year_digits) == Some(&b'-') {
            let year = digits(&mut i, 4, 6)?;
            canonical_body &= i == 4;
            eat(&mut i, b'-');
            let month = digits(&mut i, 2, 2)? as u32;
            let day = eat(&mut i, b'-').then_some(()).and_then(|_| digits(&mut i, 2, 2))? as u32;
            if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
                return None;
            }
            date = Some((year, month, day));
            if i == b.len() {
                let (negative, frac, offset) = (false, "", None);
                return Some(Clock { date, negative, hour: 0, minute: 0, second: 0, frac, offset, body_end: i, canonical_body: false });
            }
            canonical_body &= b[i] == b'T';
            if !matches!(b[i], b'T' | b't' | b' ') {
                return None;
            }
            i += 1;
        }
        let negative = date.is_none() && eat(&mut i, b'-');
        let hour_start = i;
        let hour = digits(&mut i, 1, if date.is_some() { 2 } else { 3 })?;
        canonical_body &= !negative && (i - hour_start == 2 || (i - hour_start == 3 && b[hour_start] != b'0'));
        let minute = eat(&mut i, b':').then_some(()).and_then(|_| digits(&mut i, 2, 2))?;
        let second = if eat(&mut i, b':') {
            digits(&mut i, 2, 2)?
        } else {
            canonical_body = false;
            0
        };
        let frac = if eat(&mut i, b'.') {
            let start = i;
            i += b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
            let frac = t[start..i].trim_end_matches('0');
            canonical_body &= !frac.is_empty() && frac.len() == i - start;
            if i == start {
                return None;
            }
            frac
        } else {
            ""
        };
        let body_end = i;
        let spaced = eat(&mut i, b' ');
        let offset = match b.get(i) {
            Some(b'Z' | b'z') => {
                i += 1;
                Some(0)
            }
            Some(&sign @ (b'+' | b'-')) => {
                i += 1;
                let h = digits(&mut i, 2, 2)?;
                let m = if i < b.len() {
                    eat(&mut i, b':');
                    digits(&mut i, 2, 2)?
                } else {
                    0
                };
                let s = if i < b.len() {
                    eat(&mut i, b':');
                    digits(&mut i, 2, 2)?
                } else {
                    0
                };
                if h > 23 || m > 59 || s > 59 {
                    return None;
                }
                let seconds = h * 3600 + m * 60 + s;
                Some(if sign == b'-' { -seconds } else { seconds })
            }
            _ if spaced => return None,
            _ => None,
        };
        let whole_day = date.is_some() && hour == 24 && minute == 0 && second == 0 && frac.is_empty();
        if i != b.len() || minute > 59 || second > 59 || (date.is_some() && hour > 23 && !whole_day) {
            return None;
        }
        Some(Clock { date, negative, hour, minute, second, frac, offset, body_end, canonical_body })
    }

    /// The canonical spelling is the text up to the offset: nothing to shift or respell.
    fn as_written(&self) -> bool {
        self.canonical_body && self.offset.unwrap_or(0) == 0 && !(self.date.is_some() && self.hour == 24)
    }

    fn render(&self) -> Option<String> {
        let mut out = String::with_capacity(32);
        let offset = self.offset.unwrap_or(0);
        match self.date {
            Some((year, month, day)) => {
                let seconds = self.hour * 3600 + self.minute * 60 + self.second - offset;
                let (days, seconds) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
                let (year, month, day) = match days {
                    0 => (year, month, day),
                    _ => civil_from_days(days_from_civil(year, month, day) + days),
                };
                if !(1..=999_999).contains(&year) {
                    return None;
                }
                push_date_time(&mut out, year, month, day, seconds);
            }
            None => {
                let zero = self.hour == 0 && self.minute == 0 && self.second == 0 && self.frac.is_empty();
                if self.negative && !zero {
                    out.push('-');
                }
                push_digits(&mut out, self.hour, 2);
                out.push(':');
                push_digits(&mut out, self.minute, 2);
                out.push(':');
                push_digits(&mut out, self.second, 2);
            }
        }
        if !self.frac.is_empty() {
            out.push('.');
            out.push_str(self.frac);
        }
        if self.date.is_none() && offset != 0 {
            let o = offset.abs();
            out.push(if offset < 0 { '-' } else { '+' });
            push_digits(&mut out, o / 3600, 2);
            out.push(':');
            push_digits(&mut out, o / 60 % 60, 2);
            if o % 60 != 0 {
                out.push(':');
                push_digits(&mut out, o % 60, 2);
            }
        }
        Some(out)
    }
}

/// `YYYY-MM-DDTHH:MM:SS` of a date and the seconds since its midnight.
fn push_date_time(out: &mut String, year: i64, month: u32, day: u32, seconds: i64) {
    push_digits(out, year, 4);
    out.push('-');
    push_digits(out, month as i64, 2);
    out.push('-');
    push_digits(out, day as i64, 2);
    out.push('T');
    push_digits(out, seconds / 3600, 2);
    out.push(':');
    push_digits(out, seconds / 60 % 60, 2);
    out.push(':');
    push_digits(out, seconds % 60, 2);
}

/// `n` (not negative) in decimal, zero-padded to `width` digits.
fn push_digits(out: &mut String, n: i64, width: usize) {
    let mut buf = [b'0'; 20];
    let (mut n, mut at) = (n.unsigned_abs(), buf.len());
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.push_str(std::str::from_utf8(&buf[at.min(buf.len() - width)..]).unwrap_or_default());
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + (month <= 2) as i64;
    (year, month, day)
}

/// Temporal text outside [`Clock`]'s pattern (`infinity`, `… BC`): a `T`
/// between date and time, no trailing zeros in the fraction, `Z` for UTC.
fn other_temporal(s: &str) -> Cow<'_, str> {
    let t = s.trim();
    let (body, zone) = match t.rfind(['+', 'Z']).or_else(|| t.rfind('-').filter(|&i| i > 10)) {
        Some(i) if i >= 8 => (&t[..i], &t[i..]),
        _ => (t, ""),
    };
    let zone = match zone {
        "Z" | "+00" | "+00:00" | "+0000" | "-00:00" => "Z",
        z => z,
    };
    let mut out = body.replacen(' ', "T", 1);
    if let Some(dot) = out.rfind('.') {
        if out[dot + 1..].bytes().all(|b| b.is_ascii_digit()) {
            let keep = out[..].trim_end_matches('0').len();
            out.truncate(if keep == dot + 1 { dot } else { keep });
        }
    }
    out.push_str(zone);
    if out == s {
        Cow::Borrowed(s)
    } else {
        Cow::Owned(out)
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The bytes of lower- or upper-case hex text (as `hex` writes it).
pub fn unhex(s: &str) -> Vec<u8> {
    (0..s.len() / 2).filter_map(|i| u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_counts_of_dates_and_timestamps() {
        assert_eq!(epoch_days("1970-01-01"), Some(0));
        assert_eq!(epoch_days("2000-01-01"), Some(10_957));
        assert_eq!(epoch_days("1969-12-31"), Some(-1));
        assert_eq!(epoch_days("2024-02-30"), None);
        assert_eq!(epoch_days("2024-02-01 10:00"), None);
        assert_eq!(epoch_days("infinity"), None);
        assert_eq!(epoch_micros("2000-01-01T00:00:00"), Some((946_684_800_000_000, false)));
        assert_eq!(epoch_micros("2000-01-01 00:00:01.5"), Some((946_684_801_500_000, false)));
        assert_eq!(epoch_micros("2000-01-01 05:30:00+05:30"), Some((946_684_800_000_000, true)));
        assert_eq!(epoch_micros("1969-12-31T23:59:59.999999Z"), Some((-1, true)));
        assert_eq!(epoch_micros("2000-01-01 00:00:00.1234567"), None, "beyond microseconds: the database rounds");
        assert_eq!(epoch_micros("2000-01-01 24:00:00"), None);
        assert_eq!(epoch_micros("2000-01-01"), None);
        assert_eq!(epoch_micros("12:00:00"), None);
        for (micros, instant, spelled) in [
            (1_434_316_790_500_000, false, "2015-06-14T21:19:50.5"),
            (946_684_800_000_001, false, "2000-01-01T00:00:00.000001"),
            (946_684_800_120_000, true, "2000-01-01T00:00:00.12+00:00"),
            (-62_135_596_800_000_000, false, "0001-01-01T00:00:00"),
            (-1, false, "1969-12-31T23:59:59.999999"),
            (253_402_300_800_000_000, false, "10000-01-01T00:00:00"),
        ] {
            assert_eq!(iso_from_epoch_micros(micros, instant), spelled);
        }
        // 44 BC is year -43 in the proleptic calendar.
        let ides = (days_from_civil(-43, 3, 15) * 86_400 + 36_000) * 1_000_000;
        assert_eq!(iso_from_epoch_micros(ides, true), "0044-03-15T10:00:00+00:00 BC");
    }

    #[test]
    fn null_is_not_empty_text() {
        assert!(!Value::Null.same_as(&Value::Text(String::new())));
        assert!(Value::Null.same_as(&Value::Null));
    }

    #[test]
    fn numbers_compare_by_amount_not_storage() {
        assert!(Value::Int(5).same_as(&Value::Float(5.0)));
        assert!(Value::Decimal("1000.50".into()).same_as(&Value::Float(1000.5)));
        assert!(Value::Decimal("-0.00".into()).same_as(&Value::Int(0)));
        assert!(!Value::Int(1).same_as(&Value::Text("1".into())));
        assert!(!Value::Decimal("0.1".into()).same_as(&Value::Decimal("0.10000000000000000001".into())));
    }

    #[test]
    fn timestamps_compare_by_instant_spelling() {
        let ts = |s: &str| Value::Timestamp(s.into());
        assert!(ts("2026-01-31 12:00:00").same_as(&ts("2026-01-31T12:00:00")));
        assert!(ts("2026-01-31T12:00:00.500Z").same_as(&ts("2026-01-31 12:00:00.5+00")));
        assert!(ts("2026-01-31T12:00:00.000").same_as(&ts("2026-01-31T12:00:00")));
        assert!(!ts("2026-01-31T12:00:00+02:00").same_as(&ts("2026-01-31T12:00:00Z")));
        assert!(Value::Time("12:00:00.10".into()).same_as(&Value::Time("12:00:00.1".into())));
        assert!(!ts("2026-01-31T12:00:01").same_as(&ts("2026-01-31T12:00:00")));
    }

    #[test]
    fn text_is_compared_byte_for_byte() {
        assert!(!Value::Text("a".into()).same_as(&Value::Text("a ".into())));
        assert!(!Value::Text("é".into()).same_as(&Value::Text("e\u{301}".into())));
    }

    #[test]
    fn key_order_matches_binary_collation() {
        let mut v = vec![
            Value::Text("b".into()),
            Value::Text("B".into()),
            Value::Int(10),
            Value::Null,
            Value::Float(2.5),
            Value::Text("ä".into()),
            Value::Bytes(vec![0]),
        ];
        v.sort_by(|a, b| a.key_cmp(b));
        assert_eq!(
            v,
            vec![
                Value::Null,
                Value::Float(2.5),
                Value::Int(10),
                Value::Text("B".into()),
                Value::Text("b".into()),
                Value::Text("ä".into()),
                Value::Bytes(vec![0]),
            ]
        );
    }

    fn dec(s: &str) -> Value {
        Value::Decimal(s.into())
    }

    fn hashes_equal(a: &Value, b: &Value) -> bool {
        crate::row::column_hashes([a]) == crate::row::column_hashes([b]) && crate::row::content_hash([a]) == crate::row::content_hash([b])
    }

    /// Equality, order and hashes agree for every pair: `same_as` ⇔ `key_cmp` is
    /// Equal ⇔ equal hashes; the order is antisymmetric and transitive.
    fn assert_consistent(values: &[Value]) {
        for a in values {
            for b in values {
                let o = a.key_cmp(b);
                assert_eq!(o, b.key_cmp(a).reverse(), "{a:?} vs {b:?}");
                assert_eq!(o.is_eq(), a.same_as(b), "key_cmp and same_as disagree on {a:?} vs {b:?}");
                assert_eq!(a.same_as(b), hashes_equal(a, b), "same_as and the hashes disagree on {a:?} vs {b:?}");
                assert_eq!(a.same_as(b), a.canonical() == b.canonical(), "{a:?} vs {b:?}");
                for c in values {
                    if o.is_le() && b.key_cmp(c).is_le() {
                        assert!(a.key_cmp(c).is_le(), "not transitive: {a:?} <= {b:?} <= {c:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn neighbours_of_2_pow_53_are_different_keys() {
        let (a, b) = (dec("9007199254740992"), dec("9007199254740993"));
        assert_eq!(a.key_cmp(&b), Ordering::Less);
        assert_eq!(b.key_cmp(&a), Ordering::Greater);
        assert!(!a.same_as(&b));
        assert!(!hashes_equal(&a, &b));
        // Across storage types: a PostgreSQL numeric(20) key against a SQLite INTEGER key.
        assert_eq!(Value::Int(9007199254740993).key_cmp(&a), Ordering::Greater);
        assert_eq!(Value::Int(9007199254740993).key_cmp(&b), Ordering::Equal);
        assert!(Value::Int(9007199254740993).same_as(&b));
        assert_eq!(Value::Float(9007199254740992.0).key_cmp(&Value::Int(9007199254740993)), Ordering::Less);
        assert!(Value::Float(9007199254740992.0).same_as(&a));
        // Beyond i64: numeric(20) holds up to 10^20 - 1.
        assert_eq!(dec("99999999999999999998").key_cmp(&dec("99999999999999999999")), Ordering::Less);
        assert_eq!(Value::Int(i64::MAX).key_cmp(&dec("9223372036854775808")), Ordering::Less);
        assert_eq!(Value::Int(i64::MIN).key_cmp(&dec("-9223372036854775809")), Ordering::Greater);
        assert_eq!(Value::Int(i64::MIN).key_cmp(&dec("-9223372036854775808")), Ordering::Equal);
    }

    #[test]
    fn long_decimals_compare_by_every_digit() {
        // DECIMAL(65,30): differing in the 30th fractional digit.
        let int = "12345678901234567890123456789012345";
        let a = dec(&format!("{int}.123456789012345678901234567891"));
        let b = dec(&format!("{int}.123456789012345678901234567892"));
        assert_eq!(a.key_cmp(&b), Ordering::Less);
        assert!(!a.same_as(&b));
        assert!(!hashes_equal(&a, &b));
        assert!(a.same_as(&dec(&format!("{int}.12345678901234567890123456789100"))));
        // NUMERIC(1000, 500).
        let big = |last: char| dec(&format!("-{}.{}{last}", "9".repeat(500), "0".repeat(499)));
        assert_eq!(big('2').key_cmp(&big('1')), Ordering::Less, "more negative");
        assert!(!big('1').same_as(&big('2')));
        assert!(big('1').same_as(&dec(&format!("-{}.{}1000", "9".repeat(500), "0".repeat(499)))));
        assert_consistent(&[a, b, big('1'), big('2'), Value::Int(7)]);
    }

    #[test]
    fn five_is_five_point_oh_is_five_point_oh_oh() {
        let fives = [Value::Int(5), Value::Float(5.0), dec("5"), dec("5.0"), dec("5.00"), dec("+005.000"), dec(" 5 "), dec("5.")];
        for a in &fives {
            for b in &fives {
                assert!(a.same_as(b), "{a:?} = {b:?}");
                assert_eq!(a.key_cmp(b), Ordering::Equal, "{a:?} = {b:?}");
                assert!(hashes_equal(a, b), "{a:?} and {b:?} hash alike");
            }
        }
        assert!(Value::Bool(true).same_as(&dec("1.000")));
        assert!(Value::Bool(false).same_as(&dec("-0.0")));
        assert!(!dec("5.000000000000000000000000000001").same_as(&Value::Int(5)));
        assert!(!Value::Float(5.000000000000001).same_as(&Value::Int(5)));
    }

    #[test]
    fn negative_numbers_order_by_amount() {
        // -10 < -9.5 < -0 = 0 < 0.001, whatever the storage type.
        let mut v = vec![
            dec("0.001"),
            Value::Float(0.0),
            dec("-0"),
            Value::Float(-9.5),
            Value::Int(-10),
            Value::Float(-0.0),
            dec("-9.50"),
            Value::Int(0),
            dec("-10.0"),
            Value::Float(0.001),
        ];
        v.sort_by(|a, b| a.key_cmp(b));
        let amount = |v: &Value| match v.canonical() {
            Canonical::Number(n) => n.into_owned(),
            other => panic!("{other:?}"),
        };
        let amounts: Vec<String> = v.iter().map(amount).collect();
        assert_eq!(amounts, ["-10", "-10", "-9.5", "-9.5", "0", "0", "0", "0", "0.001", "0.001"]);
        assert!(dec("-0").same_as(&Value::Int(0)));
        assert!(Value::Float(-0.0).same_as(&dec("0.000")));
        assert_eq!(dec("-0.5").key_cmp(&dec("-0.05")), Ordering::Less);
        assert_eq!(dec("-1").key_cmp(&dec("-0.99999999999999999999")), Ordering::Less);
        assert_consistent(&v);
    }

    #[test]
    fn mixed_integers_decimals_and_floats_sort_by_amount() {
        let mut v = vec![
            Value::Float(2.5),
            dec("2.4999999999999999999999"),
            Value::Int(3),
            dec("2.5"),
            Value::Float(1e300),
            dec(&format!("1{}", "0".repeat(300))),
            dec(&format!("1{}1", "0".repeat(299))),
            Value::Float(f64::INFINITY),
            dec("-Infinity"),
            Value::Float(f64::NAN),
            dec("NaN"),
            dec("Infinity"),
            Value::Float(-1e-7),
            dec("-0.0000001"),
            Value::Int(i64::MIN),
            Value::Float(0.1),
            dec("0.1"),
            dec("0.10000000000000000001"),
            Value::Bool(true),
            Value::Float(9.0e15),
            Value::Int(9_000_000_000_000_001),
            // 2^60 as a float is the number its shortest decimal spells: 1152921504606847000.
            Value::Float(1152921504606846976.0),
            Value::Int(1152921504606846976),
            dec("1152921504606847000"),
        ];
        v.sort_by(|a, b| a.key_cmp(b));
        let shown: Vec<String> = v.iter().map(|v| v.display().into_owned()).collect();
        let e300 = format!("1{}", "0".repeat(300));
        let e300_1 = format!("1{}1", "0".repeat(299));
        assert_eq!(
            shown,
            [
                "-Infinity",
                "-9223372036854775808",
                "-0.0000001",
                "-0.0000001",
                "0.1",
                "0.1",
                "0.10000000000000000001",
                "1",
                "2.4999999999999999999999",
                "2.5",
                "2.5",
                "3",
                "9000000000000000",
                "9000000000000001",
                "1152921504606846976",
                "1152921504606847000",
                "1152921504606847000",
                &e300,
                &e300,
                &e300_1,
                "inf",
                "Infinity",
                "NaN",
                "NaN",
            ]
        );
        assert!(Value::Float(f64::INFINITY).same_as(&dec("Infinity")));
        assert!(Value::Float(f64::NAN).same_as(&dec("NaN")));
        assert!(!Value::Int(1152921504606846976).same_as(&Value::Float(1152921504606846976.0)));
        assert_consistent(&v);
    }

    #[test]
    fn random_decimals_order_as_scaled_integers() {
        // A reference: amounts with at most 8 decimals as i128 multiples of 10^-8.
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut values = Vec::new();
        for _ in 0..400 {
            let int = (next() % 10u64.pow((next() % 19) as u32 + 1)) as i128;
            let frac = (next() % 100_000_000) as i128;
            let negative = next() % 3 == 0;
            let scaled = if negative { -(int * 100_000_000 + frac) } else { int * 100_000_000 + frac };
            let text = format!("{}{}.{:08}{}", if negative { "-" } else { "" }, int, frac, "0".repeat((next() % 3) as usize));
            let value = match next() % 4 {
                0 if frac == 0 && int <= i64::MAX as i128 => Value::Int(scaled as i64 / 100_000_000),
                _ => dec(&text),
            };
            values.push((scaled, value));
        }
        for (x, a) in &values {
            for (y, b) in &values {
                assert_eq!(a.key_cmp(b), x.cmp(y), "{a:?} vs {b:?}");
                assert_eq!(a.same_as(b), x == y, "{a:?} vs {b:?}");
            }
        }
    }

    #[test]
    fn equal_numbers_hash_alike() {
        let same = [
            (Value::Int(9007199254740993), dec("9007199254740993.000")),
            (Value::Float(0.1), dec("0.1000")),
            (Value::Float(-2.5), dec("-002.50")),
            (Value::Float(1e-7), dec("0.0000001")),
            (Value::Bool(true), Value::Int(1)),
            (dec("-0.000"), Value::Int(0)),
            (dec("Infinity"), Value::Float(f64::INFINITY)),
        ];
        for (a, b) in &same {
            assert!(a.same_as(b), "{a:?} = {b:?}");
            assert!(hashes_equal(a, b), "{a:?} and {b:?} hash alike");
        }
        assert_ne!(crate::row::column_hashes([&dec("0.100000000000000000001")]), crate::row::column_hashes([&dec("0.1")]));
        assert_ne!(crate::row::column_hashes([&dec("9007199254740993")]), crate::row::column_hashes([&dec("9007199254740992")]));
    }

    #[test]
    fn normalized_decimals_borrow_their_text() {
        for (text, normal) in
            [("5.00", "5"), ("-0.50", "-0.5"), ("+5", "5"), ("000", "0"), ("-0", "0"), ("0.5", "0.5"), (" 12.30 ", "12.3"), ("5.", "5")]
        {
            let n = normalize_decimal(text);
            assert_eq!(n, normal);
            assert!(matches!(n, Cow::Borrowed(_)), "{text:?} needs no allocation");
        }
        for (text, normal) in [(".5", "0.5"), ("-.5", "-0.5"), ("-007.5", "-7.5"), (".000", "0")] {
            assert_eq!(normalize_decimal(text), normal);
        }
        assert_eq!(normalize_decimal("1e5"), "1e5", "not a plain decimal: kept");
        assert_eq!(normalize_decimal("1.2.3"), "1.2.3");
    }

    #[test]
    fn instants_compare_in_utc() {
        let ts = |s: &str| Value::Timestamp(s.into());
        let same = ["2024-01-01 10:00:00+05:30", "2024-01-01T04:30:00Z", "2024-01-01 04:30:00+00", "2023-12-31T23:30:00-05:00"];
        for a in same {
            for b in same {
                assert!(ts(a).same_as(&ts(b)), "{a} = {b}");
                assert_eq!(ts(a).key_cmp(&ts(b)), Ordering::Equal);
                assert!(hashes_equal(&ts(a), &ts(b)), "{a} and {b} hash alike");
            }
            assert_eq!(canonical_temporal(a), "2024-01-01T04:30:00");
        }
        assert!(ts("2024-01-01T10:00:00.500+05:30").same_as(&ts("2024-01-01 04:30:00.5Z")));
        assert!(ts("2024-01-01T10:00:00+0530").same_as(&ts("2024-01-01T04:30:00+00:00")));
        assert!(ts("1850-01-01T05:53:28+05:53:28").same_as(&ts("1850-01-01T00:00:00+00")), "offsets in seconds");
        // Across days, months, a leap day and a year.
        assert_eq!(canonical_temporal("2024-03-01T02:00:00+05:30"), "2024-02-29T20:30:00");
        assert_eq!(canonical_temporal("2023-03-01T02:00:00+05:30"), "2023-02-28T20:30:00");
        assert_eq!(canonical_temporal("2024-12-31T22:00:00.25-03:00"), "2025-01-01T01:00:00.25");
        assert_eq!(canonical_temporal("2024-06-30 24:00:00"), "2024-07-01T00:00:00");
        // Different instants stay different, and sort in time order.
        assert!(!ts("2024-01-01T10:00:00+05:30").same_as(&ts("2024-01-01T10:00:00+05:00")));
        let mut v = vec![ts("2024-01-01T05:00:00+00:00"), ts("2024-01-01T04:30:00.5Z"), ts("2024-01-01T10:00:00+05:30")];
        v.sort_by(|a, b| a.key_cmp(b));
        assert_eq!(v, [ts("2024-01-01T10:00:00+05:30"), ts("2024-01-01T04:30:00.5Z"), ts("2024-01-01T05:00:00+00:00")]);
    }

    #[test]
    fn utc_readings_of_values_with_an_offset() {
        assert_eq!(utc_reading("2024-01-01 10:00:00+05:30").as_deref(), Some("2024-01-01T04:30:00"));
        assert_eq!(utc_reading("2024-01-01T10:00:00.123456+05:30").as_deref(), Some("2024-01-01T04:30:00.123456"));
        assert_eq!(utc_reading("2024-12-31T22:00:00.5-03:00").as_deref(), Some("2025-01-01T01:00:00.5"));
        assert_eq!(utc_reading("2024-01-01T04:30:00Z").as_deref(), Some("2024-01-01T04:30:00"));
        assert_eq!(utc_reading("2024-01-01 04:30:00+00").as_deref(), Some("2024-01-01T04:30:00"));
        for none in
            ["2024-01-01 10:00:00", "2024-01-01", "12:00:00+05:30", "infinity", "0044-03-15 12:00:00+00:00 BC", "2024-02-30T10:00:00Z"]
        {
            assert_eq!(utc_reading(none), None, "{none}");
        }
        for s in ["2024-01-01 10:00:00+05:30", "2023-12-31T23:30:00-05:00", "2024-03-01T02:00:00+05:30"] {
            let utc = utc_reading(s).unwrap();
            assert!(Value::Timestamp(utc.clone()).same_as(&Value::Timestamp(s.into())), "{s} = {utc}");
        }
    }

    #[test]
    fn wall_clock_values_are_never_shifted() {
        let ts = |s: &str| Value::Timestamp(s.into());
        assert_eq!(canonical_temporal("2024-01-01 10:00:00"), "2024-01-01T10:00:00");
        assert!(matches!(canonical_temporal("2024-01-01T10:00:00.5"), Cow::Borrowed(_)));
        // PostgreSQL's UTC spelling needs no allocation either: the part before the offset.
        assert!(matches!(canonical_temporal("2024-01-01T04:30:00.5+00:00"), Cow::Borrowed("2024-01-01T04:30:00.5")));
        assert!(!ts("2024-01-01 10:00:00").same_as(&ts("2024-01-01T10:00:00+05:30")));
        // The UTC reading of an instant, as a UTC session writes it into a column without zone.
        assert!(ts("2024-01-01 04:30:00").same_as(&ts("2024-01-01T10:00:00+05:30")));
        assert!(ts("2024-01-01 10:00").same_as(&ts("2024-01-01T10:00:00.000")));
        assert!(ts("2024-01-01").same_as(&ts("2024-01-01T00:00:00")));
        // Times of day keep a non-zero offset (not instants); spellings of it agree.
        let time = |s: &str| Value::Time(s.into());
        assert!(time("12:00:00+05").same_as(&time("12:00:00+05:00")));
        assert!(!time("12:00:00+05:30").same_as(&time("06:30:00")));
        assert!(time("12:00+00").same_as(&time("12:00:00")));
        assert!(time("-838:59:59.000").same_as(&time("-838:59:59")));
        // What is not a plain date and time keeps its spelling.
        assert_eq!(canonical_temporal("infinity"), "infinity");
        assert_eq!(canonical_temporal("0044-03-15 12:00:00+00:00 BC"), "0044-03-15T12:00:00+00:00 BC");
        assert_eq!(canonical_temporal("2024-02-30T10:00:00"), "2024-02-30T10:00:00");
    }

    #[test]
    fn json_round_trip_of_keys() {
        for v in [Value::Int(-3), Value::Text("A\"b,\n".into()), Value::Null, Value::Bytes(vec![1, 255])] {
            assert_eq!(Value::from_json(&v.to_json()), v);
        }
    }
}
