//! `--explain`: every privileged step minc takes is also rendered as the shell command that
//! does the same thing, so a learner can read, paste and replay it.
//!
//! The rule that keeps the transcript true: a step is rendered by the code that performs it,
//! from the same arguments. Callers build a [`Cmd`] from the values they are about to pass to
//! the kernel and [`Cmd::emit`] it just before the call. Lines go out as `tracing` events on
//! the target `explain`; the CLI decides whether to print them. Where no shell command can do
//! a step (an fd passed over a socket), [`comment`] says so and names the closest equivalent.

use std::borrow::Cow;
use std::fmt::Write as _;

/// The tracing target of explain lines.
pub const TARGET: &str = "explain";

/// Whether anyone listens for explain lines (skip building them otherwise: they are on the
/// hot path of every `run`).
pub fn enabled() -> bool {
    tracing::enabled!(target: TARGET, tracing::Level::INFO)
}

/// Emits one rendered line (a command, or a `# comment`).
pub fn line(text: &str) {
    tracing::info!(target: TARGET, "{text}");
}

/// Emits a comment line: `# text`. For steps that have no shell equivalent, or context.
pub fn comment(text: &str) {
    if enabled() {
        line(&format!("# {text}"));
    }
}

/// Quotes one word for a POSIX shell: left bare when it is made only of safe characters,
/// otherwise in single quotes (a `'` inside becomes `'\''`).
pub fn quote(word: &str) -> Cow<'_, str> {
    let safe = |c: char| c.is_ascii_alphanumeric() || "@%+=:,./-_".contains(c);
    if !word.is_empty() && word.chars().all(safe) {
        Cow::Borrowed(word)
    } else {
        Cow::Owned(format!("'{}'", word.replace('\'', r"'\''")))
    }
}

/// A shell command being rendered: program, arguments, and an optional trailing comment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cmd {
    words: Vec<String>,
    /// Indexes of words the shell must see as written (`$$`), not quoted.
    raw: Vec<usize>,
    note: Option<String>,
    stdin: Option<String>,
    stdout_to: Option<String>,
}

impl Cmd {
    pub fn new(program: &str) -> Cmd {
        Cmd {
            words: vec![program.to_string()],
            ..Default::default()
        }
    }

    /// Appends one argument (quoted when rendered).
    pub fn arg(mut self, a: impl AsRef<std::ffi::OsStr>) -> Cmd {
        self.words.push(a.as_ref().to_string_lossy().into_owned());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Cmd
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        for a in args {
            self = self.arg(a);
        }
        self
    }

    /// Appends a word the shell must expand (`$$`, `$PID`): rendered unquoted.
    pub fn raw_arg(mut self, a: &str) -> Cmd {
        self.raw.push(self.words.len());
        self.words.push(a.to_string());
        self
    }

    /// Appends an argument only when `cond` holds.
    pub fn arg_if(self, cond: bool, a: impl AsRef<std::ffi::OsStr>) -> Cmd {
        if cond {
            self.arg(a)
        } else {
            self
        }
    }

    /// A trailing `# note` on the same line (why the step is there).
    pub fn note(mut self, n: impl Into<String>) -> Cmd {
        self.note = Some(n.into());
        self
    }

    /// Text fed on stdin, rendered as a quoted heredoc (`<<'EOF'`).
    pub fn stdin(mut self, text: impl Into<String>) -> Cmd {
        self.stdin = Some(text.into());
        self
    }

    /// Redirects the command's stdout to a file (`> PATH`).
    pub fn stdout_to(mut self, path: impl AsRef<std::ffi::OsStr>) -> Cmd {
        self.stdout_to = Some(path.as_ref().to_string_lossy().into_owned());
        self
    }

    /// The program and arguments, unquoted.
    pub fn words(&self) -> &[String] {
        &self.words
    }

    /// The command as one shell line (plus its heredoc, if any).
    pub fn render(&self) -> String {
        let mut s = self
            .words
            .iter()
            .enumerate()
            .map(|(i, w)| {
                if self.raw.contains(&i) {
                    Cow::Borrowed(w.as_str())
                } else {
                    quote(w)
                }
            })
            .collect::<Vec<_>>()
            .join(" ");
        if let Some(path) = &self.stdout_to {
            let _ = write!(s, " > {}", quote(path));
        }
        if let Some(body) = &self.stdin {
            let tag = heredoc_tag(body);
            let _ = write!(s, " <<'{tag}'");
            if let Some(n) = &self.note {
                let _ = write!(s, "   # {n}");
            }
            let _ = write!(s, "\n{body}");
            if !body.ends_with('\n') {
                s.push('\n');
            }
            s.push_str(&tag);
            return s;
        }
        if let Some(n) = &self.note {
            let _ = write!(s, "   # {n}");
        }
        s
    }

    /// Emits the rendered command when explaining.
    pub fn emit(&self) {
        if enabled() {
            line(&self.render());
        }
    }
}

/// A heredoc delimiter that does not occur as a line of `body`.
fn heredoc_tag(body: &str) -> String {
    let mut tag = String::from("EOF");
    while body.lines().any(|l| l == tag) {
        tag.push('_');
    }
    tag
}

/// Renders writing `content` to `path` as a shell step (`cat > PATH <<'EOF'`).
pub fn write_file(path: &std::path::Path, content: &str) -> Cmd {
    Cmd::new("cat").stdout_to(path).stdin(content)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(quote("abc/def-1.2"), "abc/def-1.2");
        assert_eq!(quote(""), "''");
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(quote("$HOME"), "'$HOME'");
    }

    #[test]
    fn render_with_note_and_heredoc() {
        let c = Cmd::new("mount").args(["--bind", "/a b", "/c"]).note("why");
        assert_eq!(c.render(), "mount --bind '/a b' /c   # why");
        let c = Cmd::new("nft")
            .arg("-f")
            .arg("-")
            .stdin("add table inet minc\n");
        assert_eq!(c.render(), "nft -f - <<'EOF'\nadd table inet minc\nEOF");
        let c = Cmd::new("nft").arg("-f").arg("-").stdin("EOF\n");
        assert_eq!(c.render(), "nft -f - <<'EOF_'\nEOF\nEOF_");
        let c = write_file(std::path::Path::new("/x y"), "a\n");
        assert_eq!(c.render(), "cat > '/x y' <<'EOF'\na\nEOF");
    }
}
