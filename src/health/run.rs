//! Running one check: TCP connect, HTTP GET, or a program, each under a
//! timeout. A check's task runs it every interval, one run at a time, and
//! sends each outcome to the daemon loop; nothing here touches the
//! election.

use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use super::judge::Outcome;
use crate::config::health::CheckKind;

/// Output of an `exec` check kept for the log, per stream.
const OUTPUT_MAX: usize = 400;

/// Runs `kind` every `interval` (a run that takes longer delays the next;
/// runs never overlap) and sends `(id, outcome)` until the receiver is
/// gone.
pub async fn every(
    id: usize,
    kind: CheckKind,
    interval: Duration,
    timeout: Duration,
    tx: mpsc::UnboundedSender<(usize, Outcome)>,
) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let outcome = once(&kind, timeout).await;
        if tx.send((id, outcome)).is_err() {
            return;
        }
    }
}

/// One run of a check under `timeout`.
pub async fn once(kind: &CheckKind, timeout: Duration) -> Outcome {
    let start = Instant::now();
    let result = match kind {
        CheckKind::Tcp { host, port } => tokio::time::timeout(timeout, connect(host, *port))
            .await
            .unwrap_or_else(|_| Err(format!("no connection within {timeout:?}")))
            .map(|_| format!("connected to {host}:{port}")),
        CheckKind::Http { host, port, path } => {
            tokio::time::timeout(timeout, http_get(host, *port, path))
                .await
                .unwrap_or_else(|_| Err(format!("no answer within {timeout:?}")))
        }
        CheckKind::Exec { argv } => exec(argv, timeout).await,
    };
    let latency = start.elapsed();
    match result {
        Ok(detail) => Outcome {
            ok: true,
            latency,
            detail,
        },
        Err(detail) => Outcome {
            ok: false,
            latency,
            detail,
        },
    }
}

async fn connect(host: &str, port: u16) -> Result<TcpStream, String> {
    // An IPv6 literal is written [addr] in the file.
    let host = host.trim_start_matches('[').trim_end_matches(']');
    TcpStream::connect((host, port))
        .await
        .map_err(|e| format!("connect to {host}:{port}: {e}"))
}

/// `GET path HTTP/1.0`; healthy on a 2xx or 3xx status line.
async fn http_get(host: &str, port: u16, path: &str) -> Result<String, String> {
    let mut stream = connect(host, port).await?;
    let request = format!(
        "GET {path} HTTP/1.0\r\nHost: {host}\r\nUser-Agent: ipfail-check\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| format!("send request: {e}"))?;
    let mut head = Vec::with_capacity(256);
    let mut buf = [0u8; 256];
    while !head.contains(&b'\n') && head.len() < 4096 {
        let n = stream
            .read(&mut buf)
            .await
            .map_err(|e| format!("read answer: {e}"))?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(buf.get(..n).unwrap_or_default());
    }
    let line = String::from_utf8_lossy(&head);
    let line = line.lines().next().unwrap_or("").trim().to_string();
    let code: Option<u16> = line
        .strip_prefix("HTTP/")
        .and_then(|rest| rest.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok());
    match code {
        Some(200..=399) => Ok(line),
        Some(_) => Err(line),
        None if line.is_empty() => Err("no answer (connection closed)".to_string()),
        None => Err(format!("not an HTTP answer: {line:.80}")),
    }
}

/// Runs `argv` without a shell in a process group of its own; on timeout
/// the whole group is killed. Healthy on exit status 0.
async fn exec(argv: &[String], timeout: Duration) -> Result<String, String> {
    let Some((program, args)) = argv.split_first() else {
        return Err("empty command".to_string());
    };
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let child = cmd
        .spawn()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    let pid = child.id();
    match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Ok(Ok(out)) => {
            let text = |b: &[u8]| {
                let s = String::from_utf8_lossy(b);
                let s = s.trim();
                s.chars().take(OUTPUT_MAX).collect::<String>()
            };
            let detail = format!(
                "{}{}{}",
                out.status,
                if out.stdout.is_empty() {
                    ""
                } else {
                    "; stdout: "
                },
                text(&out.stdout)
            ) + &if out.stderr.is_empty() {
                String::new()
            } else {
                format!("; stderr: {}", text(&out.stderr))
            };
            if out.status.success() {
                Ok(detail)
            } else {
                Err(detail)
            }
        }
        Ok(Err(e)) => Err(format!("waiting for {program}: {e}")),
        Err(_) => {
            // The child itself is killed on drop; its children by group.
            if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) {
                let _ = nix::sys::signal::killpg(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            Err(format!("killed after {timeout:?} (timeout)"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
    }

    fn exec_check(args: &[&str]) -> CheckKind {
        CheckKind::Exec {
            argv: args.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn exec_passes_on_exit_0_fails_otherwise_and_is_killed_at_its_timeout() {
        rt().block_on(async {
            let ok = once(
                &exec_check(&["/bin/sh", "-c", "echo fine"]),
                Duration::from_secs(5),
            )
            .await;
            assert!(ok.ok, "{ok:?}");
            assert!(ok.detail.contains("fine"), "{ok:?}");
            let bad = once(
                &exec_check(&["/bin/sh", "-c", "echo broken >&2; exit 3"]),
                Duration::from_secs(5),
            )
            .await;
            assert!(!bad.ok && bad.detail.contains("broken"), "{bad:?}");
            let missing = once(&exec_check(&["/nonexistent/check"]), Duration::from_secs(5)).await;
            assert!(
                !missing.ok && missing.detail.contains("cannot run"),
                "{missing:?}"
            );

            // A check that hangs, with a child of its own: both are gone
            // after the timeout (the child by process group).
            let marker = std::env::temp_dir().join(format!("ipfail-hang-{}", std::process::id()));
            let script = format!("sleep 30 & echo $! > {}; wait", marker.display());
            let t = Instant::now();
            let hung = once(
                &exec_check(&["/bin/sh", "-c", &script]),
                Duration::from_millis(300),
            )
            .await;
            assert!(!hung.ok && hung.detail.contains("timeout"), "{hung:?}");
            assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
            tokio::time::sleep(Duration::from_millis(100)).await;
            let pid = std::fs::read_to_string(&marker).unwrap_or_default();
            let _ = std::fs::remove_file(&marker);
            let pid = pid.trim();
            assert!(!pid.is_empty(), "the script wrote its child's pid");
            let alive = std::path::Path::new(&format!("/proc/{pid}")).exists()
                && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .unwrap_or_default()
                    .contains(") Z ");
            assert!(!alive, "the hung check's child {pid} survived");
        });
    }

    #[test]
    fn tcp_and_http_checks_judge_a_local_server() {
        rt().block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            let port = listener.local_addr().expect("addr").port();
            let server = tokio::spawn(async move {
                for status in ["200 OK", "503 Service Unavailable", "302 Found"] {
                    let (mut s, _) = listener.accept().await.expect("accept");
                    let mut buf = [0u8; 512];
                    let _ = s.read(&mut buf).await;
                    let answer = format!("HTTP/1.0 {status}\r\nContent-Length: 0\r\n\r\n");
                    let _ = s.write_all(answer.as_bytes()).await;
                }
            });
            let http = CheckKind::Http {
                host: "127.0.0.1".into(),
                port,
                path: "/health".into(),
            };
            let t = Duration::from_secs(2);
            let first = once(&http, t).await;
            assert!(first.ok && first.detail.contains("200"), "{first:?}");
            let second = once(&http, t).await;
            assert!(!second.ok && second.detail.contains("503"), "{second:?}");
            assert!(once(&http, t).await.ok, "3xx is healthy");
            server.await.expect("server");
            // A port bound but not listening (held, so that no other test
            // can take it meanwhile): refused.
            let closed = tokio::net::TcpSocket::new_v4().expect("socket");
            closed
                .bind("127.0.0.1:0".parse().expect("addr"))
                .expect("bind");
            let tcp = CheckKind::Tcp {
                host: "127.0.0.1".into(),
                port: closed.local_addr().expect("addr").port(),
            };
            let refused = once(&tcp, t).await;
            assert!(!refused.ok, "{refused:?}");
        });
    }
}
