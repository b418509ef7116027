//! What `sio-floor`, `sio-chat-floor` and `eio-single` share: `NAME PORT` on the command
//! line, one thread (as the worker), 127.0.0.1 only, `listening on ADDR` on stdout, one task
//! per accepted connection, and a clean stop on SIGINT or SIGTERM. Included by each with
//! `#[path]`.

use std::future::Future;
use std::time::Duration;

/// Runs the server on a runtime from `builder` (the caller's choice: a plain current-thread
/// one, or the worker's with its wake-up window): `setup` (inside the runtime) returns the
/// per-connection handler.
pub fn run<S, H, F>(
    mut builder: tokio::runtime::Builder,
    name: &str,
    setup: S,
) -> anyhow::Result<()>
where
    S: FnOnce() -> H,
    H: Fn(tokio::net::TcpStream) -> F,
    F: Future<Output = ()> + Send + 'static,
{
    let port: u16 = match std::env::args().nth(1).map(|p| p.parse()) {
        Some(Ok(p)) => p,
        _ => anyhow::bail!("usage: {name} PORT (0 picks one)"),
    };
    let rt = builder.enable_all().build()?;
    rt.block_on(async move {
        let handle = setup();
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        println!("listening on {}", listener.local_addr()?);
        let stop = async {
            use tokio::signal::unix::{signal, SignalKind};
            match (
                signal(SignalKind::interrupt()),
                signal(SignalKind::terminate()),
            ) {
                (Ok(mut i), Ok(mut t)) => tokio::select! { _ = i.recv() => {}, _ = t.recv() => {} },
                _ => std::future::pending().await,
            }
        };
        tokio::pin!(stop);
        loop {
            let (tcp, _) = tokio::select! {
                _ = &mut stop => return Ok(()),
                accepted = listener.accept() => match accepted {
                    Ok(c) => c,
                    Err(_) => {
                        // EMFILE and friends: back off instead of spinning.
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let _ = tcp.set_nodelay(true);
            tokio::spawn(handle(tcp));
        }
    })
}
