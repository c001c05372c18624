//! Must-show 7: `make run`'s script on a machine where only the README was read, then the
//! README's own example calls — the CLI block and the Python grpcio block, then the path to the
//! first reminder letter (between its markers), taken verbatim from README.md so the README
//! cannot drift from what works. `make run` itself only adds the release
//! build in front of `scripts/run.sh`.

mod common;

use common::{free_port, python};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// The ```sh block of README.md that contains `needle`.
fn readme_block(needle: &str) -> String {
    let text = std::fs::read_to_string(root().join("README.md")).unwrap();
    let mut blocks = text
        .split("```sh\n")
        .skip(1)
        .map(|b| b.split("\n```").next().unwrap_or_default());
    blocks
        .find(|b| b.contains(needle))
        .unwrap_or_else(|| panic!("README.md has no sh block with {needle:?}"))
        .to_owned()
}

/// The text of README.md between `<!-- NAME:begin -->` and `<!-- NAME:end -->`.
fn readme_section(name: &str) -> String {
    let text = std::fs::read_to_string(root().join("README.md")).unwrap();
    let begin = format!("<!-- {name}:begin -->");
    let end = format!("<!-- {name}:end -->");
    let from = text
        .find(&begin)
        .unwrap_or_else(|| panic!("README.md has no {begin}"));
    let to = text[from..]
        .find(&end)
        .unwrap_or_else(|| panic!("README.md has no {end}"));
    text[from + begin.len()..from + to].to_owned()
}

#[test]
fn make_run_then_the_readme_examples_work() {
    let work = tempfile::tempdir().unwrap();
    let var = work.path().join("var");
    let port = free_port();
    let metrics_port = free_port();
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_mahnwerk"));
    let db = format!("sqlite:{}?mode=rwc", var.join("mahnwerk.db").display());
    // Like a terminal's Ctrl-C: SIGINT at its default disposition even if this test runs
    // under a parent that ignores it (a background job does), since a non-interactive bash
    // cannot trap a signal that was ignored when it started.
    let mut cmd = Command::new("env");
    cmd.arg("--default-signal=INT")
        .arg(root().join("scripts/run.sh"));
    cmd.env("MAHNWERK_BIN", &bin)
        .env("MAHNWERK_VAR", &var)
        .env("MAHNWERK_LISTEN", format!("127.0.0.1:{port}"))
        .env("MAHNWERK_NAMESPACE", format!("readme{port}"))
        .env(
            "MAHNWERK_METRICS_LISTEN",
            format!("127.0.0.1:{metrics_port}"),
        )
        .env_remove("NATS_URL")
        .env_remove("MAHNWERK_DATABASE_URL")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let mut run = cmd.spawn().expect("scripts/run.sh starts");
    let run_pid = run.id();
    let _cleanup = KillTree(run_pid, var.join("nats/pid"), var.join("mail-sink.pid"));

    // Read what `make run` prints until the API key line.
    let mut out = BufReader::new(run.stdout.take().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        while out.read_line(&mut line).unwrap_or(0) > 0 {
            let _ = tx.send(line.clone());
            line.clear();
        }
    });
    let mut key = None;
    let mut printed = String::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !printed.contains("Stop with Ctrl-C") {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("make run printed its API key and where everything is");
        printed.push_str(&line);
        if key.is_none() {
            key = line.trim().strip_prefix("API key: ").map(str::to_owned);
        }
    }
    let key = key.unwrap();
    assert!(
        printed.contains(&format!("gRPC:    http://127.0.0.1:{port}")),
        "{printed}"
    );
    assert!(
        printed.contains("NATS: nats://127.0.0.1:"),
        "private NATS announced: {printed}"
    );
    // Where everything is: the letters (spool, mail sink), the PDFs, the metrics.
    for line in [
        format!("letters: post spool {}", var.join("post-spool").display()),
        "by email through SMTP 127.0.0.1:".to_owned(),
        format!("PDFs:    {}", var.join("documents").display()),
        format!("metrics: http://127.0.0.1:{metrics_port}/metrics"),
        format!("every email kept in {}", var.join("mailbox").display()),
        "letterhead Demo GmbH, default dunning policies".to_owned(),
    ] {
        assert!(printed.contains(&line), "{line}: {printed}");
    }

    // The README's CLI block, verbatim but for the binary path and the key placeholder.
    let cli = readme_block("invoice create")
        .lines()
        .filter(|l| !l.starts_with("export MAHNWERK_API_KEY="))
        .collect::<Vec<_>>()
        .join("\n")
        .replace("target/release/mahnwerk", &bin.display().to_string());
    let cli_out = Command::new("bash")
        .args(["-euo", "pipefail", "-c", &cli])
        .current_dir(work.path())
        .env("MAHNWERK_API_KEY", &key)
        .env("MAHNWERK_SERVER", format!("http://127.0.0.1:{port}"))
        .env("MAHNWERK_DATABASE_URL", &db)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&cli_out.stdout).to_string();
    assert!(
        cli_out.status.success(),
        "README CLI block failed: {text}\n{}",
        String::from_utf8_lossy(&cli_out.stderr)
    );
    assert!(text.contains("created"), "{text}");
    assert!(
        text.contains("invoice.issued.v1"),
        "case show prints the timeline: {text}"
    );
    assert!(text.contains("every hash chain intact"), "{text}");

    // The README's Python block, with grpcio from the venv and the stubs generated from proto/.
    std::os::unix::fs::symlink(root().join("proto"), work.path().join("proto")).unwrap();
    let py = readme_block("grpc_tools.protoc")
        .replace(".venv/bin/python", &python("grpcio").display().to_string());
    let py_out = Command::new("bash")
        .args([
            "-euo",
            "pipefail",
            "-c",
            &py.replace("127.0.0.1:50051", &format!("127.0.0.1:{port}")),
        ])
        .current_dir(work.path())
        .env("MAHNWERK_API_KEY", &key)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&py_out.stdout).to_string();
    assert!(
        py_out.status.success(),
        "README Python block failed: {text}\n{}",
        String::from_utf8_lossy(&py_out.stderr)
    );
    assert!(
        text.contains("created: true") && text.contains("RE-2026-0002"),
        "{text}"
    );

    // The README's path to the first reminder letter (between the first-letter markers),
    // verbatim but for the binary, the Python and the port: the invoices above are long overdue,
    // so the default policy's reminder goes out on the demo letterhead right away.
    let section = readme_section("first-letter");
    let blocks: Vec<&str> = section
        .split("```sh\n")
        .skip(1)
        .map(|b| b.split("\n```").next().unwrap_or_default())
        .collect();
    assert_eq!(blocks.len(), 2, "{section}");
    let run_block = |block: &str| {
        let script = block
            .replace("target/release/mahnwerk", &bin.display().to_string())
            .replace(".venv/bin/python", &python("grpcio").display().to_string())
            .replace("127.0.0.1:50051", &format!("127.0.0.1:{port}"));
        let out = Command::new("timeout")
            .args(["120", "bash", "-euo", "pipefail", "-c", &script])
            .current_dir(work.path())
            .env("MAHNWERK_API_KEY", &key)
            .env("MAHNWERK_SERVER", format!("http://127.0.0.1:{port}"))
            .env("MAHNWERK_DATABASE_URL", &db)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "README first-letter block failed: {text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        text
    };
    let text = run_block(blocks[0]);
    for t in [
        "dunning.step_reached.v1",
        "letter.rendered.v1",
        "letter.dispatched.v1",
        "letter.copy_sent.v1",
        "var/mailbox/",
    ] {
        assert!(text.contains(t), "{t}: {text}");
    }
    let text = run_block(blocks[1]);
    assert!(text.contains("saved reminder.pdf"), "{text}");
    assert!(
        text.contains("sent by post"),
        "Max Muster has no email: {text}"
    );
    let page = Command::new(python("grpcio"))
        .args([
            "-c",
            "import pypdf,sys; print(pypdf.PdfReader(sys.argv[1]).pages[0].extract_text())",
        ])
        .arg(work.path().join("reminder.pdf"))
        .output()
        .unwrap();
    let page = String::from_utf8_lossy(&page.stdout);
    assert!(page.contains("Demo GmbH"), "the demo letterhead: {page}");
    assert!(page.contains("Zahlungserinnerung"), "{page}");
    assert!(page.contains("RE-2026-0002"), "{page}");
    let spooled = std::fs::read_dir(var.join("post-spool"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "pdf")
        })
        .count();
    assert_eq!(spooled, 1, "Max Muster's reminder in the post spool");
    let mails: Vec<String> = std::fs::read_dir(var.join("mailbox"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    assert!(
        mails.iter().any(|m| m.contains("erika@example.org")),
        "the reminder to the debtor"
    );
    assert!(
        mails.iter().any(|m| m.contains("kopie@demo-gmbh.example")),
        "the creditor's copy"
    );

    // Prometheus metrics count what happened.
    let metrics = http_get(metrics_port, "/metrics");
    assert!(
        metrics.contains("mahnwerk_invoices_recorded_total 2"),
        "{metrics}"
    );
    // The log writer's totals are exported once a second.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let metrics = http_get(metrics_port, "/metrics");
        let events: u64 = metrics
            .lines()
            .find_map(|l| l.strip_prefix("mahnwerk_eventlog_events_total "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        // At least the two invoices the README created (the demo may record more).
        if events >= 2 && metrics.contains("mahnwerk_eventlog_writer_busy_seconds") {
            break;
        }
        assert!(Instant::now() < deadline, "{metrics}");
        std::thread::sleep(Duration::from_millis(200));
    }

    // Ctrl-C stops both the service and the private NATS.
    let nats_pid = std::fs::read_to_string(var.join("nats/pid")).unwrap();
    Command::new("kill")
        .args(["-INT", &run_pid.to_string()])
        .status()
        .unwrap();
    let waited = Instant::now();
    loop {
        if run.try_wait().unwrap().is_some() {
            break;
        }
        assert!(
            waited.elapsed() < Duration::from_secs(30),
            "make run did not stop on Ctrl-C"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // The private nats-server exits (gone, or a zombie waiting for its reaper).
    let stat = format!("/proc/{}/stat", nats_pid.trim());
    let stopped = |s: &str| {
        s.split(") ")
            .nth(1)
            .is_some_and(|rest| rest.starts_with('Z'))
    };
    let waited = Instant::now();
    while std::fs::read_to_string(&stat).is_ok_and(|s| !stopped(&s)) {
        assert!(
            waited.elapsed() < Duration::from_secs(20),
            "private nats-server still running after Ctrl-C"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn http_get(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    body
}

/// Whatever happens, `make run`'s processes (script, service, private NATS) do not outlive the test.
struct KillTree(u32, PathBuf, PathBuf);

impl Drop for KillTree {
    fn drop(&mut self) {
        let pid = self.0.to_string();
        let _ = Command::new("pkill")
            .args(["-KILL", "-P", &pid])
            .stderr(Stdio::null())
            .status();
        let _ = Command::new("kill")
            .args(["-KILL", &pid])
            .stderr(Stdio::null())
            .status();
        for pidfile in [&self.1, &self.2] {
            let Ok(nats) = std::fs::read_to_string(pidfile) else {
                continue;
            };
            let nats = nats.trim();
            if nats.parse::<u32>().is_ok_and(|p| p > 1) {
                let _ = Command::new("kill")
                    .args(["-KILL", nats])
                    .stderr(Stdio::null())
                    .status();
            }
        }
    }
}
