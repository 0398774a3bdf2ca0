//! Ctrl-C (SIGINT) and SIGTERM for commands that change a live target.
//!
//! While such a command is inside a section that must end cleanly (the
//! registry steps of `apply`, which set temporary modes and compatibility
//! levels), the first signal asks the section to stop: it starts no new step,
//! lets the running ones finish, puts the temporary settings back and reports.
//! A second signal, or a signal outside such a section, ends the process at
//! once (exit code 130 for SIGINT, 143 for SIGTERM) after one line saying what
//! may be left behind and how to finish it.
//!
//! A process killed with SIGKILL gets no say: the journals let the next run
//! (or `kafka-backup put-back`) finish the job.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

/// Whether a stop was asked for, and what to say if the process must end at once.
#[derive(Debug, Default)]
pub struct Interrupt {
    /// The exit code of the signal that asked for a stop (0: none yet).
    requested: AtomicU8,
    /// Set while a section that stops cleanly runs: what to print when the
    /// first signal asks it to stop, and if a second one ends the process anyway.
    section: Mutex<Option<(String, String)>>,
    /// Signals are this one's to act on while it lives ([`crate::signals`]
    /// records them and leaves the process running).
    _handling: Option<crate::signals::Handling>,
}

impl Interrupt {
    /// An interrupt nobody signals (tests, dry runs): [`Self::requested`]
    /// stays false unless [`Self::request`] is called.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Listens for SIGINT and SIGTERM on `runtime` for the rest of the process.
    pub fn install(runtime: &tokio::runtime::Runtime) -> std::io::Result<Arc<Self>> {
        use tokio::signal::unix::{SignalKind, signal};
        let this = Arc::new(Self {
            _handling: Some(crate::signals::handling()),
            ..Self::default()
        });
        let _guard = runtime.enter();
        let mut int = signal(SignalKind::interrupt())?;
        let mut term = signal(SignalKind::terminate())?;
        let me = Arc::clone(&this);
        runtime.spawn(async move {
            loop {
                let (name, code): (&str, u8) = tokio::select! {
                    _ = int.recv() => ("interrupted (SIGINT)", 130),
                    _ = term.recv() => ("terminated (SIGTERM)", 143),
                };
                me.on_signal(name, code);
            }
        });
        Ok(this)
    }

    /// Whether a stop was asked for.
    pub fn requested(&self) -> bool {
        self.requested.load(Ordering::SeqCst) != 0
    }

    /// The exit code a process stopped on request ends with: 128 plus the
    /// signal's number (130 for SIGINT, 143 for SIGTERM).
    pub fn exit_code(&self) -> u8 {
        match self.requested.load(Ordering::SeqCst) {
            0 => 1,
            code => code,
        }
    }

    /// Asks the running section to stop, as SIGINT does.
    pub fn request(&self) {
        self.request_with(130);
    }

    fn request_with(&self, code: u8) {
        let _ = self
            .requested
            .compare_exchange(0, code, Ordering::SeqCst, Ordering::SeqCst);
    }

    /// Runs `f` as a section that stops cleanly on the first signal;
    /// `on_forced_exit` is printed if a second one ends the process.
    pub fn section<R>(&self, on_forced_exit: String, f: impl FnOnce() -> R) -> R {
        self.section_saying(
            "no new step starts; the running ones finish, then the temporary settings are put back (signal again to exit at once)".into(),
            on_forced_exit,
            f,
        )
    }

    /// [`Self::section`] with what the first signal prints (`on_request`).
    pub fn section_saying<R>(
        &self,
        on_request: String,
        on_forced_exit: String,
        f: impl FnOnce() -> R,
    ) -> R {
        *self.section.lock().expect("the lock is never poisoned") =
            Some((on_request, on_forced_exit));
        let result = f();
        *self.section.lock().expect("the lock is never poisoned") = None;
        result
    }

    fn on_signal(&self, name: &str, code: u8) {
        let section = self
            .section
            .lock()
            .expect("the lock is never poisoned")
            .clone();
        match section {
            Some((on_request, _)) if !self.requested() => {
                self.request_with(code);
                crate::cli::say(&format!("{name}: {on_request}"));
            }
            Some((_, left)) => {
                crate::cli::say(&format!("{name} again: exiting now\n{left}"));
                std::process::exit(code.into());
            }
            None => {
                crate::cli::say(&format!(
                    "{name}: exiting; what was done is journalled and the same command goes on from there"
                ));
                std::process::exit(code.into());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_section_is_stopped_by_a_request_and_leaves_no_forced_exit_message() {
        let i = Interrupt::new();
        assert!(!i.requested());
        let inside = i.section("left".into(), || {
            i.request();
            i.section.lock().unwrap().clone()
        });
        assert_eq!(inside.map(|(_, left)| left).as_deref(), Some("left"));
        assert!(i.requested());
        assert!(i.section.lock().unwrap().is_none());
    }
}
