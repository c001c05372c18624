//! `make demo` (scripts/demo.sh, minus the release build): the seeds' process on a simulated
//! clock against a fresh directory, with the real components (SQLite event log, JetStream, the
//! local SMTP mail sink, typst letters). The timeline's facts are asserted on the event log the
//! demo leaves, not on its text (one invoice comes as an XRechnung file; the unpaid ones get every
//! notice of their policy up to the "Letzte Mahnung"); and the demo's JSON logs, captured at debug level, hold none of
//! the debtors' names, email addresses or IBANs.

use mahnwerk::demo::cast;
use mahnwerk_domain::{CaseId, TenantId};
use mahnwerk_dunning::law::calendar::{FederalState, move_to_working_day};
use mahnwerk_dunning::policy::Policy;
use mahnwerk_eventlog::EventLog;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

struct DemoRun {
    var: PathBuf,
    stdout: String,
    stderr: String,
}

/// One demo run for every test of this file (the second test waits for the first's run).
fn demo() -> &'static DemoRun {
    static RUN: OnceLock<DemoRun> = OnceLock::new();
    RUN.get_or_init(|| {
        let var = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("demo-test");
        let _ = std::fs::remove_dir_all(&var);
        std::fs::create_dir_all(&var).unwrap();
        let mut cmd = Command::new(root().join("scripts/demo.sh"));
        cmd.env("MAHNWERK_BIN", env!("CARGO_BIN_EXE_mahnwerk"))
            .env("MAHNWERK_VAR", &var)
            .env("MAHNWERK_LOG_FORMAT", "json")
            // Everything our crates log, at debug, plus the libraries' info.
            .env(
                "RUST_LOG",
                "debug,h2=info,hyper=info,hyper_util=info,tower=info,rustls=info,tokio_util=info,sqlx=info",
            )
            .env_remove("MAHNWERK_DATABASE_URL")
            .env_remove("MAHNWERK_SMTP_HOST")
            .env_remove("MAHNWERK_SERVICES");
        if std::env::var("NATS_URL").is_err() {
            // make test sets NATS_URL; alone, the script starts a private server under var/.
            cmd.env_remove("NATS_URL");
        }
        let out = cmd.output().expect("scripts/demo.sh runs");
        // Kept for a look after the test: the timeline and the captured JSON logs.
        std::fs::write(var.join("demo.out"), &out.stdout).unwrap();
        std::fs::write(var.join("demo.log"), &out.stderr).unwrap();
        let run = DemoRun {
            var,
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        assert!(
            out.status.success(),
            "make demo failed:\n{}\n{}",
            run.stdout,
            run.stderr.chars().rev().take(4000).collect::<String>()
        );
        run
    })
}

struct Ev {
    t: String,
    p: Value,
}

fn case_events(log: &EventLog, number: &str) -> Vec<Ev> {
    let tenant: TenantId = cast::TENANT.parse().unwrap();
    let case = CaseId::for_invoice(&tenant, &number.parse().unwrap());
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(log.read_stream(&case.stream(&tenant), 1, 10_000))
        .unwrap()
        .into_iter()
        .map(|e| Ev {
            t: e.event_type,
            p: e.payload,
        })
        .collect()
}

fn of<'a>(events: &'a [Ev], t: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e.t == t).map(|e| &e.p).collect()
}

fn pos(events: &[Ev], t: &str) -> usize {
    events.iter().position(|e| e.t == t).unwrap_or_else(|| {
        panic!(
            "no {t} in {:?}",
            events.iter().map(|e| &e.t).collect::<Vec<_>>()
        )
    })
}

fn date(v: &Value) -> chrono::NaiveDate {
    v.as_str().unwrap().parse().unwrap()
}

#[test]
fn make_demo_runs_the_seeds_process_and_the_log_holds_its_timeline() {
    let run = demo();
    let dir = run.var.join("demo");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let url = format!("sqlite:{}?mode=rw", dir.join("mahnwerk.db").display());
    let log = rt.block_on(EventLog::connect(&url)).unwrap();
    let (_, due, _) = cast::dates();
    let policy = |business: bool| {
        let kind = if business {
            mahnwerk_domain::DebtorKind::Business
        } else {
            mahnwerk_domain::DebtorKind::Consumer
        };
        Policy::default_for(kind, FederalState::NW)
    };
    let ev = |n: &str| case_events(&log, n);
    let steps = |events: &[Ev]| -> Vec<(u64, chrono::NaiveDate)> {
        of(events, "dunning.step_reached.v1")
            .iter()
            .map(|p| (p["number"].as_u64().unwrap(), date(&p["date"])))
            .collect()
    };
    let titles = |events: &[Ev]| -> Vec<String> {
        of(events, "dunning.step_reached.v1")
            .iter()
            .map(|p| p["title"].as_str().unwrap().to_owned())
            .collect()
    };
    let policy_titles =
        |p: &Policy| -> Vec<String> { p.steps.iter().map(|s| s.title.clone()).collect() };
    // The set intervals (mahnwerk_dunning::dunning_case): step k comes the policy's gap after the later
    // of step k-1 and the last payment, never before step k-1's deadline has passed, on a
    // working day.
    let check_intervals = |events: &[Ev], policy: &Policy| {
        let reached = of(events, "dunning.step_reached.v1");
        let payments: Vec<chrono::NaiveDate> = of(events, "payment.applied.v1")
            .iter()
            .map(|p| date(&p["booked_on"]))
            .collect();
        for k in 1..reached.len() {
            let prev = date(&reached[k - 1]["date"]);
            let paid = payments
                .iter()
                .copied()
                .filter(|d| *d <= date(&reached[k]["date"]));
            let anchor = paid.max().map_or(prev, |p| p.max(prev));
            let earliest =
                date(&reached[k - 1]["deadline"]["deadline"]) + chrono::Duration::days(1);
            let expected = move_to_working_day(
                FederalState::NW,
                policy.step_date_from(k, anchor).max(earliest),
            )
            .deadline;
            assert_eq!(date(&reached[k]["date"]), expected, "step {}", k + 1);
        }
    };

    // Every debtor that had not paid by the due date got the reminder 5 days after it, by the
    // built-in default policy of its kind.
    for n in [
        "RE-DEMO-1001",
        "RE-DEMO-1002",
        "RE-DEMO-1003",
        "RE-DEMO-1004",
    ] {
        let e = ev(n);
        let s = steps(&e);
        assert_eq!(s[0], (1, due + chrono::Duration::days(5)), "{n}: {s:?}");
        let opened = of(&e, "dunning.case_opened.v1");
        assert!(
            opened[0]["policy"]["id"]
                .as_str()
                .unwrap()
                .starts_with("default-"),
            "{n}"
        );
        // A copy of every letter reached the creditor.
        for d in of(&e, "letter.dispatched.v1") {
            assert!(
                of(&e, "letter.copy_sent.v1")
                    .iter()
                    .any(|c| c["step"] == d["step"] && c["channel"] == "email"),
                "{n}: no copy of step {}",
                d["step"]
            );
        }
    }

    // One invoice came as an XRechnung file through ImportEInvoice: its case was issued from
    // that e-invoice (the file the demo left, by its hash), ran like the others and got its
    // reminder (above) by email, with the creditor's copy. The others came by CreateInvoice.
    let xrechnung = cast::debtors().into_iter().find(|d| d.xrechnung).unwrap();
    let file = std::fs::read(dir.join(mahnwerk::demo::xrechnung::file_name(&xrechnung))).unwrap();
    for d in cast::debtors() {
        let e = ev(d.invoice_number);
        let issued = of(&e, "invoice.issued.v1");
        assert_eq!(issued.len(), 1, "{}", d.invoice_number);
        let source = &issued[0]["invoice"]["source"];
        if !d.xrechnung {
            assert!(source.is_null(), "{}: {source}", d.invoice_number);
            continue;
        }
        assert_eq!(source["syntax"], "ubl", "{source}");
        assert_eq!(source["type_code"], "380", "{source}");
        assert!(
            source["specification"]
                .as_str()
                .unwrap()
                .contains("xrechnung_3.0"),
            "{source}"
        );
        assert_eq!(
            source["sha256"],
            mahnwerk_docstore::sha256_hex(&file),
            "issued from the file the demo left"
        );
        assert_eq!(source["debtor_kind_rule"], "vat_id", "{source}");
        assert_eq!(
            of(&e, "dunning.case_opened.v1")[0]["policy"]["id"],
            "default-business"
        );
        let s = steps(&e);
        assert_eq!(s[0], (1, due + chrono::Duration::days(5)), "{s:?}");
        let sent = of(&e, "letter.dispatched.v1");
        assert_eq!(sent[0]["step"], 1);
        assert_eq!(sent[0]["channel"], "email");
        assert!(of(&e, "letter.copy_sent.v1").iter().any(|c| c["step"] == 1));
    }
    assert!(
        run.stdout.contains("ImportEInvoice")
            && run
                .stdout
                .contains("invoice recorded from an e-invoice (UBL XRechnung"),
        "{}",
        run.stdout
    );

    // 1005 paid on the due date by RF reference: never dunned.
    let e = ev("RE-DEMO-1005");
    assert!(steps(&e).is_empty());
    assert_eq!(of(&e, "payment.applied.v1")[0]["rule"], "rf_reference");
    pos(&e, "invoice.settled.v1");

    // 1001 paid in full by camt.053, matched by the invoice number in the remittance text, and
    // got nothing after the reminder.
    let e = ev("RE-DEMO-1001");
    let paid = of(&e, "payment.applied.v1");
    assert_eq!(paid.len(), 1);
    assert_eq!(paid[0]["rule"], "invoice_number");
    assert_eq!(paid[0]["amount"]["minor"], 11900);
    assert_eq!(paid[0]["open_after"]["minor"], 0);
    assert_eq!(steps(&e).len(), 1, "nothing more after the payment");
    assert_eq!(of(&e, "letter.dispatched.v1").len(), 1);
    assert_eq!(of(&e, "letter.dispatched.v1")[0]["channel"], "email");
    assert!(pos(&e, "payment.applied.v1") < pos(&e, "invoice.settled.v1"));

    // 1002 paid a part and was dunned for the rest, at the consumer policy's intervals.
    let e = ev("RE-DEMO-1002");
    let paid = of(&e, "payment.applied.v1");
    assert_eq!(paid[0]["amount"]["minor"], 10000);
    assert_eq!(paid[0]["open_after"]["minor"], 29750 - 10000);
    // Every notice of the consumer policy up to the "Letzte Mahnung", at its intervals, each
    // sent (by post: no email address).
    let s = steps(&e);
    assert_eq!(titles(&e), policy_titles(&policy(false)), "{s:?}");
    assert_eq!(titles(&e).last().unwrap(), "Letzte Mahnung");
    check_intervals(&e, &policy(false));
    assert_eq!(of(&e, "letter.dispatched.v1").len(), s.len());
    let after: Vec<_> = e
        .iter()
        .skip(pos(&e, "payment.applied.v1"))
        .filter(|x| x.t == "dunning.step_reached.v1")
        .collect();
    assert!(!after.is_empty());
    // Dunned for the rest: what was left after the payment, plus this step's fee and interest.
    let rest = &after[0].p;
    assert_eq!(
        rest["balance"]["minor"].as_i64().unwrap(),
        19750
            + rest["fee"]["minor"].as_i64().unwrap()
            + rest["interest_charged"]["minor"].as_i64().unwrap(),
        "{rest}"
    );
    assert!(
        of(&e, "letter.dispatched.v1")
            .iter()
            .all(|d| d["channel"] == "post"),
        "no email address: by post"
    );

    // 1003 disputed after the reminder: paused, no further step.
    let e = ev("RE-DEMO-1003");
    let disputed = pos(&e, "invoice.disputed.v1");
    assert!(pos(&e, "dunning.paused.v1") > disputed);
    assert!(
        !e.iter()
            .skip(disputed)
            .any(|x| x.t == "dunning.step_reached.v1")
    );
    assert_eq!(steps(&e).len(), 1);

    // 1004 never paid: every step at the business policy's intervals, then handed over once it
    // was more than 30 days overdue; the partner accepted and reported a payment: closed.
    let e = ev("RE-DEMO-1004");
    let s = steps(&e);
    let business = policy(true);
    assert_eq!(s.len(), business.steps.len(), "{s:?}");
    assert_eq!(titles(&e), policy_titles(&business), "{s:?}");
    check_intervals(&e, &business);
    assert_eq!(
        of(&e, "letter.dispatched.v1").len(),
        s.len(),
        "every notice sent"
    );
    assert_eq!(
        s[1].1,
        s[0].1 + chrono::Duration::days(10),
        "no payment: exactly the gap"
    );
    let handed = of(&e, "case.handed_over.v1");
    assert_eq!(handed[0]["partner_id"], cast::PARTNER_ID);
    assert!((date(&handed[0]["handed_over_on"]) - due).num_days() > 30);
    // The "Letzte Mahnung" went out before the hand-over (its deadline passed first).
    let last = of(&e, "dunning.step_reached.v1")
        .last()
        .copied()
        .unwrap()
        .clone();
    assert_eq!(last["title"], "Letzte Mahnung");
    assert!(date(&last["deadline"]["deadline"]) < date(&handed[0]["handed_over_on"]));
    let last_sent = e
        .iter()
        .position(|x| x.t == "letter.dispatched.v1" && x.p["step"] == last["number"])
        .expect("the Letzte Mahnung was sent");
    assert!(last_sent < pos(&e, "case.handed_over.v1"));
    let reports: Vec<_> = of(&e, "collection.status_reported.v1")
        .iter()
        .map(|p| p["report"]["kind"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(reports, ["accepted", "payment_collected"]);
    assert_eq!(of(&e, "case.closed.v1")[0]["outcome"], "paid");
    assert!(pos(&e, "dunning.escalated.v1") < pos(&e, "case.handed_over.v1"));

    // The letters are where the user can open them: PDFs in the post spool (1002's and 1004's
    // letters), emails with the PDF in the mailbox (1001's and 1003's reminders and every copy).
    let files = |d: &Path, ext: &str| -> Vec<PathBuf> {
        std::fs::read_dir(d)
            .map(|r| {
                r.filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|x| x == ext))
                    .collect()
            })
            .unwrap_or_default()
    };
    let post_letters = of(&ev("RE-DEMO-1002"), "letter.dispatched.v1").len()
        + of(&ev("RE-DEMO-1004"), "letter.dispatched.v1").len();
    let pdfs = files(&dir.join("post-spool"), "pdf");
    assert_eq!(pdfs.len(), post_letters);
    for p in &pdfs {
        assert!(std::fs::read(p).unwrap().starts_with(b"%PDF-"));
    }
    let mails = files(&dir.join("mailbox"), "eml");
    let copies: usize = [
        "RE-DEMO-1001",
        "RE-DEMO-1002",
        "RE-DEMO-1003",
        "RE-DEMO-1004",
    ]
    .iter()
    .map(|n| of(&ev(n), "letter.copy_sent.v1").len())
    .sum();
    assert_eq!(
        mails.len(),
        copies + 2,
        "two reminders by email plus the copies"
    );
    let mail = std::fs::read_to_string(&mails[0]).unwrap();
    assert!(mail.contains("application/pdf"), "{mail}");

    assert!(rt.block_on(log.verify()).unwrap().is_ok());
    assert!(run.stdout.contains("Timeline:"), "{}", run.stdout);
    println!("{}", run.stdout);
}

#[test]
fn the_demos_json_logs_hold_no_personal_data_of_the_debtors() {
    let run = demo();
    let lines: Vec<&str> = run.stderr.lines().collect();
    // The capture is real: structured JSON lines from the services, with their work in them.
    let json: Vec<Value> = lines
        .iter()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert!(json.len() > 100, "{} JSON log lines", json.len());
    assert!(
        run.stderr.contains("\"level\":\"DEBUG\""),
        "debug logs captured"
    );
    // Every service of the process logged (so the grep covers each of them).
    for service in [
        "mahnwerk_ingest",
        "mahnwerk_bus",
        "mahnwerk_matching",
        "mahnwerk_dunning_service",
        "mahnwerk_letters_service",
        "mahnwerk_collection",
    ] {
        assert!(
            json.iter()
                .any(|j| j["target"].as_str().is_some_and(|t| t.starts_with(service))),
            "no log line of {service}"
        );
    }
    let mut needles = Vec::new();
    for d in cast::debtors() {
        needles.push(d.name.to_owned());
        needles.extend(d.email.map(str::to_owned));
        needles.push(d.iban.to_owned());
        let grouped: Vec<String> = d
            .iban
            .as_bytes()
            .chunks(4)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect();
        needles.push(grouped.join(" "));
        needles.push(d.street.to_owned());
    }
    let lower = run.stderr.to_lowercase();
    let found: Vec<&String> = needles
        .iter()
        .filter(|n| lower.contains(&n.to_lowercase()))
        .collect();
    assert!(found.is_empty(), "personal data in the logs: {found:?}");
    // The same data did reach the services (the timeline names the debtors): the check is not
    // vacuous.
    assert!(run.stdout.contains("Erika Mustermann"), "{}", run.stdout);
}
