//! A TCP forwarder from an address the lab's hosts reach (the bridge's) to
//! a service that listens on the machine's loopback only (Postgres), on a
//! thread of its own so it serves whatever the test's runtime is doing.
//! Stops, with every connection, on drop.

use std::net::SocketAddr;

use anyhow::Result;

/// Connections served at once; more wait for one to end.
const MAX_CONNECTIONS: usize = 256;

pub struct Forward {
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Forward {
    pub fn start(bind: SocketAddr, to: SocketAddr) -> Result<Forward> {
        let listener = std::net::TcpListener::bind(bind)?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let thread = std::thread::spawn(move || {
            rt.block_on(async move {
                let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                    return;
                };
                let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
                let serve = async {
                    loop {
                        let Ok(permit) = slots.clone().acquire_owned().await else {
                            return;
                        };
                        let Ok((mut inbound, _)) = listener.accept().await else {
                            continue;
                        };
                        tokio::spawn(async move {
                            let _permit = permit;
                            if let Ok(mut outbound) = tokio::net::TcpStream::connect(to).await {
                                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound)
                                    .await;
                            }
                        });
                    }
                };
                tokio::select! {
                    _ = serve => {}
                    _ = stopped => {}
                }
            });
        });
        Ok(Forward {
            addr,
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for Forward {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
