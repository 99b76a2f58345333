//! From benchmark samples to what people read: medians with their spread over rounds, the
//! Markdown table, a PNG plot (plotters, bitmap backend, text through ab_glyph from a TTF file so
//! no fontconfig is needed), the PASS/FAIL verdicts on the targets, and the table in docs/benchmarks.md.
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::{bench::Workload, bench_tools::Tool};

pub const FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

#[derive(Debug, Clone)]
pub struct Sample {
    pub env: &'static str,
    pub workload: Workload,
    pub tool: Tool,
    pub round: usize,
    pub throughput: Option<f64>,
    pub unit: &'static str,
    pub cpu_s: Option<f64>,
    pub bytes: u64,
    pub packets: u64,
    pub rss_mib: Option<f64>,
    /// VmRSS while an idle workload held its sockets (largest sample), and its anonymous
    /// part.
    pub held_rss_mib: Option<f64>,
    pub held_anon_mib: Option<f64>,
    pub accuracy: Option<f64>,
    pub unknown: Option<f64>,
    pub bpf_ns_per_run: Option<f64>,
    pub lost: Option<u64>,
    /// What only the connection-churn workload measures.
    pub churn: Option<Churn>,
}

#[derive(Debug, Clone)]
pub struct Churn {
    /// Connections loadgen completed.
    pub connections: u64,
    /// loadgen's connection latency over all its connections.
    pub latency_p50_us: Option<f64>,
    pub latency_p99_us: Option<f64>,
    /// The tool's VmHWM `early_secs` into the load (the end figure is `rss_mib`).
    pub hwm_early_mib: Option<f64>,
    pub early_secs: f64,
    /// Workload processes whose bytes the tool reported exactly (sent and received), of those
    /// checked; None where the tool's output has no exact bytes.
    pub exact: Option<(usize, usize)>,
    /// netmon serve recording history: (flow records written, database bytes).
    pub history: Option<(u64, u64)>,
    /// Nanoseconds netmon's kernel programs ran during the load (all CPUs).
    pub bpf_ns: Option<u64>,
}

impl Churn {
    /// The tool's CPU per connection in µs.
    fn cpu_us_per_conn(&self, cpu_s: Option<f64>) -> Option<f64> {
        cpu_s
            .filter(|_| self.connections > 0)
            .map(|c| c * 1e6 / self.connections as f64)
    }
}

impl Sample {
    pub fn brief(&self) -> String {
        let mut s = String::new();
        if let Some(t) = self.throughput {
            s += &format!("{} {} ", human(t), self.unit);
        }
        if let Some(c) = self.cpu_s {
            s += &format!("cpu {c:.2}s ");
        }
        if let Some(r) = self.rss_mib {
            s += &format!("rss {r:.1}MiB ");
        }
        if let Some(a) = self.accuracy {
            s += &format!("acc {a:.4} ");
        }
        if let Some(l) = self.lost {
            s += &format!("lost {l} ");
        }
        if let Some(c) = &self.churn {
            if let Some(us) = c.cpu_us_per_conn(self.cpu_s) {
                s += &format!("{us:.2}µs/conn ");
            }
            if let Some(h) = c.hwm_early_mib {
                s += &format!("hwm@{:.0}s {h:.1}MiB ", c.early_secs);
            }
            if let Some((e, n)) = c.exact {
                s += &format!("exact {e}/{n} ");
            }
            if let Some(p) = c.latency_p50_us {
                s += &format!("p50 {p:.1}µs ");
            }
        }
        s.trim_end().to_string()
    }

    /// Per GB and per packet only where moving data is the workload: idle sockets move a few
    /// handshake bytes, and dividing by those would mislead; churn's cost is per connection.
    fn moves_data(&self) -> bool {
        !matches!(self.workload, Workload::Idle(_) | Workload::Churn(_))
    }

    fn cpu_per_gb(&self) -> Option<f64> {
        let gb = self.bytes as f64 / 1e9;
        self.cpu_s
            .filter(|_| gb > 0.01 && self.moves_data())
            .map(|c| c / gb)
    }

    fn cpu_per_mpkt(&self) -> Option<f64> {
        let m = self.packets as f64 / 1e6;
        self.cpu_s
            .filter(|_| m > 0.001 && self.moves_data())
            .map(|c| c / m)
    }
}

fn human(v: f64) -> String {
    match v.abs() {
        x if x >= 1e9 => format!("{:.2}G", v / 1e9),
        x if x >= 1e6 => format!("{:.2}M", v / 1e6),
        x if x >= 1e3 => format!("{:.1}k", v / 1e3),
        _ => format!("{v:.0}"),
    }
}

fn median(v: &mut [f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

/// Median, minimum and maximum of what a metric gave over the rounds.
#[derive(Clone, Copy, Debug)]
pub struct Stat {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub n: usize,
}

fn stat(values: impl Iterator<Item = f64>) -> Option<Stat> {
    let mut v: Vec<f64> = values.filter(|x| x.is_finite()).collect();
    let median = median(&mut v)?;
    Some(Stat {
        median,
        min: v[0],
        max: v[v.len() - 1],
        n: v.len(),
    })
}

fn cell(s: Option<Stat>, fmt: impl Fn(f64) -> String) -> String {
    match s {
        None => "–".into(),
        Some(s) if s.n == 1 || fmt(s.min) == fmt(s.max) => fmt(s.median),
        Some(s) => format!("{} ({}–{})", fmt(s.median), fmt(s.min), fmt(s.max)),
    }
}

/// One table row: an (environment, workload, tool) over all rounds.
struct Row {
    env: &'static str,
    workload: Workload,
    tool: Tool,
    throughput_ratio: Option<Stat>,
    cpu_s: Option<Stat>,
    cpu_per_gb: Option<Stat>,
    cpu_per_mpkt: Option<Stat>,
    rss: Option<Stat>,
    /// VmRSS while idle sockets were held, and its anonymous part.
    held_rss: Option<Stat>,
    held_anon: Option<Stat>,
    accuracy: Option<Stat>,
    unknown: Option<Stat>,
    bpf_ns: Option<Stat>,
    lost: Option<Stat>,
    throughput: Option<Stat>,
    unit: &'static str,
    churn: Option<ChurnRow>,
}

/// The churn workload's figures over all rounds.
struct ChurnRow {
    cpu_us_per_conn: Option<Stat>,
    hwm_early: Option<Stat>,
    early_secs: f64,
    /// VmHWM at the end ÷ early, per round.
    growth: Option<Stat>,
    latency_p50: Option<Stat>,
    latency_p99: Option<Stat>,
    /// p50 latency ÷ the same round's p50 with no monitor.
    latency_ratio: Option<Stat>,
    /// Processes exact, processes checked, summed over rounds.
    exact: Option<(usize, usize)>,
    /// History records written and database bytes, summed over rounds (each round records
    /// into a fresh database).
    history: Option<(u64, u64)>,
    /// Connections loadgen completed, summed over rounds.
    connections: u64,
    /// netmon's kernel programs' run time per connection, in µs.
    bpf_us_per_conn: Option<Stat>,
}

fn rows(samples: &[Sample]) -> Vec<Row> {
    let mut keys: Vec<(&'static str, Workload, Tool)> = Vec::new();
    for s in samples {
        if !keys.contains(&(s.env, s.workload, s.tool)) {
            keys.push((s.env, s.workload, s.tool));
        }
    }
    keys.sort_by_key(|&(e, w, t)| (e, format!("{w:?}"), t));
    keys.into_iter()
        .map(|(env, workload, tool)| {
            let mine: Vec<&Sample> = samples
                .iter()
                .filter(|s| s.env == env && s.workload == workload && s.tool == tool)
                .collect();
            // Each round's run against the same round's baseline, so slow drift cancels out.
            let baseline = |s: &Sample| {
                samples.iter().find(|b| {
                    b.env == env
                        && b.workload == workload
                        && b.round == s.round
                        && b.tool == Tool::Baseline
                })
            };
            let ratio = mine.iter().filter_map(|s| {
                Some(s.throughput? / baseline(s)?.throughput.filter(|&b| b > 0.0)?)
            });
            let churns: Vec<(&Sample, &Churn)> = mine
                .iter()
                .filter_map(|s| Some((*s, s.churn.as_ref()?)))
                .collect();
            let churn =
                (!churns.is_empty()).then(|| ChurnRow {
                    cpu_us_per_conn: stat(
                        churns
                            .iter()
                            .filter_map(|(s, c)| c.cpu_us_per_conn(s.cpu_s)),
                    ),
                    hwm_early: stat(churns.iter().filter_map(|(_, c)| c.hwm_early_mib)),
                    early_secs: churns[0].1.early_secs,
                    growth: stat(churns.iter().filter_map(|(s, c)| {
                        Some(s.rss_mib? / c.hwm_early_mib.filter(|&e| e > 0.0)?)
                    })),
                    latency_p50: stat(churns.iter().filter_map(|(_, c)| c.latency_p50_us)),
                    latency_p99: stat(churns.iter().filter_map(|(_, c)| c.latency_p99_us)),
                    latency_ratio: stat(churns.iter().filter_map(|(s, c)| {
                        let base = baseline(s)?.churn.as_ref()?.latency_p50_us?;
                        Some(c.latency_p50_us? / base)
                    })),
                    exact: churns
                        .iter()
                        .filter_map(|(_, c)| c.exact)
                        .reduce(|a, b| (a.0 + b.0, a.1 + b.1)),
                    history: churns
                        .iter()
                        .filter_map(|(_, c)| c.history)
                        .reduce(|a, b| (a.0 + b.0, a.1 + b.1)),
                    connections: churns.iter().map(|(_, c)| c.connections).sum(),
                    bpf_us_per_conn: stat(churns.iter().filter_map(|(_, c)| {
                        Some(c.bpf_ns? as f64 / 1e3 / (c.connections.max(1) as f64))
                    })),
                });
            Row {
                env,
                workload,
                tool,
                throughput_ratio: stat(ratio),
                cpu_s: stat(mine.iter().filter_map(|s| s.cpu_s)),
                cpu_per_gb: stat(mine.iter().filter_map(|s| s.cpu_per_gb())),
                cpu_per_mpkt: stat(mine.iter().filter_map(|s| s.cpu_per_mpkt())),
                rss: stat(mine.iter().filter_map(|s| s.rss_mib)),
                held_rss: stat(mine.iter().filter_map(|s| s.held_rss_mib)),
                held_anon: stat(mine.iter().filter_map(|s| s.held_anon_mib)),
                accuracy: stat(mine.iter().filter_map(|s| s.accuracy)),
                unknown: stat(mine.iter().filter_map(|s| s.unknown)),
                bpf_ns: stat(mine.iter().filter_map(|s| s.bpf_ns_per_run)),
                lost: stat(mine.iter().filter_map(|s| s.lost.map(|l| l as f64))),
                throughput: stat(mine.iter().filter_map(|s| s.throughput)),
                unit: mine.first().map_or("", |s| s.unit),
                churn,
            }
        })
        .collect()
}

fn table(rows: &[Row]) -> String {
    let mut t = String::from(
        "| env | workload | tool | throughput | × baseline | CPU s | CPU s/GB | CPU s/M pkt | peak RSS MiB | accuracy | unknown | BPF ns/run | lost |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in rows.iter().filter(|r| r.churn.is_none()) {
        let unit = r.unit;
        t += &format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            r.env,
            r.workload.label(),
            r.tool.name(),
            cell(r.throughput, |v| format!("{} {unit}", human(v))),
            cell(r.throughput_ratio, |v| format!("{v:.3}")),
            cell(r.cpu_s, |v| format!("{v:.2}")),
            cell(r.cpu_per_gb, |v| format!("{v:.3}")),
            cell(r.cpu_per_mpkt, |v| format!("{v:.2}")),
            cell(r.rss, |v| format!("{v:.1}")),
            cell(r.accuracy, |v| format!("{v:.4}")),
            cell(r.unknown, |v| format!("{:.1}%", v * 100.0)),
            cell(r.bpf_ns, |v| format!("{v:.0}")),
            cell(r.lost, |v| format!("{v:.0}")),
        );
    }
    t
}

/// The connection-churn rows: cost per connection, memory over time, loss, exactness, latency.
fn churn_table(rows: &[Row]) -> String {
    let mut t = String::from(
        "| env | workload | tool | conn/s | CPU µs/conn | VmHWM MiB early | VmHWM MiB end | end ÷ early | lost | exact processes | accuracy | p50 latency µs | p50 × baseline | p99 latency µs | BPF ns/run | BPF µs/conn |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in rows {
        let Some(c) = &r.churn else { continue };
        t += &format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            r.env,
            r.workload.label(),
            r.tool.name(),
            cell(r.throughput, human),
            cell(c.cpu_us_per_conn, |v| format!("{v:.2}")),
            cell(c.hwm_early, |v| format!(
                "{v:.1} at {} s",
                secs(c.early_secs)
            )),
            cell(r.rss, |v| format!("{v:.1}")),
            cell(c.growth, |v| format!("{v:.3}")),
            cell(r.lost, |v| format!("{v:.0}")),
            c.exact.map_or("–".into(), |(e, n)| format!("{e}/{n}")),
            cell(r.accuracy, |v| format!("{v:.4}")),
            cell(c.latency_p50, |v| format!("{v:.1}")),
            cell(c.latency_ratio, |v| format!("{v:.3}")),
            cell(c.latency_p99, |v| format!("{v:.1}")),
            cell(r.bpf_ns, |v| format!("{v:.0}")),
            cell(c.bpf_us_per_conn, |v| format!("{v:.2}")),
        );
    }
    t
}

/// A target and whether this run met it.
pub struct Verdict {
    pub pass: bool,
    pub text: String,
}

fn find<'a>(rows: &'a [Row], env: &str, w: Workload, t: Tool) -> Option<&'a Row> {
    rows.iter()
        .find(|r| r.env == env && r.workload == w && r.tool == t)
}

/// The least share of the no-monitor throughput netmon must keep: UDP at full rate is one
/// payload hook per datagram with nothing to amortise it over, and a veth hop doubles it.
fn throughput_target(env: &str, w: Workload) -> f64 {
    match (w, env) {
        (Workload::IperfUdp, "veth") => 0.95,
        (Workload::IperfUdp, _) => 0.98,
        _ => 0.99,
    }
}

fn verdicts(rows: &[Row], rate: f64, churn_rate: f64) -> Vec<Verdict> {
    let mut v = Vec::new();
    for r in rows.iter().filter(|r| {
        r.tool == Tool::Netmon && matches!(r.workload, Workload::IperfTcp | Workload::IperfUdp)
    }) {
        if let Some(s) = r.throughput_ratio {
            let need = throughput_target(r.env, r.workload);
            v.push(Verdict {
                pass: s.median >= need,
                text: format!(
                    "throughput with netmon ≥ {:.0}% of baseline ({}, {}): median {:.1}%{}",
                    need * 100.0,
                    r.env,
                    r.workload.label(),
                    s.median * 100.0,
                    if s.median >= need {
                        String::new()
                    } else {
                        format!(", short by {:.1} points", (need - s.median) * 100.0)
                    }
                ),
            });
        }
    }
    for env in ["loopback", "veth"] {
        for w in [Workload::IperfTcp, Workload::IperfUdp] {
            let Some(ours) = find(rows, env, w, Tool::Netmon).and_then(|r| r.cpu_per_gb) else {
                continue;
            };
            for peer in [Tool::Nethogs, Tool::Bandwhich] {
                let Some(theirs) = find(rows, env, w, peer).and_then(|r| r.cpu_per_gb) else {
                    continue;
                };
                let ratio = ours.median / theirs.median;
                v.push(Verdict {
                    pass: ratio <= 0.1,
                    text: format!(
                        "netmon CPU/GB ≤ 1/10 of {} ({env}, {}): {:.3} vs {:.3} s/GB = 1/{:.1}{}",
                        peer.name(),
                        w.label(),
                        ours.median,
                        theirs.median,
                        1.0 / ratio,
                        if ratio <= 0.1 {
                            String::new()
                        } else {
                            format!(", {:.1}× over the target", ratio / 0.1)
                        }
                    ),
                });
            }
        }
    }
    for r in rows
        .iter()
        .filter(|r| r.tool == Tool::Netmon && r.workload == Workload::Conns)
    {
        if let (Some(lost), Some(tp)) = (r.lost, r.throughput) {
            let reached = tp.median >= rate * 0.95;
            v.push(Verdict {
                pass: lost.max == 0.0 && reached,
                text: format!(
                    "0 records lost at {} connections/s ({}, {}): lost max {:.0} over rounds, \
                     achieved {:.0}/s{}",
                    rate,
                    r.env,
                    r.workload.label(),
                    lost.max,
                    tp.median,
                    unreached(rate, tp.median)
                ),
            });
        }
    }
    for env in ["loopback", "veth"] {
        churn_verdicts(rows, env, churn_rate, &mut v);
        history_verdict(rows, env, &mut v);
    }
    if let Some(r) = rows
        .iter()
        .find(|r| r.tool == Tool::Netmon && r.workload == Workload::Idle(100_000))
    {
        // The target is the memory that holding the sockets takes (VmRSS while they are
        // held); the peak also holds start-up (loading the programs, kernel BTF) and the
        // moment they all close at once, shown beside it.
        if let Some(held) = r.held_rss {
            let peak = r
                .rss
                .map_or(String::new(), |p| format!("; peak {:.1} MiB", p.max));
            // The rest of VmRSS is the binary and the kernel's ring buffers mapped into the
            // process (their data pages twice, for wrap-around): fixed, whatever the sockets.
            let anon = r.held_anon.map_or(String::new(), |a| {
                format!(
                    "; anonymous {:.1} MiB, the rest the binary and the mapped ring buffers",
                    a.max
                )
            });
            v.push(Verdict {
                pass: held.max <= 40.0,
                text: format!(
                    "netmon RSS ≤ 40 MiB with 100k idle sockets: {:.1} MiB while holding them (max over rounds{anon}{peak}){}",
                    held.max,
                    if held.max <= 40.0 {
                        String::new()
                    } else {
                        format!(", {:.1} MiB over", held.max - 40.0)
                    }
                ),
            });
        }
        if let Some(acc) = r.accuracy {
            // Printed to four places, 1.0000 is what "every socket" reads as.
            let pass = acc.min >= 0.99995;
            v.push(Verdict {
                pass,
                text: format!(
                    "accuracy 1.0 with 100k idle sockets (sockets tied to their process ÷ \
                     sockets opened): min {:.4} over rounds",
                    acc.min
                ),
            });
        }
        if let Some(u) = r.unknown {
            // As the table rounds it: 0.0%.
            let pass = u.max < 0.0005;
            v.push(Verdict {
                pass,
                text: format!(
                    "0% unknown with 100k idle sockets: max {:.1}% over rounds",
                    u.max * 100.0
                ),
            });
        }
    }
    v
}

fn unreached(rate: f64, achieved: f64) -> String {
    if achieved >= rate * 0.95 {
        String::new()
    } else {
        format!(
            " — the load generator reached only {:.0}% of the rate, so this is not a pass",
            achieved / rate * 100.0
        )
    }
}

/// Whole seconds without a fraction (10 s), short runs' half-way points with one (0.5 s).
fn secs(s: f64) -> String {
    if s.fract() == 0.0 {
        format!("{s:.0}")
    } else {
        format!("{s:.1}")
    }
}

/// netmon's three ways of running, as the churn targets name them.
const NETMON_MODES: [Tool; 3] = [Tool::Netmon, Tool::NetmonRun, Tool::NetmonJson];

fn mode(t: Tool) -> &'static str {
    t.name().trim_start_matches("netmon ")
}

/// What recording history costs under churn: serve's CPU per flow record beyond the same run
/// without history (target ≤ 2 µs), its VmHWM beside it, and the database size per million
/// records.
fn history_verdict(rows: &[Row], env: &str, v: &mut Vec<Verdict>) {
    let churn_of = |t: Tool| {
        rows.iter()
            .find(|r| r.env == env && r.tool == t && matches!(r.workload, Workload::Churn(_)))
            .and_then(|r| Some((r, r.churn.as_ref()?)))
    };
    let (Some((with, cw)), Some((without, cn))) =
        (churn_of(Tool::Netmon), churn_of(Tool::NetmonNoHistory))
    else {
        return;
    };
    let (Some((records, db_bytes)), Some(a), Some(b)) =
        (cw.history, &cw.cpu_us_per_conn, &cn.cpu_us_per_conn)
    else {
        v.push(Verdict {
            pass: false,
            text: format!("history recording ({env}): not measured"),
        });
        return;
    };
    let per_conn = records as f64 / cw.connections.max(1) as f64;
    let us_per_record = (a.median - b.median) / per_conn.max(f64::MIN_POSITIVE);
    let hwm = |r: &Row| r.rss.map_or(f64::NAN, |s| s.max);
    v.push(Verdict {
        pass: us_per_record <= 2.0 && hwm(with) <= hwm(without) * 1.10 + 4.0,
        text: format!(
            "history recording ≤ 2 µs per flow record and no RSS growth ({env}): {us_per_record:.2} µs \
             ({:.2} records per connection; serve {:.2} vs --no-history {:.2} µs/connection), \
             VmHWM {:.1} vs {:.1} MiB, {:.0} MiB per million records",
            per_conn,
            a.median,
            b.median,
            hwm(with),
            hwm(without),
            db_bytes as f64 / (1 << 20) as f64 / (records.max(1) as f64 / 1e6)
        ),
    });
}

/// One netmon mode's figure for a target, and whether it met it.
struct Figure {
    tool: Tool,
    text: String,
    ok: bool,
}

/// The churn targets for one environment, one line each with every netmon mode's figure; a
/// target passes only if every mode that ran meets it, and a FAIL names the modes that missed.
fn churn_verdicts(rows: &[Row], env: &str, churn_rate: f64, v: &mut Vec<Verdict>) {
    let modes: Vec<(&Row, &ChurnRow)> = NETMON_MODES
        .iter()
        .filter_map(|&t| {
            let r = rows.iter().find(|r| {
                r.env == env && r.tool == t && matches!(r.workload, Workload::Churn(_))
            })?;
            Some((r, r.churn.as_ref()?))
        })
        .collect();
    let Some((first, c0)) = modes.first() else {
        return;
    };
    let label = first.workload.label();
    let mut push = |target: &str, figures: Vec<Figure>, tail: String, also: bool| {
        let missed: Vec<&str> = figures
            .iter()
            .filter(|f| !f.ok)
            .map(|f| mode(f.tool))
            .collect();
        let texts: Vec<String> = figures
            .iter()
            .map(|f| format!("{} {}", mode(f.tool), f.text))
            .collect();
        v.push(Verdict {
            pass: missed.is_empty() && also && !figures.is_empty(),
            text: format!(
                "{target} ({env}, {label}): {}{tail}{}",
                texts.join(", "),
                if missed.is_empty() {
                    String::new()
                } else {
                    format!(" — missed by {}", missed.join(", "))
                }
            ),
        });
    };

    push(
        "≤ 5 µs user-space CPU per connection",
        modes
            .iter()
            .map(|(r, c)| match c.cpu_us_per_conn {
                Some(s) => Figure {
                    tool: r.tool,
                    text: format!("{:.2} µs", s.median),
                    ok: s.median <= 5.0,
                },
                None => Figure {
                    tool: r.tool,
                    text: "not measured".into(),
                    ok: false,
                },
            })
            .collect(),
        " (median over rounds)".into(),
        true,
    );

    push(
        &format!(
            "VmHWM ≤ 64 MiB and flat (end within 10% of the {} s figure)",
            secs(c0.early_secs)
        ),
        modes
            .iter()
            .map(|(r, c)| match (c.hwm_early, r.rss, c.growth) {
                (Some(e), Some(m), Some(g)) => Figure {
                    tool: r.tool,
                    text: format!(
                        "{:.1} → {:.1} MiB ({:+.1}%)",
                        e.max,
                        m.max,
                        (g.max - 1.0) * 100.0
                    ),
                    ok: m.max <= 64.0 && g.max <= 1.10,
                },
                _ => Figure {
                    tool: r.tool,
                    text: "not measured".into(),
                    ok: false,
                },
            })
            .collect(),
        " (max over rounds)".into(),
        true,
    );

    let achieved = modes
        .iter()
        .filter_map(|(r, _)| r.throughput.map(|t| t.median))
        .fold(f64::INFINITY, f64::min);
    push(
        "0 records lost",
        modes
            .iter()
            .map(|(r, _)| Figure {
                tool: r.tool,
                text: r
                    .lost
                    .map_or("not reported".into(), |l| format!("{:.0}", l.max)),
                ok: r.lost.is_some_and(|l| l.max == 0.0),
            })
            .collect(),
        format!(
            " (max over rounds); load {achieved:.0} of {churn_rate:.0} connections/s{}",
            unreached(churn_rate, achieved)
        ),
        achieved >= churn_rate * 0.95,
    );

    // The plain table prints rounded bytes: only serve and --json can be checked exactly.
    let exact: Vec<Figure> = modes
        .iter()
        .filter_map(|(r, c)| {
            let (e, n) = c.exact?;
            Some(Figure {
                tool: r.tool,
                text: format!(
                    "{e}/{n} processes exact, accuracy {}",
                    r.accuracy
                        .map_or("–".into(), |a| format!("{:.4}", a.median))
                ),
                ok: n > 0 && e == n,
            })
        })
        .collect();
    if !exact.is_empty() {
        push(
            "exact bytes per process",
            exact,
            " (summed over rounds: the clients and the server)".into(),
            true,
        );
    }

    push(
        "median latency within 10% of no monitor",
        modes
            .iter()
            .map(|(r, c)| match (c.latency_ratio, c.latency_p50) {
                (Some(l), Some(p)) => Figure {
                    tool: r.tool,
                    text: format!("×{:.3} ({:.1} µs)", l.median, p.median),
                    ok: l.median <= 1.10,
                },
                _ => Figure {
                    tool: r.tool,
                    text: "no baseline to compare".into(),
                    ok: false,
                },
            })
            .collect(),
        " (each round's p50 ÷ the same round's without a monitor; median over rounds)".into(),
        true,
    );
}

pub struct Written {
    pub markdown: String,
    pub table: String,
    pub md_path: PathBuf,
    pub png_path: PathBuf,
}

const NOTES: &str = "\
- *throughput*: iperf3's receiver rate, loadgen's connections per second; *× baseline* is each \
round's run divided by the same round's run with no monitor.
- *CPU s*: the tool's utime+stime (/proc/PID/stat) from just before the workload to 1.3 s after \
it (so its last report is in); per GB and per million packets of the client-side interface \
(loopback: each packet once; veth: both directions).
- *accuracy*: bytes the tool gave to the workload's processes ÷ the bytes the workload's \
syscalls moved (sent + received, payload). netmon counts payload, so 1.0000 is exact; nethogs and \
bandwhich count wire bytes (headers included), so their ratio can exceed 1 without being right. \
bandwhich prints process names, not PIDs: it is credited with every byte of the workload's \
process name. Idle sockets: TCP sockets netmon tied to the holding processes ÷ sockets opened.
- *unknown*: share of the bytes the tool saw that it gave to no process (netmon: \
`netmon_unattributed_bytes_total` against all wire bytes on the machine, since netmon watches \
every namespace; nethogs: `unknown TCP/UDP`; bandwhich: `<UNKNOWN>`).
- *BPF ns/run*: run_time_ns / run_cnt over netmon's programs (kernel.bpf_stats_enabled=1 for the \
run, restored after; read from netmon's /proc/PID/fdinfo, the numbers `bpftool prog show` prints). \
*lost*: netmon's `netmon_events_lost_total`, all sources summed (serve), the `lost` section of \
the last object (`run --json`) or the `lost:` line of the last table (`run`).
- *connection churn*: loadgen at the set rate from 2 client processes for the set time; each \
connection sends 1000 bytes, reads a 1-byte answer and closes with a reset. *CPU µs/conn*: the tool's utime+stime from just \
before the clients start to just after they end, ÷ connections (the user-space process with its \
own syscalls; netmon's kernel programs are in *BPF ns/run*, and *BPF µs/conn* is their run time \
during the load ÷ connections: the time the kernel spends in netmon's programs for each connection, \
on the connection's own path, which is what the latency ratio pays). *VmHWM early*: the tool's \
/proc/PID/status VmHWM 10 s into the load (half-way in a run shorter than 20 s); *end*: at the \
end of the load; flat means end ≤ 1.10 × early. *exact processes*: the workload's processes \
(clients and server) whose sent and received payload netmon reported to the byte; `netmon run` \
prints its table's bytes rounded for reading, so it is checked for loss only. Peers watch the \
client side's interface: on veth they are judged on the client processes only. *p50 latency*: \
loadgen's connection latency (connect start → the server's one-byte answer read) over all \
connections of the run (per-client log-scale histograms, 1.6% buckets, merged); × baseline is \
each round's p50 ÷ the same round's with no monitor.
- netmon watches every namespace of the machine, so its CPU includes the traffic of everything \
else running (other developers' tests on a shared box); nethogs and bandwhich see only the \
benchmark's interface. Throughput runs on a shared 2-CPU machine are noisy: read the spread.
- Cells show the median over rounds and (min–max) when they differ.";

pub fn write(
    samples: &[Sample],
    out_dir: &Path,
    date: &str,
    setup: &str,
    rate: f64,
    churn_rate: f64,
    fleet: Option<&str>,
) -> Result<Written> {
    let rows = rows(samples);
    let mut table = table(&rows);
    if rows.iter().any(|r| r.churn.is_some()) {
        table += &format!("\nConnection churn:\n\n{}", churn_table(&rows));
    }
    let mut verdicts = verdicts(&rows, rate, churn_rate);
    if let Some(f) = fleet {
        table += &format!("\nFleet (fleet-bench):\n\n```\n{}```\n", fleet_figures(f));
        verdicts.extend(fleet_verdicts(f));
    }
    let mut targets = String::new();
    for v in &verdicts {
        let line = format!("{} {}", if v.pass { "PASS" } else { "FAIL" }, v.text);
        eprintln!("bench: {line}");
        targets += &format!("- {line}\n");
    }
    let markdown = format!(
        "# netmon benchmark, {date}\n\n{setup}.\n\n{table}\n## Targets\n\n{targets}\n\
         ## How to read it\n\n{NOTES}\n\n![plot]({date}.png)\n"
    );
    let md_path = out_dir.join(format!("{date}.md"));
    let png_path = out_dir.join(format!("{date}.png"));
    std::fs::write(&md_path, &markdown)?;
    std::fs::write(
        out_dir.join("latest.md"),
        markdown.replace(&format!("({date}.png)"), "(latest.png)"),
    )?;
    plot(&rows, &png_path)?;
    std::fs::copy(&png_path, out_dir.join("latest.png"))?;
    let table = format!("{setup}.\n\n{table}\n{targets}");
    Ok(Written {
        markdown,
        table,
        md_path,
        png_path,
    })
}

/// fleet-bench's figure lines (its verdicts go with the other targets).
fn fleet_figures(out: &str) -> String {
    out.lines()
        .filter(|l| !l.starts_with("PASS ") && !l.starts_with("FAIL "))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// fleet-bench's PASS/FAIL lines as verdicts.
fn fleet_verdicts(out: &str) -> Vec<Verdict> {
    out.lines()
        .filter_map(|l| {
            let (pass, text) = l
                .strip_prefix("PASS ")
                .map(|t| (true, t))
                .or_else(|| l.strip_prefix("FAIL ").map(|t| (false, t)))?;
            Some(Verdict {
                pass,
                text: format!("fleet: {text}"),
            })
        })
        .collect()
}

fn register_font() -> Result<()> {
    let bytes = std::fs::read(FONT).with_context(|| {
        format!("reading {FONT} for the plot's text (Debian package fonts-dejavu-core)")
    })?;
    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    plotters::style::register_font("sans-serif", plotters::style::FontStyle::Normal, bytes)
        .map_err(|_| anyhow::anyhow!("{FONT} is not a usable font"))
}

/// Two panels: throughput relative to baseline, and CPU seconds per GB (log scale), one bar per
/// tool in each (environment, workload) group.
fn plot(rows: &[Row], path: &Path) -> Result<()> {
    use plotters::prelude::*;
    register_font()?;
    let groups: Vec<(&str, Workload)> = {
        let mut g = Vec::new();
        // Churn runs at a set rate (its throughput is the rate) and is read from its own table.
        for r in rows
            .iter()
            .filter(|r| r.throughput_ratio.is_some() && r.churn.is_none())
        {
            if !g.contains(&(r.env, r.workload)) {
                g.push((r.env, r.workload));
            }
        }
        g
    };
    let tools = [Tool::Baseline, Tool::Netmon, Tool::Nethogs, Tool::Bandwhich];
    let colors = [
        RGBColor(150, 150, 150),
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
    ];
    let root = BitMapBackend::new(path, (1400, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let (left, right) = root.split_horizontally(700);
    let n = groups.len().max(1) as f64;
    let label = |x: &f64| {
        let i = x.round() as usize;
        match groups.get(i) {
            Some((e, w)) if (x - i as f64).abs() < 0.01 => {
                format!(
                    "{} {}",
                    if *e == "loopback" { "lo" } else { "veth" },
                    w.label()
                )
            }
            _ => String::new(),
        }
    };
    let bar = |i: usize, t: usize| {
        let x0 = i as f64 - 0.4 + t as f64 * 0.2;
        (x0, x0 + 0.18)
    };
    let top = rows
        .iter()
        .filter_map(|r| r.throughput_ratio.map(|s| s.median))
        .fold(1.0_f64, f64::max)
        * 1.45; // headroom above the bars for the legend
    {
        let mut chart = ChartBuilder::on(&left)
            .caption("throughput × baseline (median)", ("sans-serif", 20))
            .margin(15)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d(-0.5..n - 0.5, 0.0..top)?;
        chart
            .configure_mesh()
            .x_labels(groups.len().max(1) * 4)
            .x_label_formatter(&label)
            .disable_x_mesh()
            .draw()?;
        for (t, tool) in tools.iter().enumerate() {
            let bars: Vec<_> = groups
                .iter()
                .enumerate()
                .filter_map(|(i, &(e, w))| {
                    let s = find(rows, e, w, *tool)?.throughput_ratio?;
                    let (a, b) = bar(i, t);
                    Some(Rectangle::new(
                        [(a, 0.0), (b, s.median)],
                        colors[t].filled(),
                    ))
                })
                .collect();
            chart
                .draw_series(bars)?
                .label(tool.name())
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 10, y + 5)], colors[t].filled())
                });
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperRight)
            .draw()?;
    }
    {
        let max = rows
            .iter()
            .filter_map(|r| r.cpu_per_gb.map(|s| s.median))
            .fold(1.0_f64, f64::max);
        let mut chart = ChartBuilder::on(&right)
            .caption("tool CPU seconds per GB (median, log)", ("sans-serif", 20))
            .margin(15)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(-0.5..n - 0.5, (0.0001..max * 2.0).log_scale())?;
        chart
            .configure_mesh()
            .x_labels(groups.len().max(1) * 4)
            .x_label_formatter(&label)
            .disable_x_mesh()
            .draw()?;
        for (t, tool) in tools.iter().enumerate().skip(1) {
            let bars: Vec<_> = groups
                .iter()
                .enumerate()
                .filter_map(|(i, &(e, w))| {
                    let s = find(rows, e, w, *tool)?.cpu_per_gb?;
                    let (a, b) = bar(i, t);
                    Some(Rectangle::new(
                        [(a, 0.0001), (b, s.median.max(0.0001))],
                        colors[t].filled(),
                    ))
                })
                .collect();
            chart.draw_series(bars)?;
        }
    }
    root.present()
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

const START: &str = "<!-- bench:start (cargo xtask bench writes this) -->";
const END: &str = "<!-- bench:end -->";

/// Replaces the table between the markers of docs/benchmarks.md ("Latest run"), adding the
/// section at the end (or the page) the first time.
pub fn update_page(page: &Path, table: &str) -> Result<()> {
    let text = match std::fs::read_to_string(page) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => "# Benchmarks\n".to_string(),
        Err(e) => return Err(e.into()),
    };
    let block = format!("{START}\n{table}{END}");
    let new = match (text.find(START), text.find(END)) {
        (Some(a), Some(b)) if b > a => format!("{}{block}{}", &text[..a], &text[b + END.len()..]),
        _ => format!(
            "{}\n\n## Latest run\n\n`cargo xtask bench` runs netmon, nethogs and bandwhich in turn \
             against a baseline with no monitor (see bench-results/latest.md for how to read \
             the columns, and the plot).\n\n{block}\n",
            text.trim_end()
        ),
    };
    if let Some(dir) = page.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(page, new)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(tool: Tool, round: usize, tp: f64, cpu: f64) -> Sample {
        Sample {
            env: "loopback",
            workload: Workload::IperfTcp,
            tool,
            round,
            throughput: Some(tp),
            unit: "bit/s",
            cpu_s: (tool != Tool::Baseline).then_some(cpu),
            bytes: 10_000_000_000,
            packets: 1_000_000,
            rss_mib: None,
            held_rss_mib: None,
            held_anon_mib: None,
            accuracy: None,
            unknown: None,
            bpf_ns_per_run: None,
            lost: None,
            churn: None,
        }
    }

    #[test]
    fn ratios_are_per_round_and_medians_keep_spread() {
        let s = vec![
            sample(Tool::Baseline, 0, 100.0, 0.0),
            sample(Tool::Netmon, 0, 99.0, 0.1),
            sample(Tool::Baseline, 1, 50.0, 0.0),
            sample(Tool::Netmon, 1, 50.0, 0.3),
            sample(Tool::Baseline, 2, 80.0, 0.0),
            sample(Tool::Netmon, 2, 76.0, 0.2),
            sample(Tool::Nethogs, 0, 90.0, 10.0),
        ];
        let rows = rows(&s);
        let n = find(&rows, "loopback", Workload::IperfTcp, Tool::Netmon).unwrap();
        let r = n.throughput_ratio.unwrap();
        assert_eq!((r.median, r.min, r.max), (0.99, 0.95, 1.0));
        assert!((n.cpu_per_gb.unwrap().median - 0.02).abs() < 1e-12);
        let v = verdicts(&rows, 20000.0, 20000.0);
        let tp = v.iter().find(|v| v.text.contains("99%")).unwrap();
        assert!(tp.pass, "{}", tp.text);
        let cpu = v.iter().find(|v| v.text.contains("nethogs")).unwrap();
        assert!(cpu.pass, "{}", cpu.text);
        let t = table(&rows);
        assert!(t.contains("| 0.990 (0.950–1.000) |"), "{t}");
    }

    #[test]
    fn a_missed_target_says_by_how_much() {
        let s = vec![
            sample(Tool::Baseline, 0, 100.0, 0.0),
            sample(Tool::Netmon, 0, 90.0, 1.0),
            sample(Tool::Bandwhich, 0, 90.0, 2.0),
        ];
        let v = verdicts(&rows(&s), 20000.0, 20000.0);
        let tp = v.iter().find(|v| v.text.contains("99%")).unwrap();
        assert!(
            !tp.pass && tp.text.contains("short by 9.0 points"),
            "{}",
            tp.text
        );
        let cpu = v.iter().find(|v| v.text.contains("bandwhich")).unwrap();
        assert!(!cpu.pass && cpu.text.contains("5.0× over"), "{}", cpu.text);
    }

    fn churn_sample(tool: Tool, round: usize, cpu: f64, hwm: (f64, f64), p50: f64) -> Sample {
        Sample {
            workload: Workload::Churn(60),
            throughput: Some(20_000.0),
            unit: "conn/s",
            cpu_s: (tool != Tool::Baseline).then_some(cpu),
            rss_mib: (tool != Tool::Baseline).then_some(hwm.1),
            lost: (tool != Tool::Baseline).then_some(0),
            accuracy: (tool != Tool::Baseline).then_some(1.0),
            churn: Some(Churn {
                connections: 1_200_000,
                latency_p50_us: Some(p50),
                latency_p99_us: Some(p50 * 3.0),
                hwm_early_mib: (tool != Tool::Baseline).then_some(hwm.0),
                early_secs: 10.0,
                exact: (tool == Tool::Netmon).then_some((3, 3)),
                history: None,
                bpf_ns: None,
            }),
            ..sample(tool, round, 0.0, 0.0)
        }
    }

    /// serve 6.0 s vs 4.8 s over 1.2M connections = 1.0 µs per connection more, with two
    /// records per connection: 0.5 µs per record; 2.4M records in 480 MiB: 200 MiB per
    /// million.
    #[test]
    fn history_cost_is_the_difference_per_record() {
        let mut with = churn_sample(Tool::Netmon, 0, 6.0, (40.0, 42.0), 42.0);
        if let Some(c) = with.churn.as_mut() {
            c.history = Some((2_400_000, 480 << 20));
        }
        let s = vec![
            churn_sample(Tool::Baseline, 0, 0.0, (0.0, 0.0), 40.0),
            with,
            churn_sample(Tool::NetmonNoHistory, 0, 4.8, (40.0, 41.0), 42.0),
        ];
        let v = verdicts(&rows(&s), 20000.0, 20000.0);
        let h = v
            .iter()
            .find(|v| v.text.starts_with("history recording"))
            .unwrap();
        assert!(h.pass, "{}", h.text);
        assert!(
            h.text.contains("0.50 µs (2.00 records per connection"),
            "{}",
            h.text
        );
        assert!(h.text.contains("200 MiB per million records"), "{}", h.text);
    }

    #[test]
    fn churn_targets_cover_every_mode_and_compare_latency_per_round() {
        let s = vec![
            churn_sample(Tool::Baseline, 0, 0.0, (0.0, 0.0), 40.0),
            churn_sample(Tool::Netmon, 0, 4.8, (40.0, 42.0), 42.0),
            churn_sample(Tool::NetmonRun, 0, 7.2, (40.0, 45.0), 50.0),
            churn_sample(Tool::Baseline, 1, 0.0, (0.0, 0.0), 80.0),
            churn_sample(Tool::Netmon, 1, 6.0, (40.0, 42.0), 84.0),
            churn_sample(Tool::NetmonRun, 1, 6.0, (40.0, 45.0), 100.0),
        ];
        let rows = rows(&s);
        let v = verdicts(&rows, 20000.0, 20000.0);
        let get = |k: &str| v.iter().find(|v| v.text.contains(k)).unwrap();
        // serve: 4.8 and 6.0 s over 1.2M connections = 4.0 and 5.0 µs, median 4.5.
        let cpu = get("µs user-space CPU");
        assert!(
            !cpu.pass && cpu.text.contains("serve 4.50 µs"),
            "{}",
            cpu.text
        );
        assert!(cpu.text.contains("run 5.50 µs"), "{}", cpu.text);
        let mem = get("VmHWM");
        assert!(
            !mem.pass && mem.text.contains("run 40.0 → 45.0 MiB (+12.5%)"),
            "{}",
            mem.text
        );
        let lat = get("latency");
        assert!(
            !lat.pass && lat.text.contains("serve ×1.050"),
            "{}",
            lat.text
        );
        assert!(lat.text.contains("run ×1.250"), "{}", lat.text);
        assert!(get("0 records lost").pass);
        let exact = get("exact bytes");
        assert!(
            exact.pass && exact.text.contains("serve 6/6"),
            "{}",
            exact.text
        );
        assert!(
            !exact.text.contains("run "),
            "the table is not checked: {}",
            exact.text
        );
        assert!(!table(&rows).contains("churn"));
        let t = churn_table(&rows);
        assert!(
            t.contains("| netmon run | 20.0k | 5.50 (5.00–6.00) |"),
            "{t}"
        );
    }

    #[test]
    fn udp_and_idle_socket_targets() {
        let udp = |tool, tp, env| Sample {
            env,
            workload: Workload::IperfUdp,
            ..sample(tool, 0, tp, 0.1)
        };
        let idle = Sample {
            workload: Workload::Idle(100_000),
            throughput: None,
            rss_mib: Some(90.0),
            held_rss_mib: Some(41.0),
            held_anon_mib: Some(20.0),
            accuracy: Some(1.0),
            unknown: Some(0.0),
            ..sample(Tool::Netmon, 0, 0.0, 1.0)
        };
        let s = vec![
            udp(Tool::Baseline, 100.0, "veth"),
            udp(Tool::Netmon, 96.0, "veth"),
            udp(Tool::Baseline, 100.0, "loopback"),
            udp(Tool::Netmon, 97.0, "loopback"),
            idle,
        ];
        let v = verdicts(&rows(&s), 20000.0, 20000.0);
        let get = |k: &str| v.iter().find(|v| v.text.contains(k)).unwrap();
        assert!(get("≥ 95% of baseline (veth").pass);
        let lo = get("≥ 98% of baseline (loopback");
        assert!(
            !lo.pass && lo.text.contains("short by 1.0 points"),
            "{}",
            lo.text
        );
        let rss = get("RSS ≤ 40 MiB");
        assert!(
            !rss.pass
                && rss.text.contains("1.0 MiB over")
                && rss.text.contains("peak 90.0")
                && rss.text.contains("anonymous 20.0"),
            "{}",
            rss.text
        );
        assert!(get("accuracy 1.0 with 100k").pass);
        assert!(get("0% unknown").pass);
    }

    #[test]
    fn fleet_output_splits_into_figures_and_verdicts() {
        let out = "fleet-bench: 2 agents\npublish-to-viewer:       p50 98 ms, p99 194 ms\n\
                   PASS publish-to-viewer p99 < 1 s: 194 ms\n\
                   FAIL each record at the hub once: 9 held of 10 written\n";
        assert_eq!(
            fleet_figures(out),
            "fleet-bench: 2 agents\npublish-to-viewer:       p50 98 ms, p99 194 ms\n"
        );
        let v = fleet_verdicts(out);
        assert_eq!(v.len(), 2);
        assert!(v[0].pass && v[0].text == "fleet: publish-to-viewer p99 < 1 s: 194 ms");
        assert!(!v[1].pass && v[1].text.contains("9 held"));
    }

    #[test]
    fn page_section_is_replaced_not_repeated() {
        let dir = std::env::temp_dir().join(format!("nmbench-page-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("benchmarks.md");
        std::fs::write(&f, "# Benchmarks\n\nfirst lines\n").unwrap();
        update_page(&f, "| a |\n").unwrap();
        update_page(&f, "| b |\n").unwrap();
        let text = std::fs::read_to_string(&f).unwrap();
        // A missing page is created with the section.
        let fresh = dir.join("docs/benchmarks.md");
        update_page(&fresh, "| c |\n").unwrap();
        let fresh_text = std::fs::read_to_string(&fresh).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        assert!(text.starts_with("# Benchmarks\n\nfirst lines\n"));
        assert_eq!(text.matches("## Latest run").count(), 1);
        assert!(fresh_text.starts_with("# Benchmarks\n") && fresh_text.contains("| c |"));
        assert!(text.contains("| b |") && !text.contains("| a |"), "{text}");
    }

    /// `cargo xtask bench` rewrites the committed page in place: its markers are there, once.
    #[test]
    fn the_committed_page_has_the_markers() {
        let page = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/benchmarks.md");
        let text = std::fs::read_to_string(&page).unwrap();
        assert_eq!(text.matches(START).count(), 1, "{}", page.display());
        assert_eq!(text.matches(END).count(), 1, "{}", page.display());
        assert!(text.find(START) < text.find(END));
    }

    #[test]
    fn the_plot_renders_with_text() {
        if !Path::new(FONT).exists() {
            eprintln!("skipping: {FONT} missing (cargo xtask bench installs fonts-dejavu-core)");
            return;
        }
        let s = vec![
            sample(Tool::Baseline, 0, 100.0, 0.0),
            sample(Tool::Netmon, 0, 99.0, 0.1),
        ];
        let p = std::env::temp_dir().join(format!("nmbench-plot-{}.png", std::process::id()));
        plot(&rows(&s), &p).unwrap();
        let len = std::fs::metadata(&p).unwrap().len();
        let _ = std::fs::remove_file(&p);
        assert!(len > 10_000, "a {len}-byte PNG has no content");
    }
}
