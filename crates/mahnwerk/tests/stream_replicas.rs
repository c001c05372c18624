//! `MAHNWERK_STREAM_REPLICAS` on a real 3-node JetStream cluster: three nats-server processes
//! (NATS_SERVER_BIN, else the one in .venv, else `nats-server` on the PATH) routed to each other on loopback, each with
//! its own file store. The event stream exists with 1 replica (as an earlier version created
//! it); `mahnwerk serve` with `MAHNWERK_STREAM_REPLICAS=3` moves it to 3 and creates the
//! dead-letter, replay and hand-over streams with 3; every stream then reports 3 replicas (a
//! leader and two current peers) and an invoice's events flow through it to the consumers.

mod common;

use common::*;
use mahnwerk_proto::v1 as pb;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long the cluster and the service may take to come up or to move a stream.
const LIMIT: Duration = Duration::from_secs(180);

/// Three routed JetStream servers; returns them and their client URLs.
fn cluster(dir: &std::path::Path) -> (Vec<Kill>, Vec<String>) {
    let clients: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let routes: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let route_list = routes
        .iter()
        .map(|p| format!("\"nats-route://127.0.0.1:{p}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let mut servers = Vec::new();
    for i in 0..3 {
        let store = dir.join(format!("n{i}"));
        std::fs::create_dir_all(&store).unwrap();
        let conf = dir.join(format!("n{i}.conf"));
        std::fs::write(
            &conf,
            format!(
                "server_name: n{i}\nlisten: 127.0.0.1:{}\njetstream {{ store_dir: \"{}\" }}\n\
                 cluster {{ name: mw, listen: 127.0.0.1:{}, routes: [{route_list}] }}\n",
                clients[i],
                store.display(),
                routes[i],
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.join(format!("n{i}.log"))).unwrap();
        servers.push(Kill(
            Command::new(nats_server_bin())
                .arg("-c")
                .arg(&conf)
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("nats-server (set NATS_SERVER_BIN, or run `make pyenv`)"),
        ));
    }
    let urls = clients
        .iter()
        .map(|p| format!("nats://127.0.0.1:{p}"))
        .collect();
    (servers, urls)
}

/// JetStream of the cluster once it has a meta leader and all three servers (a stream with 3
/// replicas can be placed).
async fn jetstream_ready(url: &str) -> async_nats::jetstream::Context {
    let deadline = Instant::now() + LIMIT;
    loop {
        if let Ok(js) = mahnwerk_bus::connect(url).await {
            let probe = format!("PROBE_{}", unique("").to_uppercase());
            let placed = js
                .create_stream(async_nats::jetstream::stream::Config {
                    name: probe.clone(),
                    subjects: vec![format!("probe.{probe}")],
                    num_replicas: 3,
                    ..Default::default()
                })
                .await;
            if placed.is_ok() {
                let _ = js.delete_stream(&probe).await;
                return js;
            }
        }
        assert!(Instant::now() < deadline, "the 3-node cluster never formed");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn stream_info(
    js: &async_nats::jetstream::Context,
    name: &str,
) -> Option<async_nats::jetstream::stream::Info> {
    let mut s = js.get_stream(name).await.ok()?;
    s.info().await.ok().cloned()
}

/// 3 replicas configured, and a leader plus two peers that are current.
fn three_replicas(info: &async_nats::jetstream::stream::Info) -> bool {
    let cluster = info.cluster.as_ref();
    info.config.num_replicas == 3
        && cluster.is_some_and(|c| {
            c.leader.is_some() && c.replicas.len() == 2 && c.replicas.iter().all(|p| p.current)
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_replicas_3_on_a_3_node_cluster_and_the_events_flow() {
    let dir = tempfile::tempdir().unwrap();
    let (_servers, urls) = cluster(dir.path());
    let js = jetstream_ready(&urls[0]).await;

    let namespace = unique("repl");
    let bus = mahnwerk_bus::BusConfig::with_namespace(&namespace);
    // As an earlier version (or `mahnwerk deadletter`) created it: one replica.
    bus.ensure_streams(&js).await.unwrap();
    let before = stream_info(&js, &bus.stream).await.unwrap();
    assert!(before.config.num_replicas <= 1, "{:?}", before.config);

    let url = sqlite_db(&dir);
    let key = tenant_key(&url, "acme").await;
    let pool = mahnwerk_auth::connect_any(&url).await.unwrap();
    let port = free_port();
    let log = std::fs::File::create(dir.path().join("serve.log")).unwrap();
    let mut serve = Kill(
        Command::new(env!("CARGO_BIN_EXE_mahnwerk"))
            .arg("serve")
            .env("MAHNWERK_DATABASE_URL", &url)
            // Connected to the second server: the streams live on the cluster, not one node.
            .env("NATS_URL", &urls[1])
            .env("MAHNWERK_LISTEN", format!("127.0.0.1:{port}"))
            .env("MAHNWERK_METRICS_LISTEN", "off")
            .env("MAHNWERK_NAMESPACE", &namespace)
            .env("MAHNWERK_STREAM_REPLICAS", "3")
            .env("MAHNWERK_SERVICES", "ingest,relay,dunning,collection")
            .env("MAHNWERK_SIMULATED_CLOCK", "2026-03-01")
            .env("MAHNWERK_DOCUMENTS_DIR", dir.path().join("documents"))
            .env_remove("MAHNWERK_SMTP_HOST")
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .env_remove("MAHNWERK_PARTITIONS")
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let serve_log = || std::fs::read_to_string(dir.path().join("serve.log")).unwrap_or_default();

    // Every stream of the services on 3 replicas: the event stream moved, the others created so.
    let collection = format!(
        "{}_COLLECTION",
        namespace.to_ascii_uppercase().replace(['.', '-'], "_")
    );
    let streams = [
        bus.stream.clone(),
        bus.dead_letter_stream.clone(),
        bus.replay_stream.clone(),
        collection,
    ];
    let deadline = Instant::now() + LIMIT;
    for name in &streams {
        loop {
            if let Some(info) = stream_info(&js, name).await
                && three_replicas(&info)
            {
                break;
            }
            if let Ok(Some(status)) = serve.0.try_wait() {
                panic!("serve exited ({status}):\n{}", serve_log());
            }
            assert!(
                Instant::now() < deadline,
                "{name} never reached 3 current replicas: {:?}\n{}",
                stream_info(&js, name)
                    .await
                    .map(|i| (i.config.num_replicas, i.cluster)),
                serve_log()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    // Events flow: an invoice's two events reach the replicated stream and the dunning consumer.
    let channel = loop {
        if let Ok(c) = tonic::transport::Channel::from_shared(format!("http://127.0.0.1:{port}"))
            .unwrap()
            .connect()
            .await
        {
            break c;
        }
        assert!(Instant::now() < deadline, "serve did not listen");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    pb::invoice_service_client::InvoiceServiceClient::new(channel)
        .create_invoice(authed(
            &key,
            pb::CreateInvoiceRequest {
                tenant: String::new(),
                invoice: Some(invoice("RE-R3-1")),
            },
        ))
        .await
        .unwrap();
    let handled = |pool: sqlx::AnyPool| async move {
        use sqlx::Row as _;
        sqlx::query("SELECT COUNT(*) FROM bus_inbox WHERE consumer = 'dunning'")
            .fetch_one(&pool)
            .await
            .map(|r| r.get::<i64, _>(0))
            .unwrap_or(0)
    };
    loop {
        let info = stream_info(&js, &bus.stream).await.unwrap();
        let n = handled(pool.clone()).await;
        if info.state.messages == 2 && n == 2 {
            assert!(three_replicas(&info), "{:?}", info.cluster);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the events did not flow: {} on the stream, {n} handled by dunning\n{}",
            info.state.messages,
            serve_log()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // The replicas hold the messages: the stream's leader steps down, another server leads,
    // and the stream still holds both events.
    let leader = stream_info(&js, &bus.stream)
        .await
        .and_then(|i| i.cluster.and_then(|c| c.leader))
        .unwrap();
    let stepped: serde_json::Value = js
        .request(format!("STREAM.LEADER.STEPDOWN.{}", bus.stream), &())
        .await
        .unwrap();
    assert_eq!(stepped["success"], true, "{stepped}");
    loop {
        let info = stream_info(&js, &bus.stream).await;
        if let Some(i) = &info
            && i.cluster.as_ref().and_then(|c| c.leader.as_ref()) != Some(&leader)
            && i.cluster.as_ref().is_some_and(|c| c.leader.is_some())
            && i.state.messages == 2
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no new leader with the messages: {info:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
