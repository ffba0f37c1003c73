//! The trait every std output implements ([`Show`]: a screen in, drawn or written out), the
//! output that shows nothing, and how an output may treat signals. Outputs depend on this
//! module; the factory (`output`) depends on the outputs — no cycle.

use std::io;

use crate::screen::Screen;

/// An output the CLI calls on every state change and about once a second for the countdown.
///
/// Implementations are cheap to call repeatedly: they redraw only what changed (files at most
/// every ~10 s for the countdown, immediately when the state or code changes).
pub trait Show {
    /// Shows `screen`.
    fn show(&mut self, screen: &Screen) -> io::Result<()>;
}

impl<T: Show + ?Sized> Show for Box<T> {
    fn show(&mut self, screen: &Screen) -> io::Result<()> {
        (**self).show(screen)
    }
}

/// Shows nothing (`--display none`).
#[derive(Clone, Copy, Debug, Default)]
pub struct NoDisplay;

impl Show for NoDisplay {
    fn show(&mut self, _: &Screen) -> io::Result<()> {
        Ok(())
    }
}

/// Who takes care of the terminating signals while an output that changes the console is
/// open (today only the Linux framebuffer, which switches the console to graphics mode and
/// must switch it back).
///
/// SIGHUP is never handled by this crate in either mode: it often means "reload", and its
/// default action is the program's business.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SignalHandling {
    /// For programs that do not handle signals themselves (the default). On SIGINT, SIGTERM
    /// or SIGQUIT the open outputs restore the console and the process then ends as the
    /// signal's default action would. The handlers stay for the life of the process, so the
    /// signals keep ending it after the outputs are dropped; an output dropped normally
    /// restores the console itself.
    #[default]
    RestoreAndExit,
    /// The program handles its termination signals itself and drops the outputs on the way
    /// out (dropping restores the console): no signal handlers are installed at all, so
    /// nothing here ends the process behind the program's back. A terminating signal the
    /// program does not handle ends it with the console left as it was (e.g. in graphics
    /// mode).
    Program,
}
