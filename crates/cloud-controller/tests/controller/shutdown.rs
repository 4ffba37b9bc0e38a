//! A controller asked to stop while every NATS server is gone exits
//! promptly: its last flush of the bus is bounded (proto::bus::FLUSH_TIMEOUT)
//! instead of waiting for a reconnect that never comes (it hung until
//! killed: `cf dev stop --hosts` waited 30 s for it). The binary, as an
//! agent runs it: the controller run in process (e2e's start_controller)
//! stopped at once even without the bound, so it does not show the hang.

use std::time::{Duration, Instant};

#[tokio::test]
async fn a_controller_stops_within_seconds_when_the_bus_is_gone() {
    let mut nats = testkit::NatsServer::start().expect("nats-server");
    let dir = tempfile::tempdir().expect("tempdir");
    let addr_file = dir.path().join("cc.addr");
    let data = dir.path().join("data");
    let conf = dir.path().join("cc.toml");
    std::fs::write(
        &conf,
        format!(
            "listen = \"127.0.0.1:0\"\naddr_file = \"{}\"\ninternal_listen = \"127.0.0.1:0\"\ninternal_api_token = \"t\"\nnats_url = \"{}\"\ndata_dir = \"{}\"\ndatabase_url = \"sqlite://{}?mode=rwc\"\n",
            addr_file.display(),
            nats.url,
            data.display(),
            data.join("cc.db").display()
        ),
    )
    .expect("config");
    let log = dir.path().join("cc.log");
    let mut cc = Child(
        std::process::Command::new(env!("CARGO_BIN_EXE_cloud-controller"))
            .arg("--config")
            .arg(&conf)
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log"))
            .spawn()
            .expect("cloud-controller"),
    );
    testkit::wait_file(&addr_file, Duration::from_secs(60))
        .await
        .unwrap_or_else(|e| panic!("{e}: {}", testkit::log_tail(&log, 30)));

    nats.kill();
    // SAFETY: kill(2) on the child this test started.
    unsafe {
        libc::kill(cc.0.id() as i32, libc::SIGTERM);
    }
    let asked = Instant::now();
    let status =
        testkit::wait_for_blocking("the controller to exit", Duration::from_secs(20), || {
            cc.0.try_wait().ok().flatten()
        })
        .unwrap_or_else(|e| panic!("{e}: {}", testkit::log_tail(&log, 30)));
    assert!(
        status.success(),
        "{status}: {}",
        testkit::log_tail(&log, 30)
    );
    // The 5 s grace for requests in flight, the bounded flush, the store.
    assert!(
        asked.elapsed() < Duration::from_secs(15),
        "took {:?}",
        asked.elapsed()
    );
}

/// Killed on drop, when the test fails before it exits.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
