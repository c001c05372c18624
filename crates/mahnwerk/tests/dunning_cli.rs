//! `mahnwerk dunning approve|decline|assign|group|move`: the binary against a running server
//! (every service in-process, simulated clock), checked on the events the event log holds.

mod common;

use common::*;
use mahnwerk_domain::{CaseId, StreamId, TenantId};
use mahnwerk_dunning::law::calendar::FederalState;
use mahnwerk_dunning::policy::{Approval, Policy};
use mahnwerk_eventlog::{EventLog, RecordedEvent};
use mahnwerk_proto::v1 as pb;
use pb::dunning_service_client::DunningServiceClient;
use pb::invoice_service_client::InvoiceServiceClient;

async fn events(log: &EventLog, stream: &StreamId) -> Vec<RecordedEvent> {
    log.read_stream(stream, 1, 10_000).await.unwrap()
}

fn of_type<'a>(events: &'a [RecordedEvent], t: &str) -> Vec<&'a RecordedEvent> {
    events.iter().filter(|e| e.event_type == t).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dunning_cli_approves_declines_assigns_groups_and_moves_and_each_is_an_event() {
    let dir = tempfile::tempdir().unwrap();
    let url = databases(&dir).await.remove(0);
    let key = tenant_key(&url, "acme").await;
    let server = start_with(&url, |a| {
        a.services.clear(); // all
        a.simulated_clock = Some("2026-03-01".parse().unwrap());
    })
    .await;
    let cli = Cli {
        command: "dunning",
        server: format!("http://{}", server.addr),
        key: key.clone(),
    };
    let tenant: TenantId = "acme".parse().unwrap();
    let log = EventLog::connect(&url).await.unwrap();
    let mut dunning = DunningServiceClient::new(server.channel().await);
    // The tenant's consumer policy waits for the creditor; "vip" runs by itself.
    let mut approval = Policy::default_consumer(FederalState::NW);
    approval.approval = Approval::Creditor;
    let mut vip = Policy::default_consumer(FederalState::NW);
    vip.id = "vip".into();
    vip.name = "VIP".into();
    for p in [&approval, &vip] {
        dunning
            .put_policy(authed(
                &key,
                pb::PutPolicyRequest {
                    policy_json: serde_json::to_string(p).unwrap(),
                    ..Default::default()
                },
            ))
            .await
            .unwrap();
    }

    // assign and group: events on the assignment streams, with the caller as actor.
    let out = cli
        .ok(&["assign", "--group", "premium", "--policy", "vip"])
        .await;
    assert!(
        out.starts_with("group premium: policy vip (version "),
        "{out}"
    );
    let out = cli
        .ok(&["group", "--debtor", "K-G", "--group", "premium"])
        .await;
    assert!(
        out.starts_with("debtor K-G: group premium (version "),
        "{out}"
    );
    cli.ok(&["assign", "--debtor", "K-OWN", "--policy", "vip"])
        .await;
    let out = cli.ok(&["assign", "--debtor", "K-OWN"]).await;
    assert!(out.starts_with("debtor K-OWN: no own policy"), "{out}");
    let stream = |name: &str| StreamId::new(&tenant, "policy_assignment", name);
    let group = events(&log, &stream("group-premium")).await;
    let assigned = of_type(&group, "dunning.policy_assigned.v1");
    assert_eq!(assigned.len(), 1);
    assert_eq!(assigned[0].payload["policy_id"], "vip");
    assert!(
        assigned[0].metadata.actor.starts_with("apikey:"),
        "{:?}",
        assigned[0].metadata
    );
    let grouped = events(&log, &stream("debtor-K-G")).await;
    assert_eq!(
        of_type(&grouped, "dunning.debtor_grouped.v1")[0].payload["group"],
        "premium"
    );
    let own = events(&log, &stream("debtor-K-OWN")).await;
    let own: Vec<&serde_json::Value> = of_type(&own, "dunning.policy_assigned.v1")
        .iter()
        .map(|e| &e.payload["policy_id"])
        .collect();
    assert_eq!(
        own,
        [&serde_json::json!("vip"), &serde_json::Value::Null],
        "assigned, then removed"
    );
    // A debtor and a group at once is refused by the CLI itself.
    let (ok, _, err) = cli
        .run(&[
            "assign", "--debtor", "K-1", "--group", "premium", "--policy", "vip",
        ])
        .await;
    assert!(!ok && err.contains("cannot be used with"), "{err}");

    // Three invoices, due Sunday 03-15: two of K-1 under the approval policy, one of K-G (in
    // group premium: vip).
    let mut invoices = InvoiceServiceClient::new(server.channel().await);
    let mut case = std::collections::BTreeMap::new();
    for (number, customer) in [
        ("RE-CLI-A", "K-1"),
        ("RE-CLI-D", "K-1"),
        ("RE-CLI-G", "K-G"),
    ] {
        let mut inv = invoice(number);
        inv.debtor.as_mut().unwrap().customer_number = customer.into();
        let created = invoices
            .create_invoice(authed(
                &key,
                pb::CreateInvoiceRequest {
                    invoice: Some(inv),
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner();
        case.insert(number, created.invoice.unwrap().case_id);
    }
    let explain = |number: &str| {
        authed(
            &key,
            pb::ExplainCaseRequest {
                case_id: case[number].clone(),
                ..Default::default()
            },
        )
    };
    for number in ["RE-CLI-A", "RE-CLI-D", "RE-CLI-G"] {
        wait_for("dunning to open the case", 30, || {
            let mut d = dunning.clone();
            let req = explain(number);
            async move { d.explain_case(req).await.is_ok() }
        })
        .await;
    }
    let policy_of = |r: pb::ExplainCaseResponse| (r.policy_id, r.policy_version);
    assert_eq!(
        policy_of(
            dunning
                .explain_case(explain("RE-CLI-G"))
                .await
                .unwrap()
                .into_inner()
        ),
        ("vip".to_owned(), 1),
        "the group's policy, assigned by the CLI"
    );
    // Reminder day 03-20: the approval policy offers A and D to the creditor.
    dunning
        .advance_clock(authed(&key, pb::AdvanceClockRequest { days: 19 }))
        .await
        .unwrap();
    let stream_of =
        |number: &str| CaseId::for_invoice(&tenant, &number.parse().unwrap()).stream(&tenant);
    for number in ["RE-CLI-A", "RE-CLI-D"] {
        wait_for("the offer", 30, || {
            let log = log.clone();
            let s = stream_of(number);
            async move { !of_type(&events(&log, &s).await, "dunning.offered.v1").is_empty() }
        })
        .await;
    }

    // approve, decline: one event each, idempotent by the default request id.
    let a = case["RE-CLI-A"].clone();
    let out = cli.ok(&["approve", "--case", &a]).await;
    assert!(out.contains("dunning.approved.v1"), "{out}");
    let out = cli.ok(&["approve", "--case", &a]).await;
    assert!(out.contains("nothing to change"), "{out}");
    let d = case["RE-CLI-D"].clone();
    let out = cli
        .ok(&["decline", "--case", &d, "--request-id", "decline-d-1"])
        .await;
    assert!(out.contains("dunning.declined.v1"), "{out}");
    let a_events = events(&log, &stream_of("RE-CLI-A")).await;
    let approved = of_type(&a_events, "dunning.approved.v1");
    assert_eq!(approved.len(), 1, "approved once");
    assert_eq!(approved[0].payload["approved_on"], "2026-03-20");
    assert_eq!(
        approved[0].metadata.causation_id.as_deref(),
        Some(format!("request:approve-{a}").as_str())
    );
    assert!(approved[0].metadata.actor.starts_with("apikey:"));
    let d_events = events(&log, &stream_of("RE-CLI-D")).await;
    let declined = of_type(&d_events, "dunning.declined.v1");
    assert_eq!(declined.len(), 1);
    assert_eq!(
        declined[0].metadata.causation_id.as_deref(),
        Some("request:decline-d-1")
    );
    assert!(of_type(&d_events, "dunning.approved.v1").is_empty());

    // move: A to vip (its version 1), an event naming both policies.
    let out = cli
        .ok(&["move", "--case", &a, "--policy", "vip", "--version", "1"])
        .await;
    assert!(out.contains("dunning.policy_moved.v1"), "{out}");
    let a_events = events(&log, &stream_of("RE-CLI-A")).await;
    let moved = of_type(&a_events, "dunning.policy_moved.v1");
    assert_eq!(moved.len(), 1);
    assert_eq!(moved[0].payload["from_id"], "default-consumer");
    assert_eq!(moved[0].payload["policy"]["id"], "vip");
    assert_eq!(moved[0].payload["policy"]["version"], 1);
    assert_eq!(
        policy_of(
            dunning
                .explain_case(explain("RE-CLI-A"))
                .await
                .unwrap()
                .into_inner()
        ),
        ("vip".to_owned(), 1)
    );

    // Refusals reach the operator as errors with the reason, and change nothing.
    let g = case["RE-CLI-G"].clone();
    wait_for("G's reminder under vip", 30, || {
        let log = log.clone();
        let s = stream_of("RE-CLI-G");
        async move { !of_type(&events(&log, &s).await, "dunning.step_reached.v1").is_empty() }
    })
    .await;
    // The refused commands append no dunning event (the letters service may still be writing
    // the step's letter events meanwhile).
    let dunning = |events: Vec<RecordedEvent>| {
        events
            .into_iter()
            .filter(|e| e.event_type.starts_with("dunning."))
            .count()
    };
    let before = dunning(events(&log, &stream_of("RE-CLI-G")).await);
    let (ok, _, err) = cli.run(&["approve", "--case", &g]).await;
    assert!(!ok, "an automatic policy has nothing to approve");
    assert!(err.contains("FailedPrecondition"), "{err}");
    assert!(err.contains("runs automatically"), "{err}");
    let (ok, _, err) = cli
        .run(&["move", "--case", &g, "--policy", "vip", "--version", "9"])
        .await;
    assert!(!ok && err.contains("NotFound"), "{err}");
    assert_eq!(dunning(events(&log, &stream_of("RE-CLI-G")).await), before);
    server.stop().await;
}

/// `mahnwerk dunning pause|resume|promise|plan|settle|skip|repeat|write-off` on a case: each is one
/// event with the caller as actor, the default request id makes a repeated command change
/// nothing, and bad input is refused with the option named before anything is sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dunning_cli_intervenes_on_cases_and_each_intervention_is_an_event() {
    let dir = tempfile::tempdir().unwrap();
    let url = databases(&dir).await.remove(0);
    let key = tenant_key(&url, "acme").await;
    let server = start_with(&url, |a| {
        a.services.clear(); // all
        a.simulated_clock = Some("2026-03-01".parse().unwrap());
    })
    .await;
    let cli = Cli {
        command: "dunning",
        server: format!("http://{}", server.addr),
        key: key.clone(),
    };
    let tenant: TenantId = "acme".parse().unwrap();
    let log = EventLog::connect(&url).await.unwrap();
    let mut dunning = DunningServiceClient::new(server.channel().await);
    let mut invoices = InvoiceServiceClient::new(server.channel().await);
    let mut case = std::collections::BTreeMap::new();
    for number in ["RE-I-1", "RE-I-2", "RE-I-3"] {
        let created = invoices
            .create_invoice(authed(
                &key,
                pb::CreateInvoiceRequest {
                    invoice: Some(invoice(number)),
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner();
        case.insert(number, created.invoice.unwrap().case_id);
    }
    let stream_of =
        |number: &str| CaseId::for_invoice(&tenant, &number.parse().unwrap()).stream(&tenant);
    for number in case.keys() {
        wait_for("dunning to open the case", 30, || {
            let log = log.clone();
            let s = stream_of(number);
            async move { !of_type(&events(&log, &s).await, "dunning.case_opened.v1").is_empty() }
        })
        .await;
    }
    let (one, two, three) = (
        case["RE-I-1"].clone(),
        case["RE-I-2"].clone(),
        case["RE-I-3"].clone(),
    );

    // Refused by the CLI itself, with the option named: nothing reaches the case.
    let (ok, _, err) = cli
        .run(&[
            "settle",
            "--case",
            &one,
            "--amount",
            "50.001",
            "--pay-by",
            "2026-04-30",
        ])
        .await;
    assert!(!ok && err.contains("--amount"), "{err}");
    let (ok, _, err) = cli
        .run(&["plan", "--case", &one, "--instalment", "2026-04-01"])
        .await;
    assert!(!ok && err.contains("--instalment 1"), "{err}");

    // pause, then resume: one event each, a repeat changes nothing.
    let out = cli
        .ok(&["pause", "--case", &one, "--reason", "customer called"])
        .await;
    assert!(out.contains("dunning.paused.v1"), "{out}");
    let out = cli
        .ok(&["pause", "--case", &one, "--reason", "customer called"])
        .await;
    assert!(out.contains("nothing to change"), "{out}");
    let out = cli.ok(&["resume", "--case", &one]).await;
    assert!(out.contains("dunning.resumed.v1"), "{out}");
    // promise and plan on the second and third case.
    let out = cli
        .ok(&[
            "promise",
            "--case",
            &two,
            "--amount",
            "119.00",
            "--until",
            "2026-04-15",
        ])
        .await;
    assert!(out.contains("dunning.paused.v1"), "{out}");
    let out = cli
        .ok(&[
            "plan",
            "--case",
            &three,
            "--instalment",
            "2026-04-01=60.00",
            "--instalment",
            "2026-05-01=59.00",
        ])
        .await;
    assert!(out.contains("dunning.paused.v1"), "{out}");
    let three_events = events(&log, &stream_of("RE-I-3")).await;
    let plan = of_type(&three_events, "dunning.paused.v1");
    assert_eq!(plan[0].payload["pause"]["kind"], "payment_plan");
    assert_eq!(
        plan[0].payload["pause"]["instalments"][1]["amount"]["minor"],
        5900
    );

    // skip the first case's reminder, then a settlement of 50.00 by 04-30.
    let out = cli
        .ok(&["skip", "--case", &one, "--reason", "known debtor"])
        .await;
    assert!(out.contains("dunning.step_skipped.v1"), "{out}");
    let out = cli
        .ok(&[
            "settle",
            "--case",
            &one,
            "--amount",
            "50",
            "--pay-by",
            "2026-04-30",
        ])
        .await;
    assert!(out.contains("dunning.paused.v1"), "{out}");
    let one_events = events(&log, &stream_of("RE-I-1")).await;
    let skipped = of_type(&one_events, "dunning.step_skipped.v1");
    assert_eq!(skipped.len(), 1);
    assert_eq!(skipped[0].payload["reason"], "known debtor");
    assert!(skipped[0].metadata.actor.starts_with("apikey:"));
    let settlement = of_type(&one_events, "dunning.paused.v1")
        .into_iter()
        .find(|e| e.payload["pause"]["kind"] == "settlement")
        .expect("the settlement is recorded");
    assert_eq!(settlement.payload["pause"]["amount"]["minor"], 5000);
    // Nothing is sent while the settlement runs: refused by the server, with why.
    let (ok, _, err) = cli
        .run(&["repeat", "--case", &one, "--reason", "returned"])
        .await;
    assert!(
        !ok && err.contains("FailedPrecondition") && err.contains("paused"),
        "{err}"
    );
    // A settlement that waives nothing is the server's refusal, named.
    let (ok, _, err) = cli
        .run(&[
            "settle",
            "--case",
            &two,
            "--amount",
            "500",
            "--pay-by",
            "2026-04-30",
        ])
        .await;
    assert!(
        !ok && err.contains("InvalidArgument") && err.contains("amount"),
        "{err}"
    );

    // write-off ends the second case.
    let out = cli
        .ok(&["write-off", "--case", &two, "--reason", "insolvent"])
        .await;
    assert!(out.contains("dunning.written_off.v1"), "{out}");
    let ex = dunning
        .explain_case(authed(
            &key,
            pb::ExplainCaseRequest {
                case_id: two.clone(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ex.status, "written_off");
    server.stop().await;
}
