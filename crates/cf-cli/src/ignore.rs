//! Which files of an app directory `cf push` leaves out: CF's default list
//! plus the app's `.cfignore` (gitignore syntax: `#` comments, `!`
//! negation, a leading `/` or an inner `/` anchors to the app root, a
//! trailing `/` matches directories only, `*`, `?`, `[...]` and `**`).
//!
//! Pure: [`Ignore::excluded`] decides for one path relative to the app root
//! (`/`-separated); the zipper asks it for every entry it walks.

/// CF's default exclusions (cloudfoundry/cli `DefaultIgnoreLines`), as
/// unanchored patterns: they apply at any depth.
pub const CF_DEFAULTS: [&str; 9] = [
    ".cfignore",
    ".DS_Store",
    ".git",
    ".gitignore",
    ".hg",
    ".svn",
    "_darcs",
    "manifest.yaml",
    "manifest.yml",
];

/// Also left out, unlike CF: `.cf`, where this CLI keeps its config and
/// tokens when `CF_HOME` is the app directory (docs/cli.md).
pub const EXTRA_DEFAULTS: [&str; 1] = [".cf"];

#[derive(Debug, Clone, PartialEq)]
struct Pattern {
    glob: String,
    negated: bool,
    dir_only: bool,
    /// Matched against the whole relative path (else against the last
    /// component only).
    anchored: bool,
}

/// The compiled rules: CF's defaults, then the `.cfignore` lines in order
/// (the last matching rule decides).
#[derive(Debug, Clone, Default)]
pub struct Ignore {
    patterns: Vec<Pattern>,
}

impl Ignore {
    /// CF's defaults and the lines of a `.cfignore` (empty when none).
    pub fn new(cfignore: &str) -> Ignore {
        let mut patterns: Vec<Pattern> = CF_DEFAULTS
            .iter()
            .chain(EXTRA_DEFAULTS.iter())
            .filter_map(|l| parse_line(l))
            .collect();
        patterns.extend(cfignore.lines().filter_map(parse_line));
        Ignore { patterns }
    }

    /// Reads `dir/.cfignore` if there is one.
    pub fn for_dir(dir: &std::path::Path) -> std::io::Result<Ignore> {
        match std::fs::read_to_string(dir.join(".cfignore")) {
            Ok(text) => Ok(Ignore::new(&text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Ignore::new("")),
            Err(e) => Err(e),
        }
    }

    /// Whether `rel` (relative to the app root, `/`-separated; `is_dir`
    /// for directories) is left out of the upload. As in git, nothing
    /// inside an excluded directory can be re-included.
    pub fn excluded(&self, rel: &str, is_dir: bool) -> bool {
        let rel = rel.trim_matches('/');
        if rel.is_empty() {
            return false;
        }
        let parts: Vec<&str> = rel.split('/').collect();
        for i in 1..parts.len() {
            if self.decide(&parts[..i].join("/"), true) {
                return true;
            }
        }
        self.decide(rel, is_dir)
    }

    /// The last rule matching this one path (ancestors not considered).
    fn decide(&self, rel: &str, is_dir: bool) -> bool {
        let base = rel.rsplit('/').next().unwrap_or(rel);
        let mut out = false;
        for p in &self.patterns {
            if p.dir_only && !is_dir {
                continue;
            }
            let subject = if p.anchored { rel } else { base };
            if glob_match(p.glob.as_bytes(), subject.as_bytes()) {
                out = !p.negated;
            }
        }
        out
    }
}

fn parse_line(line: &str) -> Option<Pattern> {
    let line = line.trim_end_matches(['\r', '\n']);
    // Trailing spaces are dropped unless escaped.
    let mut l = line.trim_end_matches(' ').to_string();
    if line.len() > l.len() && l.ends_with('\\') {
        l.push(' ');
    }
    if l.is_empty() || l.starts_with('#') {
        return None;
    }
    let (negated, rest) = match l.strip_prefix('!') {
        Some(r) => (true, r.to_string()),
        None => (false, l),
    };
    let rest = match rest.strip_prefix('\\') {
        Some(r) if r.starts_with('#') || r.starts_with('!') => r.to_string(),
        _ => rest,
    };
    let dir_only = rest.ends_with('/');
    let body = rest.trim_end_matches('/');
    if body.is_empty() {
        return None;
    }
    let anchored = body.contains('/');
    let glob = body.trim_start_matches('/').to_string();
    if glob.is_empty() {
        return None;
    }
    Some(Pattern {
        glob,
        negated,
        dir_only,
        anchored,
    })
}

/// gitignore glob: `*` and `?` stop at `/`, `**` as a whole component
/// spans directories (`**/x`, `x/**`, `a/**/b`), `[a-z]` / `[!a-z]`
/// classes, `\x` escapes.
fn glob_match(p: &[u8], s: &[u8]) -> bool {
    if p.is_empty() {
        return s.is_empty();
    }
    // `**` as a whole component.
    if p.starts_with(b"**") && (p.len() == 2 || p[2] == b'/') {
        if p.len() == 2 {
            return true; // trailing `**`: everything below
        }
        let rest = &p[3..];
        // Zero or more whole directories.
        if glob_match(rest, s) {
            return true;
        }
        return s
            .iter()
            .enumerate()
            .any(|(i, c)| *c == b'/' && glob_match(rest, &s[i + 1..]));
    }
    match p[0] {
        b'*' => {
            let rest = &p[1..];
            // `*` runs over non-`/` bytes (collapse `**` inside a component).
            let rest = if rest.first() == Some(&b'*') {
                &rest[1..]
            } else {
                rest
            };
            for i in 0..=s.len() {
                if glob_match(rest, &s[i..]) {
                    return true;
                }
                if i < s.len() && s[i] == b'/' {
                    break;
                }
            }
            false
        }
        b'?' => !s.is_empty() && s[0] != b'/' && glob_match(&p[1..], &s[1..]),
        b'[' => match class(&p[1..], s.first().copied()) {
            Some((true, used)) => glob_match(&p[1 + used..], &s[1..]),
            Some((false, _)) => false,
            // No closing `]`: a literal `[`.
            None => s.first() == Some(&b'[') && glob_match(&p[1..], &s[1..]),
        },
        b'\\' if p.len() > 1 => s.first() == Some(&p[1]) && glob_match(&p[2..], &s[1..]),
        c => s.first() == Some(&c) && glob_match(&p[1..], &s[1..]),
    }
}

/// A `[...]` class after its `[`: (matches, bytes used including `]`), or
/// `None` when it never closes.
fn class(p: &[u8], c: Option<u8>) -> Option<(bool, usize)> {
    let mut i = 0;
    let negate = matches!(p.first(), Some(b'!') | Some(b'^'));
    if negate {
        i += 1;
    }
    let mut hit = false;
    let mut first = true;
    while i < p.len() {
        if p[i] == b']' && !first {
            let ok = c.is_some_and(|c| c != b'/') && (hit != negate);
            return Some((ok, i + 1));
        }
        first = false;
        let lo = p[i];
        if i + 2 < p.len() && p[i + 1] == b'-' && p[i + 2] != b']' {
            let hi = p[i + 2];
            if c.is_some_and(|c| lo <= c && c <= hi) {
                hit = true;
            }
            i += 3;
        } else {
            if c == Some(lo) {
                hit = true;
            }
            i += 1;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cf_defaults_at_any_depth() {
        let ig = Ignore::new("");
        for (path, dir, out) in [
            (".cfignore", false, true),
            ("manifest.yml", false, true),
            ("manifest.yaml", false, true),
            (".gitignore", false, true),
            (".DS_Store", false, true),
            ("sub/.DS_Store", false, true),
            (".git", true, true),
            (".git/HEAD", false, true),
            ("vendor/x/.git/config", false, true),
            (".hg/store", false, true),
            (".svn", true, true),
            ("_darcs", true, true),
            (".cf/config.json", false, true),
            ("app.py", false, false),
            ("manifest.yml.bak", false, false),
            ("src/manifest.txt", false, false),
            (".github/workflows/ci.yml", false, false),
        ] {
            assert_eq!(ig.excluded(path, dir), out, "{path}");
        }
    }

    #[test]
    fn cfignore_patterns() {
        let ig = Ignore::new(
            "# a comment\n\
             \n\
             *.log\n\
             /build\n\
             tmp/\n\
             docs/*.md\n\
             **/cache/**\n\
             secret?.txt\n\
             data/**/*.csv\n\
             *.bin\n\
             !keep.bin\n\
             node_modules/\n\
             !node_modules/x.js\n\
             [abc].dat\n\
             \\#literal\n",
        );
        let table: &[(&str, bool, bool)] = &[
            ("a.log", false, true),
            ("deep/dir/b.log", false, true),
            ("a.logx", false, false),
            ("build", true, true),
            ("build/out.o", false, true),
            ("src/build", true, false),
            ("src/build/x", false, false),
            ("tmp", true, true),
            ("tmp/x", false, true),
            ("src/tmp/x", false, true),
            ("tmp", false, false), // a file named tmp: `tmp/` is dirs only
            ("docs/a.md", false, true),
            ("docs/sub/a.md", false, false),
            ("other/docs/a.md", false, false),
            ("cache/x", false, true),
            ("a/b/cache/c/d", false, true),
            ("a/cachex/d", false, false),
            ("secret1.txt", false, true),
            ("secret12.txt", false, false),
            ("data/x.csv", false, true),
            ("data/a/b/x.csv", false, true),
            ("data/a/b/x.json", false, false),
            ("x.bin", false, true),
            ("keep.bin", false, false),
            ("sub/keep.bin", false, false),
            // Nothing inside an excluded directory comes back.
            ("node_modules/x.js", false, true),
            ("a.dat", false, true),
            ("d.dat", false, false),
            ("#literal", false, true),
            ("app.py", false, false),
            ("", true, false),
        ];
        for (path, dir, out) in table {
            assert_eq!(ig.excluded(path, *dir), *out, "{path} (dir: {dir})");
        }
    }

    #[test]
    fn negation_can_bring_back_a_default() {
        let ig = Ignore::new("!manifest.yml\n");
        assert!(!ig.excluded("manifest.yml", false));
        assert!(ig.excluded("manifest.yaml", false));
    }

    #[test]
    fn globs() {
        for (p, s, want) in [
            ("*", "abc", true),
            ("*", "a/b", false),
            ("a*c", "abbc", true),
            ("a?c", "abc", true),
            ("a?c", "a/c", false),
            ("[a-c]x", "bx", true),
            ("[!a-c]x", "bx", false),
            ("[!a-c]x", "dx", true),
            ("[x", "[x", true),
            ("**/b", "b", true),
            ("**/b", "a/a/b", true),
            ("a/**", "a/b/c", true),
            ("a/**/b", "a/b", true),
            ("a/**/b", "a/x/y/b", true),
            ("a/**/b", "a/x/y/c", false),
            ("a\\*", "a*", true),
            ("a\\*", "ab", false),
        ] {
            assert_eq!(glob_match(p.as_bytes(), s.as_bytes()), want, "{p} ~ {s}");
        }
    }
}
