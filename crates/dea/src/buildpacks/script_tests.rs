//! The built-in buildpacks' scripts run with bash on scratch apps: which
//! one detects what, the staticfile root rules, the java start command and
//! heap formula. `nginx` and `java` are stand-ins on the PATH (the real ones
//! run in `tests/builtin_buildpacks.rs`).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::{install, BUILTINS};
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

/// The built-in plain detection picks, trying them in order.
fn detected(files: &[(&str, &str)]) -> Option<&'static str> {
    let s = scratch(files);
    BUILTINS
        .iter()
        .filter(|b| b.detectable)
        .find(|b| run(&s, b.name, "detect").0 == 0)
        .map(|b| b.name)
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

#[test]
fn detection_order_leaves_static_sites_last() {
    let names: Vec<&str> = BUILTINS.iter().map(|b| b.name).collect();
    assert_eq!(names, ["python", "nodejs", "java", "staticfile", "binary"]);
    let manifest = "Manifest-Version: 1.0\nMain-Class: demo.Hello\n";
    for (files, want) in [
        (vec![("index.html", "x")], Some("staticfile")),
        (vec![("Staticfile", "")], Some("staticfile")),
        (vec![("public/index.html", "x")], None),
        (
            vec![("index.html", "x"), ("package.json", "{}")],
            Some("nodejs"),
        ),
        (
            vec![("index.html", "x"), ("requirements.txt", "")],
            Some("python"),
        ),
        (
            vec![("index.html", "x"), ("META-INF/MANIFEST.MF", manifest)],
            Some("java"),
        ),
        (vec![("META-INF/MANIFEST.MF", manifest)], Some("java")),
        (
            vec![(
                "META-INF/MANIFEST.MF",
                "Manifest-Version: 1.0\r\nmain-class: A\r\n",
            )],
            Some("java"),
        ),
        (
            vec![("META-INF/MANIFEST.MF", "Manifest-Version: 1.0\n")],
            None,
        ),
        (vec![("app.jar", "x")], Some("java")),
        (vec![("a.jar", "x"), ("b.jar", "x")], None),
        (vec![("lib/a.jar", "x")], None),
        (vec![("Procfile", "web: x")], Some("binary")),
        (vec![("README", "x")], None),
    ] {
        assert_eq!(detected(&files), want, "{files:?}");
    }
}

/// Runs staticfile's compile with `Staticfile` (if any) and other files.
fn static_compile(files: &[(&str, &str)]) -> (Scratch, i32, String) {
    let s = scratch(files);
    let (code, out, err) = run(&s, "staticfile", "compile");
    (s, code, format!("{out}{err}"))
}

fn template(s: &Scratch) -> String {
    std::fs::read_to_string(s.app.join(".staticfile/nginx.conf.template")).expect("template")
}

#[test]
fn staticfile_root_must_stay_in_the_app() {
    // No Staticfile: the app itself.
    let (s, code, out) = static_compile(&[("index.html", "x")]);
    assert_eq!(code, 0, "{out}");
    assert!(
        template(&s).contains("root \"@@APP@@\";"),
        "{}",
        template(&s)
    );
    assert!(s.app.join(".staticfile/start").is_file());
    let (_, release, _) = run(&s, "staticfile", "release");
    let r = parse_release("staticfile", &release).expect("release");
    assert_eq!(r.web.as_deref(), Some("./.staticfile/start"));

    // root: a directory of the app; quotes, a comment, CRLF, other options.
    for staticfile in [
        "root: public\n",
        "root: \"public\" # the site\r\ngzip: on\r\n",
        "root: ./public/\n",
        "root: public/sub/..\n",
    ] {
        let (s, code, out) = static_compile(&[
            ("Staticfile", staticfile),
            ("public/index.html", "x"),
            ("public/sub/x", "x"),
        ]);
        assert_eq!(code, 0, "{staticfile:?}: {out}");
        assert!(
            template(&s).contains("root \"@@APP@@/public\";"),
            "{staticfile:?}: {}",
            template(&s)
        );
        assert_eq!(
            out.contains("ignoring option \"gzip\""),
            staticfile.contains("gzip")
        );
    }
    // The empty root and `.` are the app.
    let (s, code, out) = static_compile(&[("Staticfile", "root:\n")]);
    assert_eq!(code, 0, "{out}");
    assert!(template(&s).contains("root \"@@APP@@\";"));

    // Out of the app, or not a directory of it: the build fails and says why.
    for (staticfile, why) in [
        ("root: ..\n", "leaves the app"),
        ("root: ../../etc\n", "leaves the app"),
        ("root: public/../../x\n", "leaves the app"),
        ("root: out\n", "leaves the app"),
        ("root: /etc\n", "is an absolute path"),
        ("root: missing\n", "is not a directory of the app"),
        ("root: index.html\n", "is not a directory of the app"),
        ("root: pub lic\n", "may only contain"),
        ("root: $HOME\n", "may only contain"),
    ] {
        let s = scratch(&[
            ("Staticfile", staticfile),
            ("index.html", "x"),
            ("public/index.html", "x"),
        ]);
        // A link leaving the app (not something a package can hold: the
        // DEA's unzip makes no links; another buildpack could).
        std::os::unix::fs::symlink("..", s.app.join("out")).expect("symlink");
        let (code, out, err) = run(&s, "staticfile", "compile");
        assert_eq!(code, 1, "{staticfile:?}: {out}{err}");
        assert!(err.contains("Staticfile: root: "), "{err}");
        assert!(err.contains(why), "{staticfile:?}: want {why:?} in {err}");
        assert!(!s.app.join(".staticfile/start").exists());
    }
}

#[test]
fn staticfile_config_keeps_nginx_off_etc_and_var() {
    let (s, code, out) = static_compile(&[("index.html", "x")]);
    assert_eq!(code, 0, "{out}");
    let t = template(&s);
    for want in [
        "daemon off;",
        "master_process off;",
        "error_log stderr;",
        "pid @@RUN@@/nginx.pid;",
        "listen @@PORT@@;",
        "access_log /dev/stdout;",
        "client_body_temp_path @@RUN@@/",
        "proxy_temp_path @@RUN@@/",
        "fastcgi_temp_path @@RUN@@/",
        "uwsgi_temp_path @@RUN@@/",
        "scgi_temp_path @@RUN@@/",
        "types {",
        "gzip on;",
        "Cache-Control \"public, max-age=31536000, immutable\"",
        "Cache-Control \"no-cache\"",
    ] {
        assert!(t.contains(want), "missing {want:?} in\n{t}");
    }
    for banned in ["/etc/", "/var/", "include "] {
        assert!(!t.contains(banned), "{banned:?} in\n{t}");
    }
    let start = std::fs::read_to_string(s.app.join(".staticfile/start")).expect("start");
    assert!(start.contains("-e stderr"), "{start}");
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
