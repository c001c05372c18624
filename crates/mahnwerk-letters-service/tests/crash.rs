//! Exactly once under crashes: the service is killed (its task aborted, dropping every future
//! mid-flight, as SIGKILL would) at random moments, at least 20 times, while it dispatches
//! 200 letters (`LETTERS_CRASH_N`; ~24 s on an idle 2-core machine, debug-build rendering costs
//! ~0.2 s of CPU per letter) by email and post. Afterwards every letter was delivered exactly once or is
//! `unknown` (flagged for review), none twice, counted at the SMTP server and in the spool.
//! Cases paid a moment before dispatch get no letter.

mod common;

use common::*;
use mahnwerk_letters::events::CopyTo;
use mahnwerk_letters_service::store::state;
use std::collections::{HashMap, HashSet};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_repeatedly_while_dispatching_no_letter_goes_out_twice() {
    let n: usize = std::env::var("LETTERS_CRASH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let h = Harness::start(&[]).await;
    put_settings(&h.log, &h.tenant, &settings(CopyTo::Inbox)).await;
    let mut paid_before = HashSet::new();
    let mut paid_racing = HashSet::new();
    for i in 0..n {
        let email = (i % 2 == 0).then(|| format!("kunde{i}@debtor.test"));
        let inv = invoice(&format!("RE-CRASH-{i}"), email.as_deref());
        let (case, stream) = case_of(&h.tenant, &inv);
        let mut events = vec![issued(&inv), step_event(&step(1))];
        if i % 10 == 3 {
            // Paid just before the letter is due to go out.
            events.insert(1, settled());
            paid_before.insert(case.0.to_string());
        }
        append(&h.log, &stream, events).await;
        if i % 10 == 7 {
            paid_racing.insert((case.0.to_string(), stream));
        }
    }
    let mut service = h.spawn_service();
    // Kill it at pseudo-random moments (the crash points), at least 20 times.
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15 ^ u64::from(std::process::id());
    let mut kills = 0;
    let mut racing = paid_racing.iter();
    while kills < 24 {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let pause = 20 + (seed >> 33) % 250;
        tokio::time::sleep(Duration::from_millis(pause)).await;
        // Some payments land while letters are being dispatched.
        for _ in 0..2 {
            if let Some((_, stream)) = racing.next() {
                append(&h.log, stream, vec![settled()]).await;
            }
        }
        service.abort();
        let _ = service.await;
        kills += 1;
        service = h.spawn_service();
    }
    for (_, stream) in racing {
        append(&h.log, stream, vec![settled()]).await;
    }
    wait_for("every letter final", 300, || async {
        let rows = h.rows().await;
        let debtor = rows.iter().filter(|r| r.recipient == "debtor").count();
        debtor >= n
            && rows.iter().all(|r| {
                r.reported
                    && ![state::INTENT, state::RENDERED, state::SENDING].contains(&r.state.as_str())
            })
    })
    .await;
    service.abort();
    let _ = service.await;

    let rows = h.rows().await;
    // Count deliveries where they arrive.
    let mut by_message_id: HashMap<String, usize> = HashMap::new();
    for m in received(&h.mail_dir) {
        let id = m
            .lines()
            .find_map(|l| l.strip_prefix("Message-ID: <"))
            .map(|l| {
                l.trim_end_matches('>')
                    .split('@')
                    .next()
                    .unwrap_or_default()
                    .to_owned()
            })
            .expect("every message has our Message-ID");
        *by_message_id.entry(id).or_default() += 1;
    }
    let spooled: HashSet<String> = h
        .spool_jobs()
        .into_iter()
        .map(|j| j["job_id"].as_str().unwrap_or_default().to_owned())
        .collect();
    let mut unknown = 0;
    let mut suppressed = 0;
    let mut letters_per_case: HashMap<&str, usize> = HashMap::new();
    for r in rows.iter().filter(|r| r.recipient == "debtor") {
        let delivered = match r.channel.as_str() {
            "email" => by_message_id.get(&r.id).copied().unwrap_or(0),
            "post" => usize::from(spooled.contains(&r.id)),
            other => panic!("unexpected channel {other}"),
        };
        assert!(
            delivered <= 1,
            "letter {} delivered {delivered} times",
            r.id
        );
        match r.state.as_str() {
            state::SENT => assert_eq!(delivered, 1, "sent but not delivered: {r:?}"),
            state::UNKNOWN => unknown += 1,
            state::SUPPRESSED => {
                suppressed += 1;
                assert_eq!(delivered, 0, "suppressed but delivered: {r:?}");
            }
            other => panic!("unexpected final state {other}: {r:?}"),
        }
        *letters_per_case.entry(r.case_id.as_str()).or_default() += delivered;
    }
    assert!(
        by_message_id.values().all(|&c| c == 1),
        "an email went out twice"
    );
    // Paid before dispatch: no letter, and the case file says why.
    for case in &paid_before {
        assert_eq!(
            letters_per_case.get(case.as_str()).copied().unwrap_or(0),
            0,
            "paid case {case} got a letter"
        );
    }
    assert!(suppressed >= paid_before.len());
    // A racing payment recorded before the letter's rendered event also stops it.
    for (case, stream) in &paid_racing {
        let events = event_types(&h.log, stream).await;
        let settled_at = events.iter().position(|(t, _)| t == "invoice.settled.v1");
        let rendered_at = events.iter().position(|(t, _)| t == "letter.rendered.v1");
        if let (Some(s), None) | (Some(s), Some(_)) = (settled_at, rendered_at)
            && rendered_at.is_none_or(|r| s < r)
        {
            assert_eq!(
                letters_per_case.get(case.as_str()).copied().unwrap_or(0),
                0,
                "case {case} paid before dispatch got a letter"
            );
        }
    }
    // Every case stream holds at most one dispatched event per letter.
    let sent = rows
        .iter()
        .filter(|r| r.recipient == "debtor" && r.state == state::SENT)
        .count();
    eprintln!(
        "letters: {n}, kills: {kills}, sent: {sent}, unknown: {unknown}, suppressed: {suppressed}"
    );
    assert_eq!(sent + unknown + suppressed, n);
}
