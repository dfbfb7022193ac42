//! `holdfast-sim`: runs the turmoil simulations of a Holdfast cluster.
//!
//! ```text
//! holdfast-sim --seed 42                 # one seed, with its report (replays exactly)
//! holdfast-sim --seeds 10000             # the soak: seeds 0..10000, a progress bar, a summary
//! holdfast-sim --seeds 50 --scenario partitions --break skip-fsync
//! ```

use std::collections::BTreeMap;
use std::process::ExitCode;

use clap::Parser;
use holdfast_sim::{run, Breakage, RunConfig, RunReport, Scenario};
use indicatif::{ProgressBar, ProgressStyle};

#[derive(Debug, Parser)]
#[command(
    name = "holdfast-sim",
    about = "Partition simulations of a Holdfast cluster (turmoil)."
)]
struct Args {
    /// Run this one seed and print its report.
    #[arg(long, conflicts_with = "seeds")]
    seed: Option<u64>,
    /// Run this many seeds, starting at --first-seed.
    #[arg(long)]
    seeds: Option<u64>,
    #[arg(long, default_value_t = 0)]
    first_seed: u64,
    /// Force a scenario instead of the seed's own.
    #[arg(long, value_enum)]
    scenario: Option<Scenario>,
    /// Break the system on purpose, to see the checkers catch it.
    #[arg(long = "break", value_enum, default_value_t = Breakage::None)]
    breakage: Breakage,
    /// Simulated customers.
    #[arg(long, default_value_t = 6)]
    clients: usize,
    /// Write every report as JSON lines to this file.
    #[arg(long)]
    json: Option<std::path::PathBuf>,
}

fn main() -> anyhow::Result<ExitCode> {
    let args = Args::parse();
    let (scenario, breakage) = (args.scenario, args.breakage);
    let config_for = |seed| RunConfig {
        scenario,
        breakage,
        clients: args.clients,
        ..RunConfig::new(seed)
    };
    let mut json = match &args.json {
        Some(path) => Some(std::fs::File::create(path)?),
        None => None,
    };
    if let Some(seed) = args.seed {
        let report = run(&config_for(seed));
        print_report(&report);
        write_json(&mut json, &report)?;
        return Ok(if report.passed() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }
    let count = args.seeds.unwrap_or(200);
    let progress = ProgressBar::new(count);
    progress.set_style(
        ProgressStyle::with_template(
            "{bar:40} {pos}/{len} seeds, {elapsed} elapsed, eta {eta} {msg}",
        )
        .expect("a valid template"),
    );
    let mut summary = Summary::default();
    for seed in args.first_seed..args.first_seed + count {
        let report = run(&config_for(seed));
        write_json(&mut json, &report)?;
        if !report.passed() {
            progress.suspend(|| {
                eprintln!(
                    "seed {seed} FAILED ({}): replay with `holdfast-sim --seed {seed}{}{}`",
                    report.scenario,
                    scenario
                        .map(|name| format!(" --scenario {name}"))
                        .unwrap_or_default(),
                    if breakage == Breakage::None {
                        String::new()
                    } else {
                        format!(" --break {breakage}")
                    }
                );
                for line in report.failures().iter().take(5) {
                    eprintln!("  {line}");
                }
            });
        }
        summary.add(&report);
        progress.set_message(format!("{} failed", summary.failed.len()));
        progress.inc(1);
    }
    progress.finish();
    summary.print();
    Ok(if summary.failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn write_json(file: &mut Option<std::fs::File>, report: &RunReport) -> anyhow::Result<()> {
    if let Some(file) = file {
        use std::io::Write;
        serde_json::to_writer(&mut *file, report)?;
        writeln!(file)?;
    }
    Ok(())
}

fn print_report(report: &RunReport) {
    println!(
        "seed {} scenario {} break {}: {} ({} calls, {} unknown, {} ms simulated, trace {:016x})",
        report.seed,
        report.scenario,
        report.breakage,
        if report.passed() { "PASSED" } else { "FAILED" },
        report.ops,
        report.unknown_ops,
        report.sim_ms,
        report.trace_hash
    );
    for (at_ms, action) in &report.fault_log {
        println!("  at {at_ms:>6} ms: {action}");
    }
    for check in &report.checks {
        println!(
            "  {} {} ({} checked)",
            if check.passed() { "ok  " } else { "FAIL" },
            check.name,
            check.checked
        );
        for violation in &check.violations {
            println!("       {violation}");
        }
    }
    if let Some(error) = &report.error {
        println!("  error: {error}");
    }
}

#[derive(Default)]
struct Summary {
    runs: BTreeMap<Scenario, (u64, u64)>,
    faults: BTreeMap<&'static str, usize>,
    checks: BTreeMap<&'static str, (usize, usize)>,
    failed: Vec<u64>,
    ops: usize,
    unknown: usize,
}

impl Summary {
    fn add(&mut self, report: &RunReport) {
        let entry = self.runs.entry(report.scenario).or_default();
        entry.0 += 1;
        if report.passed() {
            entry.1 += 1;
        } else {
            self.failed.push(report.seed);
        }
        for (fault, count) in &report.faults {
            *self.faults.entry(fault).or_default() += count;
        }
        for check in &report.checks {
            let entry = self.checks.entry(check.name).or_default();
            entry.0 += 1;
            if check.passed() {
                entry.1 += 1;
            }
        }
        self.ops += report.ops;
        self.unknown += report.unknown_ops;
    }

    fn print(&self) {
        println!("\n{:<22} {:>6} {:>7}", "scenario", "runs", "passed");
        for (scenario, (runs, passed)) in &self.runs {
            println!("{:<22} {:>6} {:>7}", scenario.to_string(), runs, passed);
        }
        println!("\n{:<22} {:>8}", "fault injected", "count");
        for (fault, count) in &self.faults {
            println!("{fault:<22} {count:>8}");
        }
        println!("\n{:<60} {:>6} {:>7}", "check", "runs", "passed");
        for (check, (runs, passed)) in &self.checks {
            println!("{check:<60} {runs:>6} {passed:>7}");
        }
        println!(
            "\nclient calls: {} ({} without a definite answer)",
            self.ops, self.unknown
        );
        if self.failed.is_empty() {
            println!("all seeds passed");
        } else {
            println!("failed seeds: {:?}", self.failed);
        }
    }
}
