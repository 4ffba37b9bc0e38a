//! The request path that routes are matched against (issue 13, item 7).
//!
//! A client must not reach the root route's app with a path that the
//! `/admin` route's app would also take for `/admin` (or the other way
//! round) by spelling it differently. Before the route lookup the path is
//! normalized as RFC 3986 §6.2.2 says, plus merged slashes as nginx does:
//!
//! 1. percent-encoded *unreserved* characters are decoded (`%61` → `a`,
//!    `%2E` → `.`); every other escape is kept, its hex digits uppercased
//!    (`%2f` → `%2F`: an encoded slash never becomes a separator);
//! 2. runs of slashes become one (`//admin` → `/admin`);
//! 3. dot segments are removed (RFC 3986 §5.2.4: `/./admin`,
//!    `/x/../admin` → `/admin`; `..` never climbs above the root).
//!
//! Only the lookup uses the normalized path: the app receives the path as
//! the client sent it (as gorouter does), see docs/router.md "Paths".
//! The common path needs none of this and is returned borrowed after one
//! scan of its bytes.

use std::borrow::Cow;

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Whether `path` may change: a `%`, a `//`, or a segment starting with
/// `.` (`/.`, which covers `/./` and `/../`). Eight bytes at a time (the
/// common path has none of these and costs a few instructions per word).
fn needs_work(path: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    // High bit set in exactly the bytes of `v` that are zero.
    let zeros = |v: u64| !(((v & LOW7).wrapping_add(LOW7)) | v | LOW7);
    let mut prev_slash = false;
    let mut chunks = path.chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let w = u64::from_le_bytes(word);
        let percent = zeros(w ^ (u64::from(b'%') * ONES));
        let slash = zeros(w ^ (u64::from(b'/') * ONES));
        let slash_or_dot = slash | zeros(w ^ (u64::from(b'.') * ONES));
        // A slash followed (next byte, 8 bits up) by a slash or a dot, also
        // across the word boundary.
        if percent != 0
            || slash & (slash_or_dot >> 8) != 0
            || (prev_slash && slash_or_dot & 0x80 != 0)
        {
            return true;
        }
        prev_slash = slash >> 63 != 0;
    }
    for &b in chunks.remainder() {
        if b == b'%' || (prev_slash && (b == b'/' || b == b'.')) {
            return true;
        }
        prev_slash = b == b'/';
    }
    false
}

/// The path routes are matched against (see the module docs). `path` is
/// the path of the request target, without the query.
#[inline]
pub fn normalize(path: &str) -> Cow<'_, str> {
    if !needs_work(path.as_bytes()) {
        return Cow::Borrowed(path);
    }
    Cow::Owned(rewrite(path))
}

/// The slow path of [`normalize`].
#[cold]
#[inline(never)]
fn rewrite(path: &str) -> String {
    // 1. Decode unreserved escapes, uppercase the others.
    let bytes = path.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                let c = h * 16 + l;
                if unreserved(c) {
                    decoded.push(c);
                } else {
                    decoded.push(b'%');
                    decoded.push(bytes[i + 1].to_ascii_uppercase());
                    decoded.push(bytes[i + 2].to_ascii_uppercase());
                }
                i += 3;
                continue;
            }
        }
        decoded.push(b);
        i += 1;
    }
    // 2 and 3. Split on slashes (empty segments dropped: merged slashes),
    // drop `.`, pop on `..`.
    let absolute = decoded.first() == Some(&b'/');
    let mut segments: Vec<&[u8]> = Vec::new();
    let mut trailing_slash = false;
    let parts: Vec<&[u8]> = decoded.split(|&b| b == b'/').collect();
    let last = parts.len().saturating_sub(1);
    for (n, seg) in parts.into_iter().enumerate() {
        match seg {
            b"" => {
                if n == last && n > 0 {
                    trailing_slash = true;
                }
            }
            b"." => trailing_slash = n == last,
            b".." => {
                segments.pop();
                trailing_slash = n == last;
            }
            s => {
                segments.push(s);
                trailing_slash = false;
            }
        }
    }
    let mut out = Vec::with_capacity(decoded.len());
    if absolute {
        out.push(b'/');
    }
    for (n, s) in segments.iter().enumerate() {
        if n > 0 {
            out.push(b'/');
        }
        out.extend_from_slice(s);
    }
    if trailing_slash && !segments.is_empty() {
        out.push(b'/');
    }
    if out.is_empty() {
        out.push(b'/');
    }
    // Only ASCII bytes were written for escapes, and whole UTF-8 sequences
    // of `path` were copied unchanged.
    match String::from_utf8(out) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::normalize;

    #[test]
    fn finds_what_needs_work_anywhere_in_a_word() {
        for len in 2..40 {
            for pos in 0..len - 1 {
                for pair in [&b"//"[..], b"/.", b"%4", b"a%"] {
                    let mut p = vec![b'a'; len];
                    p[pos..pos + 2].copy_from_slice(pair);
                    assert!(super::needs_work(&p), "{:?}", String::from_utf8_lossy(&p));
                }
                let mut p = vec![b'a'; len];
                p[pos] = b'/';
                p[pos + 1] = b'x';
                assert!(!super::needs_work(&p), "{:?}", String::from_utf8_lossy(&p));
                p[pos] = b'.';
                p[pos + 1] = b'/';
                assert!(!super::needs_work(&p), "{:?}", String::from_utf8_lossy(&p));
            }
        }
    }

    #[test]
    fn normalizes_paths() {
        let table: &[(&str, &str)] = &[
            // Unchanged (borrowed).
            ("/", "/"),
            ("/admin", "/admin"),
            ("/admin/", "/admin/"),
            ("/a.b/c.d", "/a.b/c.d"),
            ("/file.", "/file."),
            // Unreserved escapes decoded, case of the others normalized.
            ("/%61dmin", "/admin"),
            ("/%41DMIN", "/ADMIN"),
            ("/%7euser", "/~user"),
            ("/a%2Db%5Fc%2E", "/a-b_c."),
            ("/%2Fadmin", "/%2Fadmin"),
            ("/%2fadmin", "/%2Fadmin"),
            ("/a%20b", "/a%20b"),
            ("/%252F", "/%252F"),
            ("/%zz", "/%zz"),
            ("/%6", "/%6"),
            ("/%", "/%"),
            // Merged slashes.
            ("//admin", "/admin"),
            ("///admin//x", "/admin/x"),
            ("/admin//", "/admin/"),
            // Dot segments.
            ("/./admin", "/admin"),
            ("/x/../admin", "/admin"),
            ("/x/y/../../admin", "/admin"),
            ("/../admin", "/admin"),
            ("/../../", "/"),
            ("/admin/.", "/admin/"),
            ("/admin/..", "/"),
            ("/admin/x/..", "/admin/"),
            ("/.", "/"),
            ("/..", "/"),
            ("/a/.b/..c", "/a/.b/..c"),
            // Encoded dots are dots.
            ("/%2e/admin", "/admin"),
            ("/x/%2E%2E/admin", "/admin"),
            ("/x/.%2e/admin", "/admin"),
            // All of it together.
            ("//x/./%2e%2E//%61dmin/", "/admin/"),
            // Non-ASCII kept.
            ("/ünï//code", "/ünï/code"),
        ];
        for (input, want) in table {
            assert_eq!(normalize(input), *want, "normalize({input:?})");
        }
        assert!(matches!(
            normalize("/admin/x"),
            std::borrow::Cow::Borrowed(_)
        ));
    }
}
