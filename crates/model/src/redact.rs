//! `redact = true`: what stands for a hidden column's value wherever dualsync
//! would keep or show it (the error log, the conflict queue, output).

use sha2::{Digest, Sha256};

/// `[redacted sha256:1a2b3c4d5e6f]`: the first 48 bits of the value's SHA-256.
/// Equal values show the same, so an operator can tell "the same value as
/// before" without seeing it; a value from a small set (a yes/no, a grade)
/// can still be guessed by hashing every candidate.
pub fn redacted(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    let hex: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
    format!("[redacted sha256:{hex}]")
}

/// `message` with each whole occurrence of `value` (not inside a longer
/// word) replaced by its hash: servers quote refused values in their
/// messages ("Failing row contains (…)", "Key (email)=(…)").
pub fn redact_in(message: &str, value: &str) -> String {
    if value.is_empty() || !message.contains(value) {
        return message.to_string();
    }
    let word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
    let mut out = String::with_capacity(message.len());
    let mut from = 0;
    for (at, _) in message.match_indices(value) {
        let before = message[..at].chars().last();
        let after = message[at + value.len()..].chars().next();
        let inside_a_word = (word(before) && word(value.chars().next())) || (word(after) && word(value.chars().last()));
        out.push_str(&message[from..at]);
        out.push_str(&if inside_a_word { value.to_string() } else { redacted(value) });
        from = at + value.len();
    }
    out.push_str(&message[from..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_becomes_its_hash_only_where_it_stands_alone() {
        let h = redacted("4111 1111");
        assert_eq!(h.len(), "[redacted sha256:".len() + 12 + 1);
        assert_eq!(h, redacted("4111 1111"), "equal values show the same");
        let msg = "new row violates check constraint (Failing row contains (A1, 4111 1111, x4111 1111y)).";
        assert_eq!(
            redact_in(msg, "4111 1111"),
            format!("new row violates check constraint (Failing row contains (A1, {h}, x4111 1111y)).")
        );
        assert_eq!(redact_in("row 1 refused", "1"), "row [redacted sha256:6b86b273ff34] refused");
        assert_eq!(redact_in("table t1 refused", "1"), "table t1 refused", "inside a word it is another thing");
    }
}
