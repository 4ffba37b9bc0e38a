//! The built-in buildpacks' scripts run with bash on scratch apps: the
//! java start command and heap formula. `nginx` and `java` are stand-ins on
//! the PATH (the real ones run in `tests/builtin_buildpacks.rs`).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::install;
use crate::staging::plan::parse_release;

struct Scratch {
    _tmp: tempfile::TempDir,
    /// The installed built-ins.
    bps: PathBuf,
    /// Fake `nginx` and `java`, first on the PATH.
    fake_bin: PathBuf,
    app: PathBuf,
}

fn write(path: &Path, text: &str) {
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d).expect("mkdir");
    }
    std::fs::write(path, text).expect("write");
}

fn executable(path: &Path, text: &str) {
    write(path, text);
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

fn scratch(files: &[(&str, &str)]) -> Scratch {
    let tmp = tempfile::tempdir().expect("tmp");
    let root = tmp.path().canonicalize().expect("canon");
    let bps = root.join("buildpacks");
    install(&bps).expect("install");
    let fake_bin = root.join("fake-bin");
    executable(
        &fake_bin.join("nginx"),
        "#!/bin/sh\necho 'nginx version: nginx/fake' >&2\n",
    );
    executable(
        &fake_bin.join("java"),
        "#!/bin/sh\necho 'openjdk version \"fake\"' >&2\n",
    );
    let app = root.join("app");
    std::fs::create_dir_all(&app).expect("mkdir");
    std::fs::create_dir_all(root.join("tmp")).expect("mkdir");
    for (name, text) in files {
        write(&app.join(name), text);
    }
    Scratch {
        _tmp: tmp,
        bps,
        fake_bin,
        app,
    }
}

/// Runs `<buildpack>/bin/<script> <app>`: (exit code, stdout, stderr).
fn run(s: &Scratch, bp: &str, script: &str) -> (i32, String, String) {
    let root = s.app.parent().expect("root");
    let out = Command::new("bash")
        .arg(s.bps.join(bp).join("bin").join(script))
        .arg(&s.app)
        .arg(root.join("cache"))
        .current_dir(&s.app)
        .env_clear()
        .env(
            "PATH",
            format!("{}:/usr/local/bin:/usr/bin:/bin", s.fake_bin.display()),
        )
        .env("HOME", root)
        .env("TMPDIR", root.join("tmp"))
        .output()
        .expect("bash");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn zip_bytes(files: &[(&str, &str)]) -> Vec<u8> {
    use std::io::Write;
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, text) in files {
        w.start_file(*name, zip::write::SimpleFileOptions::default())
            .expect("start");
        w.write_all(text.as_bytes()).expect("write");
    }
    w.finish().expect("finish").into_inner()
}

/// Runs java's compile, then its release: (exit, output, web command).
fn java_compile(s: &Scratch) -> (i32, String, Option<String>) {
    let (code, out, err) = run(s, "java", "compile");
    let (_, release, _) = run(s, "java", "release");
    let web = parse_release("java", &release).expect("release").web;
    (code, format!("{out}{err}"), web)
}

#[test]
fn java_start_commands() {
    // An exploded jar: Main-Class and Class-Path with continuation lines
    // (manifests wrap at 72 bytes), CRLF, per-entry sections ignored.
    let manifest = "Manifest-Version: 1.0\r\nMain-Class: com.example.verylongpackagename.subpackage.another.Applicati\r\n on$Main\r\nClass-Path: lib/a.jar lib/b.ja\r\n r /abs/x.jar http://x/y.jar\r\n\r\nName: x\r\nMain-Class: wrong\r\n";
    let s = scratch(&[
        ("META-INF/MANIFEST.MF", manifest),
        ("lib/a.jar", "x"),
        ("lib/b.jar", "x"),
    ]);
    let (code, out, web) = java_compile(&s);
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        web.as_deref(),
        Some("java $JAVA_OPTS -cp '.:lib/a.jar:lib/b.jar' 'com.example.verylongpackagename.subpackage.another.Application$Main'")
    );
    assert!(
        out.contains("skipping Class-Path entry /abs/x.jar"),
        "{out}"
    );
    assert!(
        out.contains("skipping Class-Path entry http://x/y.jar"),
        "{out}"
    );
    assert!(
        out.contains("Application$Main.class is not in the app"),
        "{out}"
    );
    assert!(s.app.join(".profile.d/java.sh").is_file());

    // Main-Class must be a class name (it goes into a shell command).
    let s = scratch(&[("META-INF/MANIFEST.MF", "Main-Class: demo.Hello; rm -rf /\n")]);
    let (code, out, _) = java_compile(&s);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("is not a Java class name"), "{out}");

    // A jar at the root: `java -jar`, its name quoted; its Main-Class read.
    let s = scratch(&[]);
    std::fs::write(
        s.app.join("my app's.jar"),
        zip_bytes(&[(
            "META-INF/MANIFEST.MF",
            "Manifest-Version: 1.0\r\nMain-Class: demo.Hello\r\n\r\n",
        )]),
    )
    .expect("jar");
    let (code, out, web) = java_compile(&s);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("Main-Class demo.Hello"), "{out}");
    assert_eq!(
        web.as_deref(),
        Some(r#"java $JAVA_OPTS -jar 'my app'\''s.jar'"#)
    );

    // A jar without Main-Class, or not a jar at all: a clear failure.
    for bytes in [
        zip_bytes(&[("META-INF/MANIFEST.MF", "Manifest-Version: 1.0\n")]),
        b"not a zip".to_vec(),
    ] {
        let s = scratch(&[]);
        std::fs::write(s.app.join("app.jar"), bytes).expect("jar");
        let (code, out, _) = java_compile(&s);
        assert_eq!(code, 1, "{out}");
        assert!(out.contains("app.jar has no Main-Class"), "{out}");
    }
}

#[test]
fn java_missing_is_a_clear_failure() {
    let s = scratch(&[("META-INF/MANIFEST.MF", "Main-Class: demo.Hello\n")]);
    std::fs::remove_file(s.fake_bin.join("java")).expect("rm");
    // Only the stand-ins' directory and a directory without java.
    let out = Command::new("/bin/bash")
        .arg(s.bps.join("java/bin/compile"))
        .arg(&s.app)
        .arg("cache")
        .env_clear()
        .env("PATH", &s.fake_bin)
        .output()
        .expect("bash");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("java not found on this host"), "{err}");
}

#[test]
fn java_heap_follows_memory_limit() {
    let s = scratch(&[("META-INF/MANIFEST.MF", "Main-Class: demo.Hello\n")]);
    let (code, out, _) = java_compile(&s);
    assert_eq!(code, 0, "{out}");
    let profile = s.app.join(".profile.d/java.sh");
    let opts = |limit: Option<&str>, user: Option<&str>| {
        let mut c = Command::new("bash");
        c.arg("-c")
            .arg(r#". "$1" && printf '%s' "$JAVA_OPTS""#)
            .arg("bash")
            .arg(&profile)
            .env_clear()
            .env("PATH", "/usr/bin:/bin");
        if let Some(l) = limit {
            c.env("MEMORY_LIMIT", l);
        }
        if let Some(u) = user {
            c.env("JAVA_OPTS", u);
        }
        let out = c.output().expect("bash");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let xmx = |limit: Option<&str>| {
        opts(limit, None)
            .split_whitespace()
            .find_map(|o| o.strip_prefix("-Xmx").map(str::to_string))
            .unwrap_or_default()
    };
    // limit - 64 (metaspace) - 32 (code cache) - 25 (stacks)
    //   - max(32, 15% of limit), at least 16.
    for (limit, heap) in [
        (None, "750m"),
        (Some(""), "750m"),
        (Some("256m"), "97m"),
        (Some("256M"), "97m"),
        (Some("512m"), "315m"),
        (Some("1g"), "750m"),
        (Some("1024"), "750m"),
        (Some("2048mb"), "1620m"),
        (Some("4G"), "3361m"),
        (Some("262144k"), "97m"),
        (Some("160m"), "16m"),
        (Some("64m"), "16m"),
        (Some("lots"), "750m"),
    ] {
        assert_eq!(xmx(limit), heap, "MEMORY_LIMIT={limit:?}");
    }
    assert_eq!(
        opts(Some("256m"), None),
        "-Xmx97m -Xss512k -XX:MaxMetaspaceSize=64m -XX:ReservedCodeCacheSize=32m -XX:+ExitOnOutOfMemoryError"
    );
    // The app's own JAVA_OPTS come last (they win).
    assert!(opts(Some("256m"), Some("-Xmx200m -Dx=1"))
        .ends_with("-XX:+ExitOnOutOfMemoryError -Xmx200m -Dx=1"));
}
