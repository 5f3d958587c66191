//! What `sv-miner`, `sv-trainer` and `sv-curator` share on the command line, so that
//! they behave alike: errors reported on one line with their causes ([`error_line`],
//! [`exit`]), the cache directory ([`cache_dir`]), progress bars that only draw on a
//! terminal ([`progress_bar`]), the y/N question ([`confirm`]), `--json` results
//! ([`Output`]) and the global allocator ([`alloc`]).
//!
//! ```
//! let e = anyhow::anyhow!("no such file").context("reading runs/a/config.toml");
//! assert_eq!(
//!     sv_cli::error_line(&e),
//!     "reading runs/a/config.toml: no such file"
//! );
//! ```

#![warn(missing_docs)]

pub mod alloc;

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;

use anyhow::{Result, bail};
use indicatif::{ProgressBar, ProgressStyle};

/// The error and its causes on one line, leaving out a cause its parent already quotes.
pub fn error_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !line.contains(&text) {
            if !line.is_empty() {
                line.push_str(": ");
            }
            line.push_str(&text);
        }
    }
    line
}

/// Parse the command line as `C`, reporting a usage error the way [`exit`] reports
/// every error: `{program}: error: …` on one line (then clap's usage line and hint),
/// exit 2. `--help` and `--version` print and exit 0. Before parsing, a flag spelled
/// the old way (`renamed`: old → new, e.g. `("--repo", "--hub-repo")`) gets a note on
/// standard error; the flag itself stays accepted as an alias.
pub fn parse<C: clap::Parser>(program: &str, renamed: &[(&str, &str)]) -> C {
    for arg in std::env::args().skip(1) {
        let flag = arg.split('=').next().unwrap_or("");
        if let Some((old, new)) = renamed.iter().find(|(old, _)| *old == flag) {
            eprintln!("{program}: note: {old} is now {new}; the old spelling will go");
        }
    }
    match C::try_parse() {
        Ok(c) => c,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(
                e.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) {
                let _ = e.print();
                std::process::exit(
                    if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                        2
                    } else {
                        0
                    },
                );
            }
            let text = e.render().to_string();
            let mut lines = text.lines().filter(|l| !l.trim().is_empty());
            let first = lines.next().unwrap_or("invalid arguments");
            eprintln!(
                "{program}: error: {}",
                first.strip_prefix("error: ").unwrap_or(first)
            );
            for l in lines {
                eprintln!("  {}", l.trim());
            }
            std::process::exit(2)
        }
    }
}

/// Exit status of a command stopped on request with its state saved ([`Interrupted`]):
/// 75, `EX_TEMPFAIL` — run it again to continue.
pub const EXIT_INTERRUPTED: i32 = 75;

/// A command stopped on request (SIGTERM, SIGINT) after saving what it had done, so
/// running it again continues: [`exit`] reports it as `{program}: stopped: …` with
/// [`EXIT_INTERRUPTED`]. The text says what was saved and how to continue.
#[derive(Debug)]
pub struct Interrupted(pub String);

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Interrupted {}

/// End the program with `outcome`: exit 0 for `Ok(true)`; exit 1 for `Ok(false)` (the
/// command ran and its check failed); `{program}: stopped: …` and exit 75 for an
/// [`Interrupted`] command; `{program}: error: …` on standard error and exit 2 for any
/// other error.
pub fn exit(program: &str, outcome: Result<bool>) -> ! {
    match outcome {
        Ok(true) => std::process::exit(0),
        Ok(false) => std::process::exit(1),
        Err(e) if e.chain().any(|c| c.is::<Interrupted>()) => {
            eprintln!("{program}: stopped: {}", error_line(&e));
            std::process::exit(EXIT_INTERRUPTED)
        }
        Err(e) => {
            eprintln!("{program}: error: {}", error_line(&e));
            std::process::exit(2)
        }
    }
}

/// `$XDG_CACHE_HOME/streetvision-rs/<what>`, else `~/.cache/streetvision-rs/<what>`
/// (`.cache/…` in the working directory when neither is set).
pub fn cache_dir(what: &str) -> PathBuf {
    sv_fs::cache_dir(what)
}

/// A progress bar of `len` steps labelled `what`, or `None` when standard error is not
/// a terminal (logs get lines instead).
pub fn progress_bar(what: &str, len: u64) -> Option<ProgressBar> {
    std::io::stderr().is_terminal().then(|| {
        let b = ProgressBar::new(len);
        b.set_style(
            ProgressStyle::with_template(&format!(
                "{what} [{{bar:30}}] {{pos}}/{{len}} {{msg}} (eta {{eta}})"
            ))
            .expect("valid template")
            .progress_chars("=> "),
        );
        b
    })
}

/// Ask `question` with `[y/N]` and go on only on yes; `yes` (a `--yes` flag) answers
/// without asking. The question goes to standard error, so `--json` output stays clean.
/// Off a terminal the question cannot be asked: an error saying to pass
/// `--yes`. A no is an error with `refused`.
pub fn confirm(question: &str, yes: bool, refused: &str) -> Result<()> {
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        bail!("not on a terminal: pass --yes to go ahead without being asked");
    }
    eprint!("{question} [y/N] ");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    if !matches!(answer.trim(), "y" | "Y" | "yes") {
        bail!("{refused}");
    }
    Ok(())
}

/// Where a command's result goes. With `--json`, the result is one JSON document on
/// standard output and the lines written for a person go to standard error, so a script
/// reads stdout as it is; without it, those lines go to standard output and no JSON is
/// printed.
#[derive(Clone, Copy, Debug)]
pub struct Output {
    json: bool,
}

impl Output {
    /// The output of a command run with (`json`) or without `--json`.
    pub fn new(json: bool) -> Self {
        Output { json }
    }

    /// Whether `--json` was given.
    pub fn is_json(&self) -> bool {
        self.json
    }

    /// A line for a person: standard output, or standard error under `--json`.
    pub fn line(&self, text: impl std::fmt::Display) {
        if self.json {
            eprintln!("{text}");
        } else {
            println!("{text}");
        }
    }

    /// The command's result: printed (pretty JSON) under `--json`, nothing otherwise.
    pub fn result(&self, value: &impl serde::Serialize) -> Result<()> {
        if self.json {
            println!("{}", serde_json::to_string_pretty(value)?);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cause_quoted_by_its_parent_is_not_repeated() {
        let io = std::io::Error::other("disk full");
        let e = anyhow::Error::new(io).context("writing model.safetensors: disk full");
        assert_eq!(error_line(&e), "writing model.safetensors: disk full");
        let e = anyhow::anyhow!("b").context("a");
        assert_eq!(error_line(&e), "a: b");
    }
}
