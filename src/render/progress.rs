//! Where progress goes: bars on a terminal; with `--progress always` and stderr not a
//! terminal (CI logs, files), one plain line per second instead of redrawn bars.

use std::io::{IsTerminal, Write};

use indicatif::{ProgressDrawTarget, TermLike};

/// The draw target for `settings.progress`.
pub(crate) fn target(progress: bool) -> ProgressDrawTarget {
    if !progress {
        ProgressDrawTarget::hidden()
    } else if std::io::stderr().is_terminal() {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::term_like_with_hz(Box::new(PlainLines), 1)
    }
}

/// A "terminal" that cannot move its cursor: every redraw becomes new lines on stderr.
#[derive(Debug)]
struct PlainLines;

impl TermLike for PlainLines {
    fn width(&self) -> u16 {
        100
    }

    fn move_cursor_up(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }

    fn move_cursor_down(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }

    fn move_cursor_right(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }

    fn move_cursor_left(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }

    fn write_line(&self, s: &str) -> std::io::Result<()> {
        let line = s.trim_end();
        if line.is_empty() {
            return Ok(());
        }
        writeln!(std::io::stderr().lock(), "{line}")
    }

    fn write_str(&self, s: &str) -> std::io::Result<()> {
        self.write_line(s)
    }

    fn clear_line(&self) -> std::io::Result<()> {
        Ok(())
    }

    fn flush(&self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}
