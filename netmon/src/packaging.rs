//! What an installed netmon carries besides its own code: the long version line, shell
//! completions and man pages, all generated from the clap definitions in `cli` so they cannot
//! drift from the flags the binary really accepts. Man pages come from a separate binary
//! (`netmon-mangen`, used by `cargo xtask dist`): as a hidden subcommand they would still be
//! offered by every completion script, which clap_complete generates for hidden commands too.
use std::{
    io::Write,
    path::{Path, PathBuf},
    process::ExitCode,
};

use anyhow::{Context, Result};
use clap::CommandFactory;

use crate::cli::{Cli, CompletionsArgs};

/// `netmon --version`: the crate version, the git revision it was built from and a short
/// SHA-256 of the embedded eBPF object (both set by build.rs).
pub const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (git ",
    env!("NETMON_GIT_REV"),
    ", ebpf ",
    env!("NETMON_BPF_ID"),
    ")"
);

/// Man page section: netmon needs root or capabilities, so it is an administration command.
const SECTION: &str = "8";

pub fn completions(args: &CompletionsArgs, out: &mut dyn Write) -> Result<ExitCode> {
    let mut cmd = Cli::command();
    clap_complete::generate(args.shell, &mut cmd, "netmon", out);
    Ok(ExitCode::SUCCESS)
}

/// netmon.8 and one page per visible subcommand (netmon-run.8, ...), into `dir`, dated `date`
/// (YYYY-MM-DD).
pub fn write_manpages(dir: &Path, date: &str) -> Result<Vec<PathBuf>> {
    // The `help` pseudo-subcommand would get a page of its own; `netmon help X` is `netmon X
    // --help`, which every page already documents.
    let mut cmd = Cli::command().disable_help_subcommand(true);
    // Building fills in what the pages print: bin names ("netmon run") for the synopsis,
    // display names ("netmon-run") for titles and file names, and propagated global flags.
    cmd.build();
    let mut written = Vec::new();
    write_page(&cmd, dir, date, &mut written)?;
    Ok(written)
}

fn write_page(
    cmd: &clap::Command,
    dir: &Path,
    date: &str,
    written: &mut Vec<PathBuf>,
) -> Result<()> {
    let name = cmd.get_display_name().unwrap_or_else(|| cmd.get_name());
    // The plain version, not LONG_VERSION: a page documents the flags of a release, and
    // should not change with every commit or eBPF rebuild.
    let page_cmd = cmd.clone().long_version(None::<&str>);
    let man = clap_mangen::Man::new(page_cmd)
        .title(name.to_uppercase())
        .section(SECTION)
        // Without a date, roff drops the empty argument and the footer fields shift.
        .date(date)
        .source(format!("netmon {}", env!("CARGO_PKG_VERSION")))
        .manual("System Administration");
    let path = dir.join(man.get_filename());
    let mut page = Vec::new();
    man.render(&mut page)?;
    std::fs::write(&path, page).with_context(|| format!("writing {}", path.display()))?;
    written.push(path);
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_page(sub, dir, date, written)?;
    }
    Ok(())
}

/// `--date`: YYYY-MM-DD, the form man pages use.
pub fn parse_date(s: &str) -> Result<String, String> {
    let b = s.as_bytes();
    let shape = b.len() == 10
        && b.iter().enumerate().all(|(i, c)| {
            if i == 4 || i == 7 {
                *c == b'-'
            } else {
                c.is_ascii_digit()
            }
        });
    if !shape {
        return Err("expected YYYY-MM-DD".into());
    }
    Ok(s.to_string())
}

/// Today's UTC date as YYYY-MM-DD, for pages generated without `--date`.
pub fn today() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    civil_date(secs / 86_400)
}

/// Days since 1970-01-01 to a proleptic Gregorian date, counting in 400-year eras (146,097
/// days each) whose years start on 1 March, so the leap day falls at the end of a year.
fn civil_date(days: u64) -> String {
    let z = days + 719_468; // days from 0000-03-01 to 1970-01-01
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = era * 400 + year_of_era + u64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_page_per_visible_subcommand() {
        let dir = std::env::temp_dir().join(format!("netmon-man-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pages = write_manpages(&dir, "2026-12-07").unwrap();
        let top = std::fs::read_to_string(&pages[0]).unwrap();
        assert!(
            top.contains(".TH NETMON 8 2026-12-07 \"netmon "),
            "{}",
            top.lines()
                .find(|l| l.starts_with(".TH"))
                .unwrap_or_default()
        );
        let names: Vec<String> = pages
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(names[0], "netmon.8");
        for want in ["netmon-run.8", "netmon-serve.8", "netmon-completions.8"] {
            assert!(names.iter().any(|n| n == want), "{want} missing: {names:?}");
        }
        // clap's help pseudo-command gets no page.
        assert!(!names.iter().any(|n| n == "netmon-help.8"), "{names:?}");
    }

    /// The flags the packaged service starts with (/etc/default/netmon) are ones `netmon
    /// serve` accepts.
    #[test]
    fn packaged_default_flags_parse() {
        let file = include_str!("../../contrib/systemd/netmon.default");
        let args = file
            .lines()
            .find_map(|l| l.strip_prefix("NETMON_ARGS="))
            .expect("an uncommented NETMON_ARGS= line");
        let args = args.trim().trim_matches('"');
        let argv = ["netmon", "serve"]
            .into_iter()
            .chain(args.split_whitespace());
        let cli = <Cli as clap::Parser>::try_parse_from(argv).unwrap();
        assert!(matches!(cli.command, crate::cli::Command::Serve(_)));
    }

    #[test]
    fn civil_dates() {
        assert_eq!(civil_date(0), "1970-01-01");
        assert_eq!(civil_date(59), "1970-03-01");
        assert_eq!(civil_date(11_016), "2000-02-29");
        assert_eq!(civil_date(11_017), "2000-03-01");
        assert_eq!(civil_date(20_794), "2026-12-07");
        assert_eq!(civil_date(20_818), "2026-12-31");
        assert_eq!(civil_date(20_819), "2027-01-01");
    }

    #[test]
    fn completions_name_the_subcommands() {
        for shell in [
            clap_complete::Shell::Bash,
            clap_complete::Shell::Zsh,
            clap_complete::Shell::Fish,
        ] {
            let mut out = Vec::new();
            completions(&CompletionsArgs { shell }, &mut out).unwrap();
            let text = String::from_utf8(out).unwrap();
            assert!(text.contains("serve") && text.contains("doctor"), "{shell}");
        }
    }
}
