//! The text `netmon config init` writes and `netmon config check` prints, generated from
//! [`OPTIONS`] and the flags' defaults, so neither can drift from what netmon really does.
use std::fmt::Write as _;

use super::{
    ConfigFile, DEFAULT_PATH, OPTIONS, Opt, Scope, Section,
    options::{default_run_args, flag_long},
};
use crate::cli::RunArgs;

const HEADER: &str = "\
# netmon settings, read by `netmon serve` (the netmon service) and `netmon run` from
# /etc/netmon/netmon.toml, or from the file given with --config FILE.
#
# Each setting is one of `netmon serve`'s flags (man netmon-serve) and takes the same values.
# A flag given on the command line wins over this file (also the flags in NETMON_ARGS, in
# /etc/default/netmon), and this file over the built-in defaults, shown commented out below.
# Durations are numbers of seconds where the flag takes seconds (interval = 0.5,
# metrics_ttl = 300) and spans where it takes a span (retention = \"30d\": s, m, h, d or w);
# sizes are strings like \"1GiB\" or numbers of bytes. A list given as a flag replaces the
# file's list.
#
# After a change: `netmon config check` (one line naming the line and key of any problem,
# exit 2), then `systemctl restart netmon`. Unknown keys and sections are errors.
";

/// The commented template: every setting with its doc and its built-in default.
pub fn template() -> String {
    let mut args = default_run_args();
    args.resolve_defaults(true);
    let mut out = String::from(HEADER);
    for section in Section::ALL {
        if section != Section::Top {
            let _ = writeln!(out, "\n[{}]", section.name());
            for line in section.doc().lines() {
                let _ = writeln!(out, "# {}", line.trim());
            }
        }
        for opt in options_in(section, false).chain(options_in(section, true)) {
            out.push('\n');
            for line in opt.doc.lines() {
                let _ = writeln!(out, "# {line}");
            }
            let _ = writeln!(out, "# ({})", flag_note(opt));
            let shown = (opt.show)(&args);
            if opt.table {
                let _ = writeln!(out, "[{}]", opt.key);
                for line in shown.iter().flat_map(|s| s.lines()) {
                    let _ = writeln!(out, "#{line}");
                }
            } else if let Some(value) = shown {
                let _ = writeln!(out, "#{} = {value}", opt.key);
            }
        }
    }
    out
}

/// Plain keys first, then tables (TOML puts every key after a `[table]` header in that table).
fn options_in(section: Section, tables: bool) -> impl Iterator<Item = &'static Opt> {
    OPTIONS
        .iter()
        .filter(move |o| o.section == section && o.table == tables)
}

fn flag_note(opt: &Opt) -> String {
    let flag = flag_long(opt.flag).map_or_else(|| opt.flag.to_string(), |l| format!("--{l}"));
    match opt.scope {
        Scope::Both => format!("flag {flag}"),
        Scope::Serve => format!("flag {flag}; serve only"),
        Scope::Run => format!("flag {flag}; run only"),
    }
}

/// What `netmon config check` prints: the settings `netmon serve` uses with `file` (or the
/// built-in defaults alone), as TOML that reads back to the same settings.
pub fn effective(file: Option<&ConfigFile>) -> String {
    let mut args: RunArgs = default_run_args();
    if let Some(f) = file {
        f.apply(&mut args, &|_| false, None);
    }
    args.resolve_defaults(true);
    let source = file.map_or_else(
        || format!("built-in defaults ({DEFAULT_PATH} does not exist)"),
        |f| format!("{} is valid", f.path.display()),
    );
    let mut out = format!(
        "# {source}. The settings of `netmon serve`, where no flag overrides them\n\
         # (\"line N\": set in the file; else the built-in default):\n"
    );
    for section in Section::ALL {
        if section != Section::Top {
            let _ = writeln!(out, "\n[{}]", section.name());
        }
        for opt in options_in(section, false).chain(options_in(section, true)) {
            let mut notes = Vec::new();
            if let Some(line) = file.and_then(|f| f.line_of(opt)) {
                notes.push(format!("line {line}"));
            }
            match opt.scope {
                Scope::Both => {}
                Scope::Serve => notes.push("serve only".into()),
                Scope::Run => notes.push("run only".into()),
            }
            let notes = if notes.is_empty() {
                String::new()
            } else {
                format!("  # {}", notes.join(", "))
            };
            match (opt.show)(&args) {
                Some(body) if opt.table => {
                    let _ = writeln!(out, "\n[{}]{notes}", opt.key);
                    for line in body.lines() {
                        let _ = writeln!(out, "{line}");
                    }
                }
                Some(value) => {
                    let _ = writeln!(out, "{} = {value}{notes}", opt.key);
                }
                None => {
                    let _ = writeln!(out, "# {}: not set{notes}", opt.key);
                }
            }
        }
    }
    out
}
