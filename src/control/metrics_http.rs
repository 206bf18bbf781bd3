//! The smallest HTTP server that serves `/metrics` well: HTTP/1.0-style,
//! one request per connection, `GET /metrics` (any query ignored) or 404,
//! the request head bounded in size ([`MAX_HEAD`]) and time
//! ([`DEADLINE`]), at most [`MAX_CLIENTS`] at once. It runs on the control
//! thread; a scrape reads the newest snapshot and never reaches the
//! election loop.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tracing::{info, warn};

use crate::daemon::snapshot::Snapshot;
use crate::metrics::{render, ControlRequests};

/// The request line and headers, at most.
const MAX_HEAD: usize = 8 * 1024;
/// A client has this long to send its request and read the answer.
const DEADLINE: Duration = Duration::from_secs(5);
const MAX_CLIENTS: usize = 8;

/// Serves scrapes on `listener` until the task is dropped.
pub(crate) async fn serve(
    listener: std::net::TcpListener,
    snapshot: watch::Receiver<Arc<Snapshot>>,
    requests: ControlRequests,
) {
    let listener = match TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            warn!("metrics_listen: {e}; no metrics");
            return;
        }
    };
    if let Ok(addr) = listener.local_addr() {
        info!(%addr, "serving Prometheus metrics on http://{addr}/metrics");
    }
    let slots = Arc::new(Semaphore::new(MAX_CLIENTS));
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let Ok(permit) = slots.clone().try_acquire_owned() else {
                    continue; // dropped: the scraper retries
                };
                let snapshot = snapshot.clone();
                let requests = requests.clone();
                tokio::spawn(async move {
                    let _ =
                        tokio::time::timeout(DEADLINE, scrape(stream, snapshot, requests)).await;
                    drop(permit);
                });
            }
            Err(e) => {
                warn!("metrics_listen: accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn scrape(
    mut stream: TcpStream,
    snapshot: watch::Receiver<Arc<Snapshot>>,
    requests: ControlRequests,
) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && !head.windows(2).any(|w| w == b"\n\n") {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
        if head.len() > MAX_HEAD {
            return respond(&mut stream, "431 Request Header Fields Too Large", "").await;
        }
    }
    let line = head.split(|b| *b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut words = line.split_whitespace();
    let (method, target) = (words.next(), words.next());
    let path = target.map(|t| t.split('?').next().unwrap_or(t));
    match (method, path) {
        (Some("GET"), Some("/metrics")) => {
            let snap = snapshot.borrow().clone();
            let status = snap.to_status(Instant::now(), SystemTime::now());
            let body = render(&status, &snap.probe_seconds, &requests);
            respond(&mut stream, "200 OK", &body).await
        }
        (Some("GET"), _) => respond(&mut stream, "404 Not Found", "try /metrics\n").await,
        _ => respond(&mut stream, "405 Method Not Allowed", "").await,
    }
}

async fn respond(stream: &mut TcpStream, status: &str, body: &str) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/openmetrics-text; version=1.0.0; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await
}
