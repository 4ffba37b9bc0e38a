//! Staging as a tenant attacks it, in real containers (needs root): a
//! buildpack (or the app's own build code) replaces the app directory, the
//! build cache or the Procfile with links to host files, swaps its `tmp`
//! for a link to `/`, tries hard links to host files, and the app's
//! environment carries `BASH_ENV` and `LD_PRELOAD`. Nothing of the host may
//! end up in the droplet, the build cache or the start command, and no host
//! file changes.

mod common;

use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use common::{blob_server, log_lines, zip_dir, Blobs, Published};
use dea::backend::namespaces::{self, NamespacesBackend};
use dea::backend::Backend;
use dea::staging::Stager;
use proto::{AdminBuildpack, StagingRequest, StagingResult};

const SECRET: &str = "host secret 7d3f";

fn root() -> bool {
    testkit::require_root(
        "staging attacks",
        &[("cgroups, ip and iptables", namespaces::available())],
    )
}

struct Cleanup(String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        NamespacesBackend::cleanup_tag(&self.0);
    }
}

/// Everything in a gzipped tarball, decompressed (to look for the secret).
fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let _ = flate2::read::GzDecoder::new(bytes).read_to_end(&mut out);
    out
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

struct Env {
    stager: Stager,
    logs: Published,
    blobs: Blobs,
    base: String,
}

impl Env {
    fn admin(&self, name: &str, files: &[(&str, &str)]) -> AdminBuildpack {
        let zip = zip_dir(files);
        let sha = dea::http::sha256_hex(&zip);
        self.blobs
            .lock()
            .expect("lock")
            .insert(format!("/bp/{name}"), zip);
        AdminBuildpack {
            name: name.into(),
            uri: format!("{}/bp/{name}", self.base),
            sha256: sha,
        }
    }

    fn request(&self, id: &str, bp: AdminBuildpack, env: Vec<String>) -> StagingRequest {
        StagingRequest {
            app_id: "tenant".into(),
            buildpacks: vec![bp.name.clone()],
            env,
            disk_mb: 512,
            admin_buildpacks: vec![bp],
            ..common::staging_request(&self.base, id)
        }
    }

    async fn stage(&mut self, req: StagingRequest) -> (StagingResult, String) {
        let r = self.stager.handle(req).await;
        let mut lines = log_lines(&mut self.logs).join("\n");
        lines.push('\n');
        (r, lines)
    }

    fn blob(&self, path: &str) -> Option<Vec<u8>> {
        self.blobs.lock().expect("lock").get(path).cloned()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_of_the_host_leaks_into_a_build() {
    if !root() {
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    // The host's secrets: a directory and a file only root may change.
    let secrets = tmp.path().join("host-secrets");
    std::fs::create_dir_all(&secrets).expect("mkdir");
    std::fs::write(secrets.join("db.txt"), SECRET).expect("write");
    let sd = secrets.display().to_string();
    let state = tmp.path().join("state");
    std::fs::create_dir_all(&state).expect("state dir");
    let settings = common::ns_settings("attack-test", &state, 0, 256);
    let tag = settings.tag.clone();
    let _guard = Cleanup(tag.clone());
    let backend = Arc::new(NamespacesBackend::new(settings).expect("backend"));
    let (base, blobs) = blob_server().await;
    let (stager, logs) = common::stager(&state, backend.clone());
    let mut e = Env {
        stager,
        logs,
        blobs,
        base,
    };

    // One buildpack does everything at once, against the app dir it was
    // given, the cache dir, the Procfile and its tmp.
    let compile = format!(
        r#"#!/bin/bash
app="$1"; cache="$2"
echo "hard links:"
ln /etc/passwd "$app/passwd-link" 2>&1
ln /usr/bin/bash "$app/bash-link" 2>&1
ln -s "{sd}/db.txt" "$app/Procfile"
rm -rf "$cache" && ln -s "{sd}" "$cache" && echo "cache swapped"
rm -rf "$HOME/tmp" && ln -s / "$HOME/tmp" && echo "tmp swapped"
exit 0
"#
    );
    let release = format!(
        r#"#!/bin/bash
test -e "/tmp{sd}/db.txt" && echo "ESCAPED through tmp" >&2
echo "default_process_types: {{web: 'sleep 1000'}}"
"#
    );
    let evil = e.admin(
        "evil",
        &[
            ("bin/detect", "#!/bin/sh\nexit 0\n"),
            ("bin/compile", &compile),
            ("bin/release", &release),
        ],
    );
    let evil_sh = "echo EVIL-RAN >&2\ntouch \"$HOME/evil-ran\"\n";
    e.blobs.lock().expect("lock").insert(
        "/package/a1".into(),
        zip_dir(&[("index.txt", "hello"), ("evil.sh", evil_sh)]),
    );
    let req = e.request(
        "a1",
        evil.clone(),
        vec![
            "BASH_ENV=/home/vcap/app/evil.sh".into(),
            "ENV=/home/vcap/app/evil.sh".into(),
            "LD_PRELOAD=/home/vcap/app/nothing.so".into(),
            "GREETING=hi".into(),
        ],
    );
    let (r, log) = e.stage(req).await;
    println!("{log}");
    assert_eq!(r.error, None, "{log}");
    assert_eq!(
        log.matches("Invalid cross-device link").count(),
        2,
        "hard links to host files are refused: {log}"
    );
    assert!(
        log.contains("cache swapped") && log.contains("tmp swapped"),
        "{log}"
    );
    assert!(!log.contains("ESCAPED"), "{log}");
    assert!(
        !log.contains("EVIL-RAN") && !log.contains("LD_PRELOAD cannot"),
        "{log}"
    );
    assert!(
        log.contains("Not passing BASH_ENV, ENV, LD_PRELOAD to buildpacks"),
        "{log}"
    );
    // The linked Procfile was not read on the host: the command is the
    // buildpack's.
    assert_eq!(r.start_command.as_deref(), Some("sleep 1000"));
    let droplet = gunzip(&e.blob("/droplet/a1").expect("droplet"));
    assert!(
        !contains(&droplet, SECRET),
        "the droplet holds a host secret"
    );
    assert!(contains(&droplet, "hello"), "the app is in the droplet");
    if let Some(cache) = e.blob("/cache/a1") {
        assert!(
            !contains(&gunzip(&cache), SECRET),
            "the cache holds a host secret"
        );
    }

    // The app directory itself swapped for a link to the host's secrets.
    let compile = format!(
        "#!/bin/bash\ncd \"$HOME\" && mv app app.real && ln -s \"{sd}\" app && echo app swapped\n"
    );
    let evil2 = e.admin(
        "evil2",
        &[
            ("bin/detect", "#!/bin/sh\nexit 0\n"),
            ("bin/compile", &compile),
            ("bin/release", &release),
        ],
    );
    e.blobs
        .lock()
        .expect("lock")
        .insert("/package/a2".into(), zip_dir(&[("index.txt", "hello")]));
    let (r, log) = e.stage(e.request("a2", evil2, vec![])).await;
    println!("{r:?}\n{log}");
    assert!(log.contains("app swapped"), "{log}");
    if let Some(d) = e.blob("/droplet/a2") {
        assert!(
            !contains(&gunzip(&d), SECRET),
            "the droplet holds a host secret"
        );
    }
    // No host file changed hands or content.
    let md = std::fs::metadata(secrets.join("db.txt")).expect("md");
    assert_eq!(std::os::unix::fs::MetadataExt::uid(&md), 0);
    assert_eq!(
        std::fs::read_to_string(secrets.join("db.txt")).expect("read"),
        SECRET
    );
    assert!(!Path::new(&secrets).join("evil-ran").exists());
    backend.kill_all();
    let left = NamespacesBackend::leftovers(&tag);
    assert!(left.is_empty(), "leftovers: {left:?}");
}
