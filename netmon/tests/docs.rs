//! The documentation agrees with the flags the binary accepts (no root needed).
//!
//! `--help` and the man pages are generated from the clap definitions, so they agree by
//! construction; docs/flags.md is generated from them too (`cargo xtask docs`), and these tests
//! check that the committed page is the generated one and, independently of the generator, that
//! every long flag of every subcommand is documented under that subcommand and nothing else is.
use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
};

use clap::CommandFactory;
use netmon::cli::Cli;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("netmon/ lives in the workspace")
        .to_path_buf()
}

fn read(rel: &str) -> String {
    let p = repo().join(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()))
}

type Flags = BTreeMap<String, BTreeSet<String>>;

/// Long flags per command path ("netmon", "netmon run", "netmon config init"), from clap:
/// visible ones only; global flags under "netmon" alone.
fn clap_flags() -> Flags {
    fn walk(cmd: &clap::Command, path: &str, root: bool, out: &mut Flags) {
        let flags = cmd
            .get_arguments()
            .filter(|a| !a.is_hide_set() && a.is_global_set() == root)
            .filter_map(|a| a.get_long())
            .map(|l| format!("--{l}"))
            .collect();
        out.insert(path.to_string(), flags);
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            walk(sub, &format!("{path} {}", sub.get_name()), false, out);
        }
    }
    let mut out = Flags::new();
    walk(&Cli::command(), "netmon", true, &mut out);
    out
}

/// Long flags per section of docs/flags.md: the `--flag` names in the first column of each
/// table row under a `## netmon ...` heading ("## Global flags" counts as "netmon").
fn documented_flags(page: &str) -> Flags {
    let mut out = Flags::new();
    let mut section: Option<String> = None;
    for line in page.lines() {
        if let Some(h) = line.strip_prefix("## ") {
            section = match h.trim() {
                "Global flags" => Some("netmon".into()),
                h if h.starts_with("netmon ") => Some(h.to_string()),
                _ => None,
            };
            if let Some(s) = &section {
                out.entry(s.clone()).or_default();
            }
            continue;
        }
        let (Some(s), Some(row)) = (&section, line.strip_prefix('|')) else {
            continue;
        };
        let first = row.split('|').next().unwrap_or_default();
        for token in first.split('`').skip(1).step_by(2) {
            if let Some(flag) = token
                .split_whitespace()
                .next()
                .filter(|t| t.starts_with("--"))
            {
                out.get_mut(s).unwrap().insert(flag.to_string());
            }
        }
    }
    out
}

/// What differs between clap and the page, one line per command, empty when they agree.
fn differences(clap: &Flags, docs: &Flags) -> Vec<String> {
    let empty = BTreeSet::new();
    let mut out = Vec::new();
    for cmd in clap.keys().chain(docs.keys()).collect::<BTreeSet<_>>() {
        let (c, d) = (
            clap.get(cmd).unwrap_or(&empty),
            docs.get(cmd).unwrap_or(&empty),
        );
        if !clap.contains_key(cmd) {
            out.push(format!(
                "{cmd}: documented, but no such (visible) subcommand"
            ));
        } else if !docs.contains_key(cmd) {
            out.push(format!("{cmd}: no section in docs/flags.md"));
        }
        let missing: Vec<_> = c.difference(d).collect();
        let extra: Vec<_> = d.difference(c).collect();
        if !missing.is_empty() {
            out.push(format!("{cmd}: not documented: {missing:?}"));
        }
        if !extra.is_empty() {
            out.push(format!(
                "{cmd}: documented but not a visible flag: {extra:?}"
            ));
        }
    }
    out
}

#[test]
fn every_flag_is_documented_under_its_subcommand() {
    let clap = clap_flags();
    // The walk itself must see the tree: the subcommands and flags people use most.
    for (cmd, flag) in [
        ("netmon run", "--pid"),
        ("netmon serve", "--listen"),
        ("netmon report", "--by"),
        ("netmon flows", "--since"),
        ("netmon config init", "--force"),
        ("netmon", "--config"),
    ] {
        assert!(clap[cmd].contains(flag), "{cmd} {flag} not seen in clap");
    }
    // Hidden (test-only) flags are neither required nor allowed on the page.
    assert!(!clap["netmon run"].contains("--replay"));
    let diff = differences(&clap, &documented_flags(&read("docs/flags.md")));
    assert!(
        diff.is_empty(),
        "docs/flags.md disagrees with netmon's flags (run `cargo xtask docs`):\n{}",
        diff.join("\n")
    );
}

#[test]
fn the_flag_checker_notices_a_missing_and_an_extra_flag() {
    let page = "## Global flags\n| `-v`, `--verbose` | | x |\n\
                ## netmon run\n| `-p`, `--pid PID` | | x |\n| `--bogus` | | x |\n";
    let clap: Flags = [
        ("netmon", &["--verbose"][..]),
        ("netmon run", &["--pid", "--json"][..]),
    ]
    .into_iter()
    .map(|(c, f)| (c.to_string(), f.iter().map(|s| s.to_string()).collect()))
    .collect();
    let diff = differences(&clap, &documented_flags(page));
    assert_eq!(
        diff,
        [
            "netmon run: not documented: [\"--json\"]",
            "netmon run: documented but not a visible flag: [\"--bogus\"]"
        ]
    );
}

#[test]
fn flags_page_is_generated_from_the_current_flags() {
    let committed = read("docs/flags.md");
    let generated = netmon::packaging::flags_markdown();
    if committed != generated {
        let first = committed
            .lines()
            .zip(generated.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(committed.lines().count().min(generated.lines().count()));
        panic!(
            "docs/flags.md is out of date (run `cargo xtask docs`); first difference at line {}:\n\
             committed: {:?}\ngenerated: {:?}",
            first + 1,
            committed.lines().nth(first),
            generated.lines().nth(first)
        );
    }
}

/// Every relative link in README.md and docs/*.md points at a file that exists.
#[test]
fn relative_links_resolve() {
    let mut pages = vec![PathBuf::from("README.md")];
    for e in std::fs::read_dir(repo().join("docs")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "md") {
            pages.push(p.strip_prefix(repo()).unwrap().to_path_buf());
        }
    }
    let mut broken = Vec::new();
    for page in &pages {
        let text = read(page.to_str().unwrap());
        let dir = repo().join(page).parent().unwrap().to_path_buf();
        for part in text.split("](").skip(1) {
            let target = part.split(')').next().unwrap_or_default();
            let file = target.split('#').next().unwrap_or_default();
            if file.is_empty() || file.contains("://") || file.starts_with("mailto:") {
                continue;
            }
            if !dir.join(file).exists() {
                broken.push(format!("{}: {target}", page.display()));
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

/// Every metric family the exporter builds is in docs/metrics.md's table.
#[test]
fn every_metric_family_is_documented() {
    let source = include_str!("../src/sink/prometheus/mod.rs");
    let page = read("docs/metrics.md");
    let names: BTreeSet<&str> = source
        .split('"')
        .skip(1)
        .step_by(2)
        .filter(|s| {
            s.starts_with("netmon_") && s.chars().all(|c| c.is_ascii_lowercase() || c == '_')
        })
        .collect();
    assert!(
        names.len() > 20 && names.contains("netmon_history_failing"),
        "{names:?}"
    );
    let missing: Vec<_> = names
        .iter()
        .filter(|n| !page.contains(&format!("`{n}`")))
        .collect();
    assert!(missing.is_empty(), "not in docs/metrics.md: {missing:?}");
}
