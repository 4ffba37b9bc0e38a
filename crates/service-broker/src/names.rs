//! Names of what the broker creates, derived from ids the platform (or an
//! attacker) chooses: ids are validated, names contain only `[a-z0-9_]`
//! and are still quoted wherever they are used. Passwords come from the
//! OS's CSPRNG.

use sha2::{Digest, Sha256};

use crate::Error;

/// Longest instance or binding id accepted.
pub const MAX_ID_LEN: usize = 128;

/// An instance or binding id: 1 to 128 characters of `A-Z a-z 0-9 - _ .`
/// (CF sends GUIDs).
pub fn validate_id(what: &str, id: &str) -> Result<(), Error> {
    let ok = !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(Error::BadRequest(format!(
            "invalid {what} id: 1 to {MAX_ID_LEN} characters of A-Z, a-z, 0-9, '-', '_', '.'"
        )))
    }
}

fn short_hash(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    hex::encode(&h.finalize()[..4])
}

fn sanitized(id: &str, max: usize) -> String {
    id.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .take(max)
        .collect()
}

/// The database / vhost / key-prefix base of an instance: `cf_` + the
/// id (lowercased, other characters as `_`, at most 32) + `_` + 8 hex
/// digits of its SHA-256 (so ids differing only in case or punctuation
/// differ). At most 44 characters: fits PostgreSQL's 63 and MySQL's 64.
pub fn instance_name(instance_id: &str) -> String {
    format!(
        "cf_{}_{}",
        sanitized(instance_id, 32),
        short_hash(&[instance_id])
    )
}

/// The user (role) of a binding: `cfu_` + the binding id (as above, at
/// most 32) + `_` + 8 hex digits of the SHA-256 of instance and binding
/// ids. At most 45 characters (MariaDB user names: 80).
pub fn binding_user(instance_id: &str, binding_id: &str) -> String {
    format!(
        "cfu_{}_{}",
        sanitized(binding_id, 32),
        short_hash(&[instance_id, binding_id])
    )
}

/// A random password: 32 characters of `A-Za-z0-9` (about 190 bits),
/// safe in URLs, SQL literals and Redis ACL rules.
pub fn password() -> Result<String, Error> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut out = String::with_capacity(32);
    while out.len() < 32 {
        let mut buf = [0u8; 64];
        getrandom::fill(&mut buf).map_err(|e| Error::Internal(format!("no randomness: {e}")))?;
        for b in buf {
            // 248 = 4 * 62: no modulo bias.
            if b < 248 && out.len() < 32 {
                out.push(ALPHABET[(b % 62) as usize] as char);
            }
        }
    }
    Ok(out)
}

/// `"name"` for PostgreSQL (embedded `"` doubled).
pub fn pg_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `'text'` for SQL (embedded `'` doubled, backslashes doubled for MySQL).
pub fn sql_literal(text: &str) -> String {
    format!("'{}'", text.replace('\\', "\\\\").replace('\'', "''"))
}

/// `` `name` `` for MySQL (embedded `` ` `` doubled).
pub fn my_ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// A database name in a MySQL GRANT, where `_` and `%` are wildcards:
/// escaped so the grant covers exactly that database.
pub fn my_grant_db(name: &str) -> String {
    my_ident(
        &name
            .replace('\\', "\\\\")
            .replace('_', "\\_")
            .replace('%', "\\%"),
    )
}

/// Percent-encodes everything but RFC 3986 unreserved characters (for a
/// URL's path segment or userinfo).
pub fn pct(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_validated() {
        assert!(validate_id("instance", "6f1c2a1e-0b7e-4d9a-9d3b-1b2c3d4e5f60").is_ok());
        for bad in ["", "a b", "x\"; DROP", "a/b", "é", &"a".repeat(129)] {
            assert!(validate_id("instance", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn names_are_safe_bounded_and_distinct() {
        let a = instance_name("ABC-def.1");
        assert!(a.starts_with("cf_abc_def_1_"), "{a}");
        assert_ne!(instance_name("abc"), instance_name("ABC"));
        let long = instance_name(&"x".repeat(128));
        assert!(long.len() <= 44, "{long}");
        let u = binding_user("i", &"y".repeat(128));
        assert!(u.len() <= 45 && u.starts_with("cfu_"));
        assert_ne!(binding_user("i1", "b"), binding_user("i2", "b"));
        for n in [a, long, u] {
            assert!(n
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'));
        }
    }

    #[test]
    fn passwords_are_long_and_random() {
        let a = password().expect("pw");
        let b = password().expect("pw");
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a, b);
    }

    #[test]
    fn quoting() {
        assert_eq!(pg_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(sql_literal("it's\\"), "'it''s\\\\'");
        assert_eq!(my_grant_db("cf_a"), "`cf\\_a`");
        assert_eq!(pct("a b/c"), "a%20b%2Fc");
    }
}
