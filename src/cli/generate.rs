//! `samverka completions SHELL` and `samverka man DIR`: shell completion
//! scripts and manual pages, made from the same clap definition that
//! parses the command line, so that they cannot drift from it.
//!
//! ```text
//! samverka completions bash > /etc/bash_completion.d/samverka
//! samverka completions zsh  > "${fpath[1]}/_samverka"
//! samverka man /usr/local/share/man/man1     # samverka.1, samverka-serve.1, ...
//! ```

use std::path::{Path, PathBuf};

use clap::CommandFactory;
use clap_complete::Shell;

use super::{COMMIT, Cli, CliError, VERSION};

/// The completion script for `shell`, to print.
pub fn completions(shell: Shell) -> Result<String, CliError> {
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "samverka", &mut out);
    String::from_utf8(out).map_err(CliError::failed)
}

/// Writes a manual page (section 1, roff) for `samverka` and one for every
/// command and subcommand into `dir` (created if missing):
/// `samverka.1`, `samverka-serve.1`, `samverka-consent-grant.1`, ...
pub fn man(dir: &Path) -> Result<String, CliError> {
    let usage = |e: std::io::Error| CliError::Usage(format!("{}: {e}", dir.display()));
    std::fs::create_dir_all(dir).map_err(usage)?;
    let mut cli = Cli::command().disable_help_subcommand(true);
    // Gives every subcommand its full name (`samverka-consent-grant`).
    cli.build();
    let mut written = Vec::new();
    write_pages(&cli, dir, &mut written).map_err(usage)?;
    Ok(format!(
        "{} manual pages written to {}\n",
        written.len(),
        dir.display()
    ))
}

fn write_pages(
    command: &clap::Command,
    dir: &Path,
    written: &mut Vec<PathBuf>,
) -> std::io::Result<()> {
    // The commit's date, not the build's (see build.rs).
    let date = COMMIT.split_once(' ').map_or("", |(_, date)| date);
    let page = clap_mangen::Man::new(command.clone())
        .date(date)
        .source(format!("samverka {VERSION}"))
        .manual("samverka");
    written.push(page.generate_to(dir)?);
    for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_pages(sub, dir, written)?;
    }
    Ok(())
}
