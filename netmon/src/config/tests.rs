use std::time::Duration;

use clap::{CommandFactory, FromArgMatches};

use super::{options::default_run_args, template::template, *};
use crate::{
    cli::{Cli, Command},
    error::exit_code_of,
};

/// `RunArgs` has no `PartialEq`; its Debug shows every field.
fn debug(args: &RunArgs) -> String {
    format!("{args:?}")
}

fn defaults_resolved() -> RunArgs {
    let mut args = default_run_args();
    args.resolve_defaults(true);
    args
}

fn parse(text: &str) -> Result<ConfigFile, String> {
    ConfigFile::parse(Path::new("/etc/netmon/netmon.toml"), text).map_err(|e| e.message)
}

/// The effective `serve` settings of `text` (no flags given).
fn applied(text: &str) -> RunArgs {
    let file = parse(text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let mut args = default_run_args();
    file.apply(&mut args, &|_| false, Some(true));
    args.resolve_defaults(true);
    args
}

/// The template with every default uncommented (`#key = value` lines; `# e.g. ...` stays).
fn uncommented(text: &str) -> String {
    text.lines()
        .map(|l| match l.strip_prefix('#') {
            Some(rest)
                if rest.split_once(" = ").is_some_and(|(k, _)| {
                    !k.is_empty() && k.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                }) =>
            {
                rest
            }
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn template_parses_back_to_the_defaults() {
    let t = template();
    assert_eq!(debug(&applied(&t)), debug(&defaults_resolved()));
    let all = uncommented(&t);
    assert_ne!(all, t, "the template shows its defaults as #key = value");
    assert_eq!(debug(&applied(&all)), debug(&defaults_resolved()), "{all}");
    // Every setting is set by the uncommented template (tables by their header).
    let file = parse(&all).unwrap();
    for opt in OPTIONS {
        let documented_only = (opt.show)(&defaults_resolved()).is_none();
        assert!(
            documented_only || file.line_of(opt).is_some(),
            "{} has no default line in the template",
            opt.key
        );
    }
}

#[test]
fn every_option_is_in_the_template() {
    let t = template();
    let history_at = t.find("\n[history]\n").expect("a [history] section");
    for opt in OPTIONS {
        // Tables by their header, settings by their default line or, without a default,
        // by an example in their doc.
        let wanted = if opt.table {
            format!("\n[{}]\n", opt.key)
        } else if (opt.show)(&defaults_resolved()).is_some() {
            format!("\n#{} = ", opt.key)
        } else {
            format!("\n# {} = ", opt.key)
        };
        let at = t
            .find(&wanted)
            .unwrap_or_else(|| panic!("{} missing from the template:\n{t}", opt.key));
        let hub_at = t.find("\n[hub]\n").expect("a [hub] section");
        let section = if at > hub_at {
            Section::Hub
        } else if at > history_at {
            Section::History
        } else {
            Section::Top
        };
        assert_eq!(section, opt.section, "{} in the wrong section", opt.key);
        let flag = options::flag_long(opt.flag).unwrap();
        assert!(t.contains(&format!("--{flag}")), "--{flag} not named");
    }
}

/// A new `serve` flag must be given a key in the file or be excluded with a reason.
#[test]
fn every_serve_flag_is_in_the_file_or_excluded() {
    let cmd = Cli::command();
    let serve = cmd.find_subcommand("serve").unwrap();
    let ids: Vec<String> = serve
        .get_arguments()
        .map(|a| a.get_id().to_string())
        .filter(|id| !["help", "version", "verbose", "config"].contains(&id.as_str()))
        .collect();
    for id in &ids {
        let in_file = OPTIONS.iter().filter(|o| o.flag == id).count();
        let excluded = EXCLUDED_FLAGS.iter().any(|(f, _)| f == id);
        assert!(
            in_file + usize::from(excluded) == 1,
            "--{id}: in the file {in_file} time(s), excluded: {excluded}; add it to OPTIONS \
             or EXCLUDED_FLAGS"
        );
    }
    for opt in OPTIONS {
        assert!(
            ids.contains(&opt.flag.to_string()),
            "{} is no flag",
            opt.flag
        );
    }
    for (flag, _) in EXCLUDED_FLAGS {
        assert!(ids.contains(&flag.to_string()), "{flag} is no flag");
    }
}

const CUSTOM: &str = r#"
listen = "0.0.0.0:9100"
interval = 0.5
backend = "kprobe"
connections = "all"
max_connections = 7
metrics_top_k = 0
metrics_pid_label = true
metrics_ttl = 60
api_cmdlines = true
web_config = "/etc/netmon/web.yml"
comm = ["nginx", "sshd"]
cgroup = ["/system.slice"]
exclude_pid = [1, 0x10]
exclude_comm = ["backup"]
exclude_cgroup = ["docker-1234"]

[watch_network]
intranet = ["10.0.0.0/8", "192.168.1.7"]
ula = ["fd00::/8"]

[history]
db = "/srv/netmon.db"
enabled = false
record = true
retention = "2w"
raw_retention = "36h"
max_db_size = 1048576
"#;

#[test]
fn every_setting_reaches_its_flag() {
    let a = applied(CUSTOM);
    assert_eq!(a.listen, "0.0.0.0:9100".parse().ok());
    assert_eq!(a.interval, Duration::from_millis(500));
    assert_eq!(a.backend, crate::cli::BackendChoice::Kprobe);
    assert_eq!(a.connections, Some(crate::cli::ConnectionsShown::All));
    assert_eq!(a.max_connections, Some(7));
    assert_eq!(a.metrics_top_k, 0);
    assert!(a.metrics_pid_label && a.api_cmdlines);
    assert_eq!(a.metrics_ttl, Duration::from_secs(60));
    assert_eq!(a.web_config, Some("/etc/netmon/web.yml".into()));
    assert_eq!(a.comms, ["nginx", "sshd"]);
    assert_eq!(a.cgroups, ["/system.slice"]);
    assert_eq!(a.exclude_pids, [1, 16]);
    assert_eq!(a.exclude_comms, ["backup"]);
    assert_eq!(a.exclude_cgroups, ["docker-1234"]);
    assert_eq!(
        a.watch_networks,
        [
            crate::cli::parse_watch_network("intranet=10.0.0.0/8,192.168.1.7").unwrap(),
            crate::cli::parse_watch_network("ula=fd00::/8").unwrap(),
        ]
    );
    assert_eq!(a.history.db, Path::new("/srv/netmon.db"));
    assert!(a.history.no_history);
    // `record` is for `run`.
    assert!(!a.history.record);
    assert_eq!(a.history.retention, 14 * 86_400_000);
    assert_eq!(a.history.raw_retention, 36 * 3_600_000);
    assert_eq!(a.history.max_db_size, 1 << 20);
}

/// What `config check` prints is a config file with the same settings.
#[test]
fn check_output_reads_back_to_the_same_settings() {
    let file = parse(CUSTOM).unwrap();
    let shown = template::effective(Some(&file));
    assert!(shown.contains("interval = 0.5  # line 3\n"), "{shown}");
    assert!(
        shown.contains("record = true  # line 25, run only\n"),
        "{shown}"
    );
    assert!(
        shown.contains("retention = \"14d\"  # line 26\n"),
        "{shown}"
    );
    assert!(shown.contains("max_db_size = \"1MiB\""), "{shown}");
    assert_eq!(debug(&applied(&shown)), debug(&applied(CUSTOM)), "{shown}");
    let defaults = template::effective(None);
    assert!(defaults.contains("# web_config: not set\n"), "{defaults}");
    assert_eq!(debug(&applied(&defaults)), debug(&defaults_resolved()));
}

/// `netmon [ARGS]` parsed as `app::main` does, with the file `text` as --config.
fn configured(argv: &[&str], text: &str) -> RunArgs {
    let path = temp_file("precedence.toml", text);
    let matches = Cli::command().try_get_matches_from(argv).unwrap();
    let cli = Cli::from_arg_matches(&matches).unwrap();
    let sub = matches.subcommand().map(|(_, m)| m);
    let (args, serving) = match cli.command {
        Command::Serve(a) => (a, true),
        Command::Run(a) => (a, false),
        _ => panic!("not run or serve"),
    };
    let r = configure_from(args, Some(&path), Path::new("/nonexistent"), sub, serving);
    let _ = std::fs::remove_file(&path);
    r.unwrap()
}

fn temp_file(name: &str, text: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!(
        "netmon-config-{}-{:?}-{name}",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn command_line_wins_then_file_then_default() {
    let file = "interval = 2\nmetrics_top_k = 7\ncomm = [\"nginx\"]\n\
                [watch_network]\nlan = [\"10.0.0.0/8\"]\n[history]\nretention = \"2d\"\n";
    let a = configured(
        &[
            "netmon",
            "serve",
            "--interval",
            "5",
            "--comm",
            "sshd",
            "--retention",
            "1d",
        ],
        file,
    );
    assert_eq!(a.interval, Duration::from_secs(5), "flag wins");
    assert_eq!(a.comms, ["sshd"], "a list flag replaces the file's list");
    assert_eq!(
        a.history.retention, 86_400_000,
        "flag wins in [history] too"
    );
    assert_eq!(a.metrics_top_k, 7, "file over default");
    assert_eq!(a.watch_networks.len(), 1, "file over default");
    assert_eq!(a.metrics_ttl, Duration::from_secs(300), "default");
    assert_eq!(a.listen, crate::sink::http::DEFAULT_LISTEN.parse().ok());
    assert_eq!(a.max_connections, Some(crate::cli::SERVE_MAX_CONNECTIONS));

    // A flag given with its default value still wins: it was given.
    let a = configured(&["netmon", "serve", "--interval", "1"], file);
    assert_eq!(a.interval, Duration::from_secs(1));
    // Global --config after the subcommand is the same flag.
    let a = configured(&["netmon", "serve", "--metrics-top-k=3"], file);
    assert_eq!((a.metrics_top_k, a.interval), (3, Duration::from_secs(2)));
}

#[test]
fn scopes_keep_run_off_the_daemons_port() {
    let file = "listen = \"0.0.0.0:9100\"\n[history]\nenabled = false\nrecord = true\n";
    let run = configured(&["netmon", "run"], file);
    assert_eq!(run.listen, None, "run serves only with --listen");
    assert!(run.history.record && !run.history.no_history);
    assert_eq!(run.max_connections, Some(usize::MAX));
    let serve = configured(&["netmon", "serve"], file);
    assert_eq!(serve.listen, "0.0.0.0:9100".parse().ok());
    assert!(!serve.history.record && serve.history.no_history);
    let run = configured(&["netmon", "run", "--listen", "127.0.0.1:1"], file);
    assert_eq!(run.listen, "127.0.0.1:1".parse().ok());
}

#[test]
fn missing_files() {
    let args = default_run_args();
    let err = configure_from(
        args,
        Some(Path::new("/nonexistent/netmon.toml")),
        Path::new("/nonexistent/default.toml"),
        None,
        true,
    )
    .unwrap_err();
    assert_eq!(exit_code_of(&err), Exit::Usage);
    assert_eq!(
        err.to_string(),
        "config file /nonexistent/netmon.toml: no such file"
    );
    // Without --config, a default path that does not exist is no file: the defaults.
    let a = configure_from(
        default_run_args(),
        None,
        Path::new("/nonexistent/default.toml"),
        None,
        true,
    )
    .unwrap();
    assert_eq!(debug(&a), debug(&defaults_resolved()));
    // A directory is not a file, at the default path too.
    let dir = std::env::temp_dir();
    let err = configure_from(default_run_args(), None, &dir, None, true).unwrap_err();
    assert!(err.to_string().ends_with(": is a directory"), "{err}");
    assert_eq!(exit_code_of(&err), Exit::Usage);
}

#[test]
fn the_default_path_is_read_when_it_exists() {
    let path = temp_file("default.toml", "metrics_top_k = 9\n");
    let a = configure_from(default_run_args(), None, &path, None, true).unwrap();
    let _ = std::fs::remove_file(&path);
    assert_eq!(a.metrics_top_k, 9);
}

/// `(file, "line: message")`: exactly what the one error line says after the file name.
#[test]
fn errors_name_line_and_key() {
    let cases: &[(&str, &str)] = &[
        // Unknown keys and sections.
        (
            "interval = 1\nlisen = \"0.0.0.0:1\"\n",
            "2: unknown key \"lisen\" (did you mean \"listen\"?)",
        ),
        ("frobnicate = 1\n", "1: unknown key \"frobnicate\""),
        (
            "metrics-top-k = 5\n",
            "1: unknown key \"metrics-top-k\" (did you mean \"metrics_top_k\"?)",
        ),
        (
            "retention = \"30d\"\n",
            "1: unknown key \"retention\" (did you mean \"retention\" in [history]?)",
        ),
        (
            "no-history = true\n",
            "1: unknown key \"no-history\" (did you mean \"enabled\" in [history]?)",
        ),
        (
            "[history]\nlisten = \"0.0.0.0:1\"\n",
            "2: unknown key \"listen\" in [history] (\"listen\" goes before any [section])",
        ),
        (
            "[history]\ndbb = \"/x\"\n",
            "2: unknown key \"dbb\" in [history] (did you mean \"db\"?)",
        ),
        (
            "\n\n[hubs]\nurl = \"nats://x\"\n",
            "3: unknown section [hubs]",
        ),
        ("[history.old]\nx = 1\n", "1: unknown section [history.old]"),
        (
            "history = 5\n",
            "1: history: expected a section ([history]), found the number 5",
        ),
        // Wrong types.
        (
            "interval = \"1\"\n",
            "1: interval: expected a number of seconds like 1 or 0.5, found the string \"1\"",
        ),
        (
            "metrics_pid_label = \"yes\"\n",
            "1: metrics_pid_label: expected true or false, found the string \"yes\"",
        ),
        (
            "metrics_top_k = 1.5\n",
            "1: metrics_top_k: expected a whole number, found the number 1.5",
        ),
        (
            "comm = \"nginx\"\n",
            "1: comm: expected a list like [\"nginx\", \"postgres\"], found the string \"nginx\"",
        ),
        (
            "[history]\nretention = 30\n",
            "2: retention: expected a span like \"30d\" (a string), found the number 30",
        ),
        (
            "watch_network = [\"10.0.0.0/8\"]\n",
            "1: watch_network: expected a table of NAME = [address ranges] ([watch_network]), \
             found a list",
        ),
        (
            "listen = 9742\n",
            "1: listen: expected an address like \"127.0.0.1:9742\", found the number 9742",
        ),
        // Bad values, one per parser.
        (
            "\n\n\n\n\n\n[history]\nretention = \"30x\"\n",
            "8: retention: \"30x\" is not a span like 30m, 6h, 2d or 1w",
        ),
        (
            "interval = 0\n",
            "1: interval: must be between 0.05 and 3600 seconds",
        ),
        (
            "metrics_ttl = -1\n",
            "1: metrics_ttl: must be between 0 and 31536000 seconds",
        ),
        (
            "metrics_top_k = -1\n",
            "1: metrics_top_k: -1 is not a whole number of 0 or more",
        ),
        (
            "listen = \"nowhere\"\n",
            "1: listen: \"nowhere\" is not an address like 127.0.0.1:9742 or [::1]:9742",
        ),
        (
            "backend = \"magic\"\n",
            "1: backend: \"magic\" is not one of auto, fentry, tp-btf, tracepoint, kprobe, cgroup",
        ),
        (
            "connections = \"some\"\n",
            "1: connections: \"some\" is not one of live, all",
        ),
        (
            "comm = [\n  \"nginx\",\n  \"\",\n]\n",
            "3: comm: must not be empty",
        ),
        (
            "exclude_pid = [1, 0]\n",
            "1: exclude_pid: PID 0 is the kernel's idle task, not a process",
        ),
        (
            "[watch_network]\nlan = [\"10.0.0.0/8\"]\nbad = [\"10.0.0.0/33\"]\n",
            "3: watch_network: bad: \"10.0.0.0/33\" is not an address range like 10.0.0.0/8",
        ),
        (
            "[watch_network]\n\"my lan\" = [\"10.0.0.0/8\"]\n",
            "2: watch_network: my lan: network name \"my lan\" must be letters, digits, '_' or '-'",
        ),
        (
            "[watch_network]\nlan = []\n",
            "2: watch_network: lan: no address ranges",
        ),
        (
            "web_config = \"web.yml\"\n",
            "1: web_config: \"web.yml\" is not an absolute path",
        ),
        (
            "[history]\nmax_db_size = \"lots\"\n",
            "2: max_db_size: \"lots\" is not a size like 500MiB, 1GiB or 2GB",
        ),
        // The first problem in the file is the one reported.
        (
            "interval = 0\nlisen = 1\n",
            "1: interval: must be between 0.05 and 3600 seconds",
        ),
        (
            "zzz = 1\n[history]\nretention = \"x\"\n",
            "1: unknown key \"zzz\"",
        ),
    ];
    for (text, want) in cases {
        let err = ConfigFile::parse(Path::new("/etc/netmon/netmon.toml"), text).unwrap_err();
        assert_eq!(err.exit, Exit::Usage);
        assert_eq!(
            err.message,
            format!("/etc/netmon/netmon.toml:{want}"),
            "for {text:?}"
        );
        assert!(!err.message.contains('\n'), "{}", err.message);
    }
}

#[test]
fn invalid_toml_is_one_line_with_its_line() {
    for (text, line) in [
        ("interval = 1\nlisten = \n", 2),
        ("interval = 1\ninterval = 2\n", 2),
        ("[history\ndb = \"/x\"\n", 1),
        ("\n\ncomm = [\"a\",\n\"b\"\n", 4),
        ("listen = \"unterminated\n", 1),
    ] {
        let err = ConfigFile::parse(Path::new("/x.toml"), text).unwrap_err();
        let prefix = format!("/x.toml:{line}: invalid TOML: ");
        assert!(
            err.message.starts_with(&prefix),
            "{text:?}: {:?} does not start with {prefix:?}",
            err.message
        );
        assert!(!err.message.contains('\n'), "{}", err.message);
    }
}

#[test]
fn spans_and_sizes_print_as_they_parse() {
    use crate::history::when::{parse_size, parse_span_ms};
    for s in ["30d", "7d", "36h", "90m", "45s", "14d"] {
        assert_eq!(options::span_text(parse_span_ms(s).unwrap()), s);
    }
    assert_eq!(options::span_text(parse_span_ms("2w").unwrap()), "14d");
    for s in ["1GiB", "500MiB", "2GB", "500MB", "3KiB", "1500B", "1TiB"] {
        assert_eq!(options::size_text(parse_size(s).unwrap()), s);
    }
}

#[test]
fn init_refuses_to_overwrite_without_force() {
    let path = temp_file("init.toml", "keep me\n");
    let init = |force| {
        command(
            &crate::cli::ConfigArgs {
                action: crate::cli::ConfigAction::Init(crate::cli::ConfigInitArgs {
                    file: Some(path.clone()),
                    force,
                }),
            },
            None,
        )
    };
    let err = init(false).unwrap_err();
    assert_eq!(exit_code_of(&err), Exit::Usage);
    assert!(err.to_string().contains("--force"), "{err}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "keep me\n");
    init(true).unwrap();
    let written = std::fs::read_to_string(&path).unwrap();
    let _ = std::fs::remove_file(&path);
    assert_eq!(written, template());
}

/// Viewers and `hub init` take the [hub] section when --hub is not given; flags given win one
/// by one, and --hub on the command line leaves the file unread.
#[test]
fn viewers_read_the_hub_from_the_file() {
    let dir = std::env::temp_dir().join(format!("netmon-hubcfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("netmon.toml");
    std::fs::write(
        &file,
        "interval = 2\n[hub]\nurl = \"nats://hub:4222,nats://hub2:4222\"\nuser = \"agent\"\n\
         password = \"pw\"\nca = \"/etc/netmon/ca.pem\"\n",
    )
    .unwrap();
    let missing = dir.join("missing.toml");

    let mut h = crate::fleet::HubArgs::default();
    hub_from_config_at(&mut h, Some(&file), &missing).unwrap();
    assert_eq!(h.hub.as_deref(), Some("nats://hub:4222,nats://hub2:4222"));
    assert_eq!(h.hub_user.as_deref(), Some("agent"));
    assert_eq!(h.hub_password.as_deref(), Some("pw"));
    assert_eq!(h.hub_ca.as_deref(), Some(Path::new("/etc/netmon/ca.pem")));

    // The default path is read when it exists; a viewer's own user wins.
    let mut h = crate::fleet::HubArgs {
        hub_user: Some("viewer".into()),
        hub_password: Some("v".into()),
        ..Default::default()
    };
    hub_from_config_at(&mut h, None, &file).unwrap();
    assert_eq!(h.hub.as_deref(), Some("nats://hub:4222,nats://hub2:4222"));
    assert_eq!(
        (h.hub_user.as_deref(), h.hub_password.as_deref()),
        (Some("viewer"), Some("v"))
    );

    // --hub given: nothing from the file.
    let mut h = crate::fleet::HubArgs {
        hub: Some("nats://other:4222".into()),
        ..Default::default()
    };
    hub_from_config_at(&mut h, Some(&file), &missing).unwrap();
    assert_eq!(h.hub.as_deref(), Some("nats://other:4222"));
    assert!(h.hub_user.is_none() && h.hub_ca.is_none());

    // No file at the default path: nothing, and no error (the viewer then says no hub given).
    let mut h = crate::fleet::HubArgs::default();
    hub_from_config_at(&mut h, None, &missing).unwrap();
    assert!(h.hub.is_none());
    // A file named with --config must exist.
    assert!(hub_from_config_at(&mut h, Some(&missing), &missing).is_err());
    let _ = std::fs::remove_dir_all(&dir);
}
