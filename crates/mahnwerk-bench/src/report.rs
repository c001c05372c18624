//! Output: the table on stdout, `results.json`, and the generated part of `BENCHMARKS.md`.

use anyhow::{Context, Result};
use serde::Serialize;
use std::fmt::Write as _;
use std::path::Path;

/// One benchmark row; `ratio = figure / baseline_figure`, met when `ratio >= target_ratio`.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub id: String,
    pub workload: String,
    pub figure: f64,
    pub unit: String,
    /// What the baseline is.
    pub baseline: String,
    pub baseline_figure: Option<f64>,
    pub ratio: Option<f64>,
    /// Human form of the target, e.g. `>= 0.5x INSERT`.
    pub target: String,
    pub target_ratio: f64,
    pub target_met: Option<bool>,
    /// Extra measurements (COPY rate, CPU use, phase times).
    pub notes: Vec<String>,
}

impl Row {
    pub fn new(id: &str, workload: String, figure: f64, unit: &str) -> Self {
        Self {
            id: id.into(),
            workload,
            figure,
            unit: unit.into(),
            baseline: String::new(),
            baseline_figure: None,
            ratio: None,
            target: String::new(),
            target_ratio: 0.0,
            target_met: None,
            notes: Vec::new(),
        }
    }

    pub fn against(
        mut self,
        baseline: &str,
        baseline_figure: Option<f64>,
        target_ratio: f64,
        target: &str,
    ) -> Self {
        self.baseline = baseline.into();
        self.baseline_figure = baseline_figure;
        self.ratio = baseline_figure
            .filter(|b| *b > 0.0)
            .map(|b| self.figure / b);
        self.target = target.into();
        self.target_ratio = target_ratio;
        self.target_met = self.ratio.map(|r| r >= target_ratio);
        self
    }
}

/// What the numbers were measured on.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub date: String,
    pub nproc: usize,
    pub cpu: String,
    pub memory: String,
    pub postgres: String,
    pub sqlite: String,
    pub nats: String,
    pub commit: String,
}

impl Machine {
    pub async fn collect(env: &crate::infra::Env) -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split_once(':'))
            .map_or_else(|| "unknown".into(), |(_, v)| v.trim().to_owned());
        let memory = std::fs::read_to_string("/proc/meminfo")
            .unwrap_or_default()
            .lines()
            .next()
            .map_or_else(String::new, |l| {
                l.split_whitespace().skip(1).collect::<Vec<_>>().join(" ")
            });
        let postgres = match &env.pg_admin {
            None => "not configured".into(),
            Some(url) => match sqlx::PgPool::connect(url).await {
                Ok(pool) => {
                    let v: String = sqlx::query_scalar("SHOW server_version")
                        .fetch_one(&pool)
                        .await
                        .unwrap_or_default();
                    let sync: String = sqlx::query_scalar("SHOW synchronous_commit")
                        .fetch_one(&pool)
                        .await
                        .unwrap_or_default();
                    let tls: Option<bool> = sqlx::query_scalar(
                        "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                    )
                    .fetch_optional(&pool)
                    .await
                    .unwrap_or_default();
                    pool.close().await;
                    let tls = if tls == Some(true) { "TLS" } else { "no TLS" };
                    format!("{v} (synchronous_commit={sync}, connection: {tls})")
                }
                Err(e) => format!("unreachable: {e}"),
            },
        };
        let sqlite = match sqlx::SqlitePool::connect("sqlite::memory:").await {
            Ok(pool) => sqlx::query_scalar::<_, String>("SELECT sqlite_version()")
                .fetch_one(&pool)
                .await
                .map(|v| format!("{v} (WAL, synchronous=FULL)"))
                .unwrap_or_default(),
            Err(_) => String::new(),
        };
        let info = env.js.client().server_info();
        let commit = std::process::Command::new("git")
            .args(["rev-parse", "--short", "HEAD"])
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .map(|s| s.trim().to_owned())
            .unwrap_or_default();
        Self {
            date: chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string(),
            nproc: std::thread::available_parallelism().map_or(1, usize::from),
            cpu,
            memory,
            postgres,
            sqlite,
            nats: format!("nats-server {} (JetStream, file storage)", info.version),
            commit,
        }
    }
}

fn fmt_rate(x: f64) -> String {
    #[allow(clippy::cast_possible_truncation, clippy::as_conversions)]
    let n = x.round() as i64;
    let s = n.abs().to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

fn verdict(r: &Row) -> &'static str {
    match r.target_met {
        Some(true) => "met",
        Some(false) => "MISSED",
        None => "n/a",
    }
}

fn table(rows: &[Row]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "| id | workload | figure | baseline | ratio | target | |\n|---|---|---:|---|---:|---|---|"
    );
    for r in rows {
        let _ = writeln!(
            s,
            "| {} | {} | {} {} | {}: {} | {} | {} | {} |",
            r.id,
            r.workload,
            fmt_rate(r.figure),
            r.unit,
            r.baseline,
            r.baseline_figure.map_or_else(|| "—".into(), fmt_rate),
            r.ratio.map_or_else(|| "—".into(), |x| format!("{x:.2}")),
            r.target,
            verdict(r)
        );
    }
    s
}

pub fn print_table(rows: &[Row]) {
    println!();
    print!("{}", table(rows));
    for r in rows {
        for n in &r.notes {
            println!("  {}: {n}", r.id);
        }
    }
}

pub fn write_json(path: &Path, rows: &[Row]) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, serde_json::to_string_pretty(rows)? + "\n")
        .with_context(|| format!("writing {}", path.display()))
}

const BEGIN: &str = "<!-- mahnwerk-bench:begin (generated; edit outside these markers) -->";
const END: &str = "<!-- mahnwerk-bench:end -->";

/// Replaces the generated section of the markdown file (creating the file if needed) and keeps
/// the hand-written analysis around it.
pub fn write_markdown(path: &Path, rows: &[Row], m: &Machine, scale: f64, n: u64) -> Result<()> {
    let mut g = String::new();
    let _ = writeln!(g, "{BEGIN}");
    let _ = writeln!(
        g,
        "Measured {} on {} CPUs ({}), {} RAM; commit {}.\n\
         Scale {scale} ({n} events / invoices per row). PostgreSQL {}; SQLite {}; {}.\n",
        m.date, m.nproc, m.cpu, m.memory, m.commit, m.postgres, m.sqlite, m.nats
    );
    g.push_str(&table(rows));
    g.push('\n');
    for r in rows {
        for note in &r.notes {
            let _ = writeln!(g, "- **{}**: {note}", r.id);
        }
    }
    let _ = writeln!(g, "{END}");
    let old = std::fs::read_to_string(path).unwrap_or_default();
    let new = match (old.find(BEGIN), old.find(END)) {
        (Some(b), Some(e)) if e > b => format!(
            "{}{g}{}",
            &old[..b],
            old[e + END.len()..].trim_start_matches('\n')
        ),
        _ if old.is_empty() => format!(
            "# Benchmarks\n\nGenerated by `mahnwerk-bench` (`make bench`; `make bench-quick` runs 1/100 of the size).\n\n{g}"
        ),
        _ => format!("{old}\n{g}"),
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, new).with_context(|| format!("writing {}", path.display()))
}
