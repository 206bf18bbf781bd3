//! systemd's service notifications (`Type=notify`, `WatchdogSec=`), with
//! the `sd-notify` crate.
//!
//! Sending to `$NOTIFY_SOCKET` is a blocking datagram send to PID 1, and
//! nothing on the advert path may wait (docs/design.md §3.5), so the sends
//! happen on a thread of their own: the event loop only hands it a message
//! with `try_send`, which never waits (a full queue drops the message). The
//! watchdog keep-alives still come from the loop itself: the thread sends
//! one only when the loop asks, so a loop that hangs stops them and systemd
//! restarts the daemon (its IPs are already gone by then: their kernel
//! leases ran out, docs/safety.md §4).
//!
//! Without `$NOTIFY_SOCKET` (not started by systemd, or `Type=simple`)
//! everything here does nothing and no thread is started.

use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::time::Duration;

use sd_notify::NotifyState;

enum Msg {
    Ready(String),
    Alive,
    Status(String),
    Stopping,
}

/// The daemon's side of systemd's notification protocol.
pub struct Notifier {
    tx: Option<SyncSender<Msg>>,
    watchdog: Option<Duration>,
}

impl Notifier {
    /// From the environment systemd sets: `$NOTIFY_SOCKET`, and
    /// `$WATCHDOG_USEC` (for this PID) when the unit has `WatchdogSec=`.
    pub fn from_env() -> Notifier {
        if std::env::var_os("NOTIFY_SOCKET").is_none() {
            return Notifier {
                tx: None,
                watchdog: None,
            };
        }
        let (tx, rx) = sync_channel::<Msg>(8);
        let spawned = std::thread::Builder::new()
            .name("ipfail-sd-notify".into())
            .spawn(move || {
                while let Ok(msg) = rx.recv() {
                    let r = match &msg {
                        Msg::Ready(status) => {
                            sd_notify::notify(&[NotifyState::Ready, NotifyState::Status(status)])
                        }
                        Msg::Alive => sd_notify::notify(&[NotifyState::Watchdog]),
                        Msg::Status(status) => sd_notify::notify(&[NotifyState::Status(status)]),
                        Msg::Stopping => sd_notify::notify(&[NotifyState::Stopping]),
                    };
                    if let Err(e) = r {
                        tracing::warn!("systemd notification failed: {e}");
                    }
                }
            });
        match spawned {
            Ok(_) => Notifier {
                tx: Some(tx),
                watchdog: sd_notify::watchdog_enabled(),
            },
            Err(e) => {
                tracing::warn!("cannot start the systemd notification thread: {e}");
                Notifier {
                    tx: None,
                    watchdog: None,
                }
            }
        }
    }

    /// How often the loop should call [`Notifier::alive`]: half the
    /// watchdog timeout, as sd_watchdog_enabled(3) advises; `None` without
    /// `WatchdogSec=`.
    pub fn keepalive_every(&self) -> Option<Duration> {
        self.watchdog
            .filter(|_| self.tx.is_some())
            .map(|w| (w / 2).max(Duration::from_millis(10)))
    }

    /// READY=1: the sockets are open and every group has its first state.
    pub fn ready(&self, status: String) {
        self.send(Msg::Ready(status));
    }

    /// WATCHDOG=1, from the event loop.
    pub fn alive(&self) {
        self.send(Msg::Alive);
    }

    /// STATUS=..., shown by `systemctl status`.
    pub fn status(&self, status: String) {
        self.send(Msg::Status(status));
    }

    /// STOPPING=1: the graceful stop has begun.
    pub fn stopping(&self) {
        self.send(Msg::Stopping);
    }

    fn send(&self, msg: Msg) {
        if let Some(tx) = &self.tx {
            match tx.try_send(msg) {
                Ok(()) | Err(TrySendError::Full(_)) => {}
                Err(TrySendError::Disconnected(_)) => {
                    tracing::debug!("the systemd notification thread is gone")
                }
            }
        }
    }
}
