//! Benchmark B7: letters per second per core for a one-page letter with GiroCode, against
//! WeasyPrint rendering the same letter from HTML in the same run, and the memory (RSS) before
//! and after 10,000 renders.
//!
//! `cargo run --release -p mahnwerk-letters --example letters_bench -- [LETTERS] [MEMORY_RUN] [WEASY]`
//! (defaults 400, 10000, 20). WeasyPrint runs in the project venv (`MAHNWERK_PYTHON` or
//! `.venv/bin/python`, `pip install weasyprint`).

// Timings and ratios are floats; no money here.
#![allow(clippy::float_arithmetic)]

use mahnwerk_letters::email::escape;
use mahnwerk_letters::model::{self, LetterModel};
use mahnwerk_letters::{LetterRenderer, TemplateSet, qr};
use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

fn arg(n: usize, default: usize) -> usize {
    std::env::args()
        .nth(n)
        .and_then(|a| a.parse().ok())
        .unwrap_or(default)
}

/// Resident set size of this process in KiB (Linux `/proc/self/status`).
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// The same letter as a print HTML page (A4, address block, table, payment block with the same
/// QR code as inline SVG) for WeasyPrint.
fn print_html(renderer: &LetterRenderer, m: &LetterModel) -> String {
    let letter = renderer.render(m).expect("render");
    let qr_svg = letter
        .epc_payload
        .as_deref()
        .map(|p| qr::svg(p).expect("qr"))
        .unwrap_or_default();
    let qr_svg = qr_svg
        .split_once("<svg")
        .map(|(_, rest)| format!("<svg{rest}"))
        .unwrap_or_default();
    let address = m
        .recipient_lines()
        .iter()
        .map(|l| escape(l))
        .collect::<Vec<_>>()
        .join("<br>");
    let body = letter
        .email
        .html
        .split_once("<body>")
        .and_then(|(_, b)| b.split_once("</body>"))
        .map(|(b, _)| b.to_owned())
        .unwrap_or_default();
    format!(
        r#"<!DOCTYPE html><html lang="de"><head><meta charset="utf-8"><style>
@page {{ size: A4; margin: 20mm 20mm 32mm 25mm; }}
body {{ font-family: serif; font-size: 10.5pt; }}
.head {{ height: 25mm; font-size: 16pt; font-weight: bold; }}
.sender {{ font-size: 7pt; text-decoration: underline; }}
.addr {{ position: absolute; left: -5mm; top: 25mm; width: 85mm; height: 45mm; }}
.info {{ position: absolute; left: 100mm; top: 30mm; font-size: 8.5pt; }}
.content {{ margin-top: 80mm; }}
table {{ width: 100%; border-collapse: collapse; font-size: 9.5pt; }}
.qr svg {{ width: 32mm; height: 32mm; float: right; }}
</style></head><body>
<div class="head">{creditor}</div>
<div class="addr"><div class="sender">{sender}</div><div>{address}</div></div>
<div class="info">Datum {date}</div>
<div class="content"><h3>{title}</h3><div class="qr">{qr_svg}</div>{body}</div>
</body></html>"#,
        creditor = escape(&m.letterhead.name),
        sender = escape(&m.letterhead.sender_line),
        date = m.date,
        title = escape(&letter.email.subject),
    )
}

const WEASY_SCRIPT: &str = r#"
import sys, time
import weasyprint
html = open(sys.argv[1], encoding="utf-8").read()
n = int(sys.argv[2])
weasyprint.HTML(string=html).write_pdf()  # warm-up: fonts, CSS
t = time.perf_counter()
for _ in range(n):
    pdf = weasyprint.HTML(string=html).write_pdf()
dt = time.perf_counter() - t
print(f"{n} {dt} {len(pdf)}")
"#;

fn python() -> PathBuf {
    std::env::var_os("MAHNWERK_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python"))
}

fn main() {
    let letters = arg(1, 400);
    let memory_run = arg(2, 10_000);
    let weasy_n = arg(3, 20);
    let cores = std::thread::available_parallelism().map_or(1, usize::from);

    let rss_start = rss_kib();
    let renderer = LetterRenderer::new(TemplateSet::defaults());
    let m = model::sample();
    let first = renderer.render(&m).expect("render");
    assert!(
        first.epc_payload.is_some(),
        "the benchmark letter carries a QR code"
    );

    // Single thread.
    let t = Instant::now();
    for _ in 0..letters {
        std::hint::black_box(renderer.render(&m).expect("render"));
    }
    let single = letters as f64 / t.elapsed().as_secs_f64();

    // All cores, one shared renderer.
    let per_thread = letters.div_ceil(cores);
    let t = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..cores {
            s.spawn(|| {
                for _ in 0..per_thread {
                    std::hint::black_box(renderer.render(&m).expect("render"));
                }
            });
        }
    });
    let all = (per_thread * cores) as f64 / t.elapsed().as_secs_f64();

    // WeasyPrint, same letter as HTML, same run.
    let dir = std::env::temp_dir().join(format!("mahnwerk-b7-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    let html_path = dir.join("letter.html");
    std::fs::write(&html_path, print_html(&renderer, &m)).expect("write html");
    let weasy = Command::new(python())
        .arg("-c")
        .arg(WEASY_SCRIPT)
        .arg(&html_path)
        .arg(weasy_n.to_string())
        .output();
    let _ = std::fs::remove_dir_all(&dir);
    let weasy_rate = match weasy {
        Ok(out) if out.status.success() => {
            let s = String::from_utf8_lossy(&out.stdout);
            let mut it = s.split_whitespace();
            let n: f64 = it.next().and_then(|v| v.parse().ok()).unwrap_or(0.0);
            let secs: f64 = it
                .next()
                .and_then(|v| v.parse().ok())
                .unwrap_or(f64::INFINITY);
            Some(n / secs)
        }
        Ok(out) => {
            eprintln!(
                "weasyprint failed (pip install weasyprint into the venv): {}",
                String::from_utf8_lossy(&out.stderr)
            );
            None
        }
        Err(e) => {
            eprintln!("cannot run {}: {e} (run `make pyenv`)", python().display());
            None
        }
    };

    // Memory: RSS after a warm-up and after `memory_run` more renders on all cores.
    let rss_warm = rss_kib();
    let per_thread = memory_run.div_ceil(cores);
    let t = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..cores {
            s.spawn(|| {
                for i in 0..per_thread {
                    let mut letter = m.clone();
                    // Vary the letter so caches cannot serve a repeat.
                    letter.references.case_reference = Some(format!("2026-{i:06}"));
                    std::hint::black_box(renderer.render(&letter).expect("render"));
                }
            });
        }
    });
    let mem_secs = t.elapsed().as_secs_f64();
    let rss_end = rss_kib();

    println!(
        "B7 letters: one-page DIN 5008 letter with GiroCode, {} bytes PDF/A-2b",
        first.pdf.len()
    );
    println!("| engine | threads | letters/s | letters/s per core |");
    println!("|---|---|---|---|");
    println!("| mahnwerk (typst) | 1 | {single:.1} | {single:.1} |");
    println!(
        "| mahnwerk (typst) | {cores} | {all:.1} | {:.1} |",
        all / cores as f64
    );
    match weasy_rate {
        Some(w) => {
            println!("| WeasyPrint (HTML) | 1 | {w:.2} | {w:.2} |");
            println!(
                "ratio per core: {:.1}x (single thread {:.1}x); target >= 20x",
                all / cores as f64 / w,
                single / w
            );
        }
        None => println!("| WeasyPrint (HTML) | - | n/a | n/a |"),
    }
    println!(
        "RSS: start {} KiB, after warm-up {} KiB, after {} more renders {} KiB ({:+} KiB) in {:.1} s",
        rss_start,
        rss_warm,
        per_thread * cores,
        rss_end,
        i64::try_from(rss_end).unwrap_or(0) - i64::try_from(rss_warm).unwrap_or(0),
        mem_secs
    );
}
