//! The terminal: raw mode, the alternate screen and mouse capture while the dashboard runs,
//! keyboard and mouse input on a thread of its own, and putting everything back.
//!
//! Invariant: once [`enter`] succeeded, the terminal is restored (raw mode off, mouse
//! capture off, alternate screen left, cursor shown) exactly once, whichever way the program ends: a normal exit
//! (the guard's drop), an error, or a panic on any thread other than an [`isolated`] task
//! (whose panic becomes that task's error and leaves the screen alone).

use std::{
    cell::Cell,
    future::Future,
    io::{self, Write},
    pin::Pin,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Once,
    },
    task::{Context, Poll},
    thread::JoinHandle,
    time::Duration,
};

use crossterm::{
    cursor::Show,
    event::{self, DisableMouseCapture, EnableMouseCapture, Event},
    execute,
    terminal::{
        disable_raw_mode, enable_raw_mode, Clear, ClearType, EnterAlternateScreen,
        LeaveAlternateScreen,
    },
};
use ratatui::{backend::CrosstermBackend, Terminal};
use tokio::sync::mpsc;

use crate::app::Msg;

/// Whether the terminal is in the dashboard's mode (and needs restoring).
static ACTIVE: AtomicBool = AtomicBool::new(false);
static HOOK: Once = Once::new();

thread_local! {
    /// Set while an [`isolated`] future is being polled on this thread.
    static ISOLATED: Cell<bool> = const { Cell::new(false) };
}

pub type Term = Terminal<CrosstermBackend<io::Stdout>>;

/// Owns the terminal while the dashboard runs; restores it when dropped.
pub struct Guard {
    pub terminal: Term,
}

impl Drop for Guard {
    fn drop(&mut self) {
        restore();
    }
}

/// Puts the terminal back as it was. Idempotent.
pub fn restore() {
    if ACTIVE.swap(false, Ordering::SeqCst) {
        let _ = disable_raw_mode();
        let mut out = io::stdout();
        let _ = execute!(out, DisableMouseCapture, LeaveAlternateScreen, Show);
        let _ = out.flush();
    }
}

/// Raw mode, alternate screen, mouse capture, hidden cursor; installs the panic hook first.
pub fn enter() -> io::Result<Guard> {
    install_panic_hook();
    enable_raw_mode()?;
    ACTIVE.store(true, Ordering::SeqCst);
    let entered = (|| {
        // No `Terminal::clear`: it asks the terminal for the cursor position, which some
        // terminals (and pseudo-terminals without one behind) never answer.
        execute!(
            io::stdout(),
            EnterAlternateScreen,
            EnableMouseCapture,
            Clear(ClearType::All)
        )?;
        let mut terminal = Terminal::new(CrosstermBackend::new(io::stdout()))?;
        terminal.hide_cursor()?;
        Ok(terminal)
    })();
    match entered {
        Ok(terminal) => Ok(Guard { terminal }),
        Err(e) => {
            restore();
            Err(e)
        }
    }
}

/// On a panic outside an isolated task: restore the terminal first so the message is
/// readable, then report it as usual. A panic inside one is left to its task's error.
fn install_panic_hook() {
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if ISOLATED.with(Cell::get) {
                return;
            }
            restore();
            previous(info);
        }));
    });
}

/// Wraps a future so that a panic while it is polled is not reported on the screen: the
/// task spawned with it fails with a `JoinError` that the caller turns into an error.
pub fn isolated<F: Future>(fut: F) -> Isolated<F> {
    Isolated {
        inner: Box::pin(fut),
    }
}

pub struct Isolated<F> {
    inner: Pin<Box<F>>,
}

impl<F: Future> Future for Isolated<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        struct Reset(bool);
        impl Drop for Reset {
            fn drop(&mut self) {
                let previous = self.0;
                ISOLATED.with(|f| f.set(previous));
            }
        }
        let _reset = Reset(ISOLATED.with(|f| f.replace(true)));
        self.inner.as_mut().poll(cx)
    }
}

/// The keyboard/resize reader: a plain thread polling crossterm, stopped by [`Input::stop`].
///
/// It is never joined: once the terminal hangs up, crossterm's reader can spin inside
/// `event::poll` without returning (it retries a read that keeps failing), so waiting for
/// the thread would hang the exit. The process ends with it instead.
pub struct Input {
    stop: Arc<AtomicBool>,
    _handle: Option<JoinHandle<()>>,
}

impl Input {
    pub fn spawn(to_ui: mpsc::UnboundedSender<Msg>) -> Input {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::Builder::new()
            .name("monitor-input".into())
            .spawn(move || read_loop(&flag, &to_ui))
            .ok();
        Input {
            stop,
            _handle: handle,
        }
    }

    /// Asks the thread to stop at its next poll (at most 100 ms), without waiting for it.
    pub fn stop(self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn read_loop(stop: &AtomicBool, to_ui: &mpsc::UnboundedSender<Msg>) {
    while !stop.load(Ordering::SeqCst) {
        let msg = match event::poll(Duration::from_millis(100)) {
            Ok(false) => continue,
            Ok(true) => match event::read() {
                Ok(Event::Key(key)) => Msg::Key(key),
                Ok(Event::Resize(..)) => Msg::Resize,
                Ok(Event::Mouse(m)) => Msg::Mouse(m),
                Ok(_) => continue,
                // The terminal is gone: nobody can see or drive the dashboard.
                Err(_) => Msg::Quit,
            },
            Err(_) => Msg::Quit,
        };
        let quit = matches!(msg, Msg::Quit);
        if to_ui.send(msg).is_err() || quit {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panic_in_an_isolated_task_is_its_error_and_leaves_the_terminal() {
        install_panic_hook();
        let task = tokio::spawn(isolated(async {
            if ISOLATED.with(Cell::get) {
                panic!("boom in a query");
            }
            1
        }));
        let err = match task.await {
            Err(e) => e,
            Ok(v) => panic!("no panic ({v}): the flag was not set while polling"),
        };
        assert!(err.is_panic());
        assert!(!ISOLATED.with(Cell::get), "flag left set after the poll");
    }

    #[test]
    fn a_panic_elsewhere_restores_the_terminal_first() {
        install_panic_hook();
        // Pretend the dashboard's mode is on; restoring on a non-terminal only writes
        // escape sequences, which is harmless here.
        ACTIVE.store(true, Ordering::SeqCst);
        let joined = std::thread::spawn(|| panic!("boom in the UI")).join();
        assert!(joined.is_err());
        assert!(!ACTIVE.load(Ordering::SeqCst), "the hook did not restore");
        // Idempotent.
        restore();
    }
}
