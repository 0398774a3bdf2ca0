//! SIGTERM and SIGINT for the whole process, from the first moment of a
//! command: the first one is recorded, and whoever handles signals at that
//! moment acts on it; with nobody handling them the process exits at once
//! (143 for SIGTERM, 130 for SIGINT), as the signals' default action would.
//!
//! Why not the default action: as a container's first process (PID 1) a
//! program has none, so a SIGTERM before its handler was installed was
//! ignored until the scheduler's SIGKILL; and a handler installed by one
//! part (an apply's [`crate::interrupt::Interrupt`], a backup) stays
//! installed after that part ends, so a signal after it went unheard.
//! Listening on a thread of its own from the start closes both gaps.
//!
//! Handlers: [`handling`] (a backup that stops and releases its lease, the
//! metrics linger that ends early) and the apply's `Interrupt`, which holds
//! a [`Handling`] for its life.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

/// The exit code of the first signal (0: none yet).
static RECEIVED: AtomicU8 = AtomicU8::new(0);
/// Its name, for messages.
static NAME: OnceLock<&'static str> = OnceLock::new();
/// How many parts handle signals now.
static HANDLERS: AtomicUsize = AtomicUsize::new(0);
/// Told of the first signal.
static FIRST: OnceLock<tokio::sync::watch::Sender<u8>> = OnceLock::new();

/// Listens for SIGTERM and SIGINT on a thread of its own, for the rest of
/// the process; once is enough, later calls do nothing. Returns once the
/// listening has begun.
pub fn install() -> std::io::Result<()> {
    static INSTALLED: OnceLock<Result<(), String>> = OnceLock::new();
    let installed = INSTALLED.get_or_init(|| {
        let _ = FIRST.set(tokio::sync::watch::channel(0).0);
        let (ready, listening) = std::sync::mpsc::channel();
        let spawned = std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || listen(&ready));
        match spawned {
            Ok(_) => listening
                .recv()
                .unwrap_or_else(|_| Err("the signal thread ended".into())),
            Err(e) => Err(e.to_string()),
        }
    });
    installed.clone().map_err(std::io::Error::other)
}

fn listen(ready: &std::sync::mpsc::Sender<Result<(), String>>) {
    use tokio::signal::unix::{SignalKind, signal};
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            let _ = ready.send(Err(e.to_string()));
            return;
        }
    };
    runtime.block_on(async {
        let (mut term, mut int) = match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(term), Ok(int)) => (term, int),
            (Err(e), _) | (_, Err(e)) => {
                let _ = ready.send(Err(e.to_string()));
                return;
            }
        };
        let _ = ready.send(Ok(()));
        loop {
            let (name, code) = tokio::select! {
                _ = term.recv() => ("terminated (SIGTERM)", 143),
                _ = int.recv() => ("interrupted (SIGINT)", 130),
            };
            on_signal(name, code);
        }
    });
}

fn on_signal(name: &'static str, code: u8) {
    if RECEIVED
        .compare_exchange(0, code, Ordering::SeqCst, Ordering::SeqCst)
        .is_ok()
    {
        let _ = NAME.set(name);
        if let Some(first) = FIRST.get() {
            first.send_replace(code);
        }
    }
    if HANDLERS.load(Ordering::SeqCst) == 0 {
        crate::cli::say(&format!("{name}: exiting"));
        std::process::exit(code.into());
    }
}

/// The first signal's name and exit code, if one came.
pub fn received() -> Option<(&'static str, u8)> {
    match RECEIVED.load(Ordering::SeqCst) {
        0 => None,
        code => Some((NAME.get().copied().unwrap_or("signalled"), code)),
    }
}

/// Waits for the first signal (at once if it came already): its name and
/// exit code. Never returns when [`install`] was not called.
pub async fn requested() -> (&'static str, u8) {
    let Some(first) = FIRST.get() else {
        return std::future::pending().await;
    };
    let mut rx = first.subscribe();
    match rx.wait_for(|code| *code != 0).await {
        Ok(code) => {
            let code = *code;
            (NAME.get().copied().unwrap_or("signalled"), code)
        }
        // the sender lives in a static: never dropped
        Err(_) => std::future::pending().await,
    }
}

/// While held, signals are recorded and left to the holder instead of ending
/// the process.
#[must_use = "signals are handled only while this is held"]
#[derive(Debug)]
pub struct Handling(());

/// Takes over signals until the returned guard is dropped.
pub fn handling() -> Handling {
    HANDLERS.fetch_add(1, Ordering::SeqCst);
    Handling(())
}

impl Drop for Handling {
    fn drop(&mut self) {
        HANDLERS.fetch_sub(1, Ordering::SeqCst);
    }
}
