//! The config file, `/etc/netmon/netmon.toml`: the daemon's settings, for `serve` (and `run`).
//!
//! Every setting is one of `serve`'s flags, listed once in [`options::OPTIONS`] with the flag
//! it stands for. A value is parsed by the same function as its flag, so both accept the same
//! forms. Precedence: a flag given on the command line (clap's `ValueSource::CommandLine`) wins,
//! then the file, then the built-in default.
//!
//! The file is read as a spanned TOML document (`toml::de::DeTable`, the parser behind the toml
//! crate's serde support) and walked against that list, so every problem, an unknown key, a
//! wrong type or a bad value, is reported as one line with the file, the line and the key.
mod options;
pub mod template;

use std::{
    io::Write,
    ops::Range,
    path::{Path, PathBuf},
    process::ExitCode,
};

use anyhow::{Context, Result};
use clap::parser::{ArgMatches, ValueSource};
use toml::{
    Spanned,
    de::{DeTable, DeValue},
};

use crate::{
    cli::{ConfigAction, ConfigArgs, RunArgs},
    error::{AppError, Exit},
};
pub use options::{EXCLUDED_FLAGS, OPTIONS, Opt, Scope, Section, Val};

/// Where `serve` and `run` look for the file when --config is not given.
pub const DEFAULT_PATH: &str = "/etc/netmon/netmon.toml";

/// A config file that parsed and whose every value is valid.
#[derive(Debug)]
pub struct ConfigFile {
    pub path: PathBuf,
    settings: Vec<Setting>,
}

#[derive(Debug)]
struct Setting {
    opt: &'static Opt,
    line: usize,
    value: Spanned<Val>,
}

/// What is wrong with a file, and where: `path:line: message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub line: usize,
    pub message: String,
}

/// A problem with one value; `span` is the part of the value at fault (an array element), when
/// narrower than the whole value.
#[derive(Debug)]
pub struct Problem {
    pub span: Option<Range<usize>>,
    pub message: String,
}

impl Problem {
    pub fn new(message: impl Into<String>) -> Self {
        Problem {
            span: None,
            message: message.into(),
        }
    }

    pub fn at(span: Range<usize>, message: impl Into<String>) -> Self {
        Problem {
            span: Some(span),
            message: message.into(),
        }
    }
}

impl From<String> for Problem {
    fn from(message: String) -> Self {
        Problem::new(message)
    }
}

impl ConfigFile {
    /// Reads and checks `path`; a missing or unreadable file is an error.
    pub fn load(path: &Path) -> Result<ConfigFile, AppError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            AppError::new(
                Exit::Usage,
                format!("config file {}: {}", path.display(), io_reason(&e)),
            )
        })?;
        Self::parse(path, &text)
    }

    /// Like [`load`](Self::load), but a file that does not exist is no file.
    pub fn load_if_exists(path: &Path) -> Result<Option<ConfigFile>, AppError> {
        match std::fs::metadata(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            _ => Self::load(path).map(Some),
        }
    }

    /// Checks `text` as the contents of `path` (named in errors).
    pub fn parse(path: &Path, text: &str) -> Result<ConfigFile, AppError> {
        parse_settings(text)
            .map(|settings| ConfigFile {
                path: path.to_path_buf(),
                settings,
            })
            .map_err(|e| {
                AppError::new(
                    Exit::Usage,
                    format!("{}:{}: {}", path.display(), e.line, e.message),
                )
            })
    }

    /// Sets what the file sets on `args`, except the flags `given` on the command line (by clap
    /// id) and the settings that are not for this command (`serving`: `serve`, else `run`; None:
    /// every setting, as `config check` shows them).
    pub fn apply(&self, args: &mut RunArgs, given: &dyn Fn(&str) -> bool, serving: Option<bool>) {
        for s in &self.settings {
            let for_this = match (s.opt.scope, serving) {
                (_, None) | (Scope::Both, _) => true,
                (Scope::Serve, Some(serving)) => serving,
                (Scope::Run, Some(serving)) => !serving,
            };
            if for_this && !given(s.opt.flag) {
                // Checked when the file was parsed: this cannot fail.
                let _ = (s.opt.set)(args, &s.value);
            }
        }
    }

    /// The line that sets `key` (of `section`), for `config check`.
    pub fn line_of(&self, opt: &Opt) -> Option<usize> {
        self.settings
            .iter()
            .find(|s| std::ptr::eq(s.opt, opt))
            .map(|s| s.line)
    }
}

fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        std::io::ErrorKind::IsADirectory => "is a directory".into(),
        std::io::ErrorKind::InvalidData => "not UTF-8 text".into(),
        _ => e.to_string(),
    }
}

/// 1-based line of a byte offset.
pub fn line_of_offset(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// Parses and checks every value; the first problem in the file (by position) is the error.
fn parse_settings(text: &str) -> Result<Vec<Setting>, ConfigError> {
    let doc = DeTable::parse(text).map_err(|e| ConfigError {
        line: e.span().map_or(1, |s| line_of_offset(text, s.start)),
        message: format!("invalid TOML: {}", one_line(e.message())),
    })?;
    let doc = doc.into_inner();
    let mut settings = Vec::new();
    let mut problems: Vec<(usize, String)> = Vec::new();
    walk(&doc, Section::Top, &mut settings, &mut problems, &mut |s| {
        line_of_offset(text, s)
    });
    // Every value is checked by applying it to the defaults, with the flag's own parser.
    let mut scratch = options::default_run_args();
    for s in &settings {
        if let Err(p) = (s.opt.set)(&mut scratch, &s.value) {
            let at = p.span.unwrap_or_else(|| s.value.span()).start;
            problems.push((at, format!("{}: {}", s.opt.key, p.message)));
        }
    }
    match problems.into_iter().min_by_key(|(at, _)| *at) {
        Some((at, message)) => Err(ConfigError {
            line: line_of_offset(text, at),
            message,
        }),
        None => Ok(settings),
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn walk(
    table: &DeTable<'_>,
    section: Section,
    settings: &mut Vec<Setting>,
    problems: &mut Vec<(usize, String)>,
    line: &mut dyn FnMut(usize) -> usize,
) {
    for (key, value) in table.iter() {
        let name: &str = key.get_ref();
        let at = key.span().start;
        if let Some(inner) = Section::ALL
            .into_iter()
            .find(|s| section == Section::Top && *s != Section::Top && s.name() == name)
        {
            match value.get_ref() {
                DeValue::Table(t) => walk(t, inner, settings, problems, line),
                v => problems.push((
                    value.span().start,
                    format!(
                        "{name}: expected a section ([{name}]), found {}",
                        Val::from_de(&Spanned::new(0..0, v.clone()))
                            .get_ref()
                            .found()
                    ),
                )),
            }
            continue;
        }
        match OPTIONS
            .iter()
            .find(|o| o.section == section && o.key == name)
        {
            Some(opt) => settings.push(Setting {
                opt,
                line: line(value.span().start),
                value: Val::from_de(value),
            }),
            None => problems.push((at, unknown_key(name, section, value.get_ref()))),
        }
    }
}

/// `unknown key "lisen" (did you mean "listen"?)`, `unknown section [hub]`.
fn unknown_key(name: &str, section: Section, value: &DeValue<'_>) -> String {
    let shown = match section {
        Section::Top => name.to_string(),
        s => format!("{}.{name}", s.name()),
    };
    if matches!(value, DeValue::Table(_)) {
        return format!("unknown section [{shown}]");
    }
    let hint = suggestion(name, section)
        .map(|h| format!(" ({h})"))
        .unwrap_or_default();
    let place = match section {
        Section::Top => String::new(),
        s => format!(" in [{}]", s.name()),
    };
    format!("unknown key {name:?}{place}{hint}")
}

fn suggestion(name: &str, section: Section) -> Option<String> {
    let norm = name.to_ascii_lowercase().replace('-', "_");
    let hint = |o: &Opt| -> String {
        if o.section == section {
            format!("did you mean {:?}?", o.key)
        } else {
            match o.section {
                Section::Top => format!("{:?} goes before any [section]", o.key),
                s => format!("did you mean {:?} in [{}]?", o.key, s.name()),
            }
        }
    };
    // The same key in another section, or the flag's name (`no-history`, `watch-network`).
    if let Some(o) = OPTIONS.iter().find(|o| o.key == norm) {
        return Some(hint(o));
    }
    if let Some(o) = OPTIONS
        .iter()
        .find(|o| options::flag_long(o.flag).is_some_and(|l| l.replace('-', "_") == norm))
    {
        return Some(hint(o));
    }
    let (best, distance) = OPTIONS
        .iter()
        .filter(|o| o.section == section)
        .map(|o| (o, edit_distance(&norm, o.key)))
        .min_by_key(|(_, d)| *d)?;
    (distance <= (name.len() / 3).max(1)).then(|| hint(best))
}

/// Levenshtein distance (keys are short ASCII).
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The settings `serve` or `run` uses: the file's (the default path only when it exists)
/// where no flag was given on the command line, then the command's defaults.
pub fn configure(
    args: RunArgs,
    config_flag: Option<&Path>,
    matches: Option<&ArgMatches>,
    serving: bool,
) -> Result<RunArgs> {
    configure_from(args, config_flag, Path::new(DEFAULT_PATH), matches, serving)
}

/// [`configure`] with the default path as a parameter (for tests).
pub fn configure_from(
    mut args: RunArgs,
    config_flag: Option<&Path>,
    default_path: &Path,
    matches: Option<&ArgMatches>,
    serving: bool,
) -> Result<RunArgs> {
    let file = match config_flag {
        Some(p) => Some(ConfigFile::load(p)?),
        None => ConfigFile::load_if_exists(default_path)?,
    };
    if let Some(file) = &file {
        log::debug!("settings from {}", file.path.display());
        let given = |id: &str| {
            matches.is_some_and(|m| m.value_source(id) == Some(ValueSource::CommandLine))
        };
        file.apply(&mut args, &given, Some(serving));
    }
    args.resolve_defaults(serving);
    Ok(args)
}

/// The hub of a viewer (`fleet …`) or of `hub init` when `--hub` is not given: the `[hub]`
/// section of the config file (--config, else the default path when it exists), so a host
/// whose agent is configured needs no flags. Connection flags given on the command line win
/// one by one; with `--hub` on the command line the file is not read (its credentials are for
/// its own hub).
pub fn hub_from_config(h: &mut crate::fleet::HubArgs, config_flag: Option<&Path>) -> Result<()> {
    hub_from_config_at(h, config_flag, Path::new(DEFAULT_PATH))
}

/// [`hub_from_config`] with the default path as a parameter (for tests).
pub fn hub_from_config_at(
    h: &mut crate::fleet::HubArgs,
    config_flag: Option<&Path>,
    default_path: &Path,
) -> Result<()> {
    if h.hub.is_some() {
        return Ok(());
    }
    let file = match config_flag {
        Some(p) => Some(ConfigFile::load(p)?),
        None => ConfigFile::load_if_exists(default_path)?,
    };
    let Some(file) = file else {
        return Ok(());
    };
    let mut args = options::default_run_args();
    file.apply(&mut args, &|_| false, Some(true));
    let f = args.fleet.hub;
    if f.hub.is_some() {
        log::debug!("hub from {}", file.path.display());
    }
    h.hub = f.hub;
    if h.hub_user.is_none() {
        h.hub_user = f.hub_user;
        h.hub_password = f.hub_password;
    }
    h.hub_creds = h.hub_creds.take().or(f.hub_creds);
    h.hub_ca = h.hub_ca.take().or(f.hub_ca);
    Ok(())
}

/// `netmon config init|check`.
pub fn command(args: &ConfigArgs, config_flag: Option<&Path>) -> Result<ExitCode> {
    match &args.action {
        ConfigAction::Init(init) => {
            let text = template::template();
            match init.file.as_deref() {
                None => write_stdout(&text)?,
                Some(p) if p == Path::new("-") => write_stdout(&text)?,
                Some(p) => write_new(p, &text, init.force)?,
            }
            Ok(ExitCode::SUCCESS)
        }
        ConfigAction::Check(check) => {
            // The default path may be missing (the header then says the defaults apply); a
            // file named on the command line must exist.
            let file = match check.file.as_deref().or(config_flag) {
                Some(p) => Some(ConfigFile::load(p)?),
                None => ConfigFile::load_if_exists(Path::new(DEFAULT_PATH))?,
            };
            write_stdout(&template::effective(file.as_ref()))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn write_stdout(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}

/// Writes the template to `path`; an existing file stays unless `force`.
fn write_new(path: &Path, text: &str, force: bool) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .create_new(!force)
        .open(path);
    let mut file = match file {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(AppError::new(
                Exit::Usage,
                format!(
                    "{} exists; not overwritten (--force to replace it)",
                    path.display()
                ),
            )
            .into());
        }
        r => r.with_context(|| format!("writing {}", path.display()))?,
    };
    file.write_all(text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    eprintln!("netmon: wrote {}", path.display());
    Ok(())
}

#[cfg(test)]
mod tests;
