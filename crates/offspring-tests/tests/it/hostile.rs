//! Strangers on the parent's socket: dropped within a bounded time while real work goes on.

#[cfg(target_os = "linux")]
use std::io::{Read, Write};
#[cfg(target_os = "linux")]
use std::os::linux::net::SocketAddrExt;
#[cfg(target_os = "linux")]
use std::os::unix::net::{SocketAddr, UnixStream};
#[cfg(target_os = "linux")]
use std::time::{Duration, Instant};

#[cfg(target_os = "linux")]
use offspring::Process;
use offspring_transport::{
    BuildIdentity, Expected, HandshakeError, Listener, Secret, accept_handshake, connect,
    connect_handshake,
};
use offspring_wire::WorkerConfig;
#[cfg(target_os = "linux")]
use offspring_wire::{ClientHello, PROTOCOL_VERSION, encode};

#[cfg(target_os = "linux")]
#[offspring::task]
fn triple(n: u64) -> u64 {
    n * 3
}

#[cfg(target_os = "linux")]
fn dial(name: &str) -> UnixStream {
    let addr = SocketAddr::from_abstract_name(name).expect("abstract address");
    let stream = UnixStream::connect_addr(&addr).expect("connect to the parent's socket");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("set a read timeout");
    stream
}

#[cfg(target_os = "linux")]
/// Reads until the parent closes the connection; the time it took.
fn closed_after(mut stream: UnixStream, opened: Instant) -> Duration {
    let mut buf = [0u8; 256];
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return opened.elapsed(),
            Ok(_) => {}
        }
    }
}

#[cfg(target_os = "linux")]
#[test]
fn strangers_are_dropped_while_a_real_task_completes() -> offspring::Result<()> {
    // Make sure the coordinator listens, then find its socket as any local process could.
    assert_eq!(Process::spawn(triple, 1)?.join()?, 3);
    let names = offspring_tests::abstract_sockets(&format!("offspring-{}-", std::process::id()));
    assert_eq!(names.len(), 1, "expected one listener, found {names:?}");
    let name = &names[0];

    let opened = Instant::now();
    let silent = dial(name);
    let mut garbage = dial(name);
    garbage
        .write_all(&[16, 0, 0, 0])
        .and_then(|()| garbage.write_all(&[0xA5; 16]))
        .expect("send garbage");
    let mut huge = dial(name);
    huge.write_all(&u32::MAX.to_le_bytes())
        .expect("send a 4 GiB prefix");
    let mut unknown = dial(name);
    let hello = ClientHello {
        protocol: PROTOCOL_VERSION,
        worker_id: u64::MAX,
        pid: std::process::id(),
        nonce: [7; 32],
        build_id: [0; 32],
        table_id: [0; 32],
    };
    unknown
        .write_all(&encode(&hello).expect("encode a hello"))
        .expect("send a hello for a worker nobody expects");

    // Real work goes on while the strangers are connected.
    let started = Instant::now();
    assert_eq!(Process::spawn(triple, 14)?.join()?, 42);
    println!(
        "real task with 4 strangers connected: {:?}",
        started.elapsed()
    );

    let waits: Vec<_> = [
        ("silent", silent),
        ("garbage", garbage),
        ("4 GiB prefix", huge),
        ("unknown worker", unknown),
    ]
    .into_iter()
    .map(|(what, stream)| {
        (
            what,
            std::thread::spawn(move || closed_after(stream, opened)),
        )
    })
    .collect();
    for (what, wait) in waits {
        let took = wait.join().expect("reader thread");
        println!("{what}: dropped after {took:?}");
        assert!(took < Duration::from_secs(20), "{what} kept for {took:?}");
        if what != "silent" {
            // Bad input is refused as soon as it is read, not when the handshake times out.
            assert!(took < Duration::from_secs(4), "{what} kept for {took:?}");
        }
    }
    Ok(())
}

#[cfg(target_os = "linux")]
#[test]
fn a_child_presenting_a_wrong_secret_is_refused_and_its_spawn_fails() {
    // The right worker id and pid (the parent started it), the wrong secret: the parent's
    // proof does not verify under it, so the child gives up, and the spawn reports its exit.
    let started = Instant::now();
    let result = offspring::__private::spawn_with_program(
        env!("CARGO_BIN_EXE_wrong_secret").into(),
        triple,
        1,
    );
    let took = started.elapsed();
    match result {
        Err(offspring::Error::Spawn { reason }) => {
            println!("refused after {took:?}: {reason}");
            assert!(reason.contains("exited before connecting"), "{reason}");
            assert!(reason.contains("exit status: 72"), "{reason}");
            assert!(
                reason.contains("could not connect or authenticate"),
                "{reason}"
            );
        }
        other => panic!("expected a spawn error, got {other:?}"),
    }
    assert!(took < Duration::from_secs(20), "took {took:?}");
}

#[test]
fn a_wrong_secret_is_refused_by_both_sides() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let identity = BuildIdentity {
            build_id: [1; 32],
            table_id: [2; 32],
        };
        let listener = Listener::bind().expect("bind");
        let endpoint = listener.endpoint().clone();
        let right = Secret::generate().expect("secret");
        let wrong = Secret::generate().expect("secret");
        let server = tokio::spawn(async move {
            let conn = listener.accept().await.expect("accept");
            let lookup = |_| {
                Some(Expected {
                    secret: right,
                    pid: None,
                    segment: None,
                    time_calls: false,
                    async_concurrency: 1,
                    task_timeout_ms: None,
                })
            };
            let config = WorkerConfig {
                log_filter: "info".into(),
                segment: None,
                time_calls: false,
                async_concurrency: 1,
                task_timeout_ms: None,
            };
            accept_handshake(conn, lookup, &identity, config)
                .await
                .err()
        });
        let mut conn = connect(&endpoint).await.expect("connect");
        let client = connect_handshake(&mut conn, 1, &wrong, &identity).await;
        // The parent proves itself first, so a worker with the wrong secret is the one
        // that notices: the parent's proof does not verify under its secret.
        assert!(
            matches!(client, Err(HandshakeError::BadProof)),
            "{client:?}"
        );
        drop(conn);
        let server = server.await.expect("server task");
        assert!(server.is_some(), "the parent accepted a wrong secret");
    });
}

/// Strangers on every platform (a Windows named pipe, a Linux abstract socket, a macOS socket
/// file), dialled the way a worker would: each is dropped within a bounded time, and a real
/// task completes meanwhile.
#[test]
fn strangers_are_dropped_on_every_platform() -> offspring::Result<()> {
    use offspring_wire::{ClientHello, PROTOCOL_VERSION, encode};

    #[offspring::task]
    fn quadruple(n: u64) -> u64 {
        n * 4
    }

    let endpoint = offspring::__private::coordinator_endpoint()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let hello = encode(&ClientHello {
        protocol: PROTOCOL_VERSION,
        worker_id: u64::MAX,
        pid: std::process::id(),
        nonce: [0; offspring_wire::NONCE_LEN],
        build_id: [0; offspring_wire::NONCE_LEN],
        table_id: [0; offspring_wire::NONCE_LEN],
    })
    .expect("encode a hello");
    let mut garbage = 64u32.to_le_bytes().to_vec();
    garbage.extend([0xA5; 64]);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("silence", Vec::new()),
        ("garbage behind a valid length", garbage),
        ("a 4 GiB length prefix", u32::MAX.to_le_bytes().to_vec()),
        ("a hello from an unknown worker", hello),
    ];
    runtime.block_on(async {
        let mut watchers = Vec::new();
        for (what, bytes) in cases {
            let mut conn = offspring_transport::connect(&endpoint)
                .await
                .expect("connect as a stranger");
            let opened = std::time::Instant::now();
            if !bytes.is_empty() {
                // The peer may close before everything is written; that is a drop too.
                let _ = conn.writer.write_frame(&bytes).await;
            }
            // Each stranger waits for its verdict on its own, so each drop is timed alone.
            watchers.push(tokio::spawn(async move {
                let verdict = tokio::time::timeout(
                    std::time::Duration::from_secs(30),
                    conn.reader.read_frame(),
                )
                .await;
                (
                    what,
                    verdict.map(|read| read.ok().flatten()),
                    opened.elapsed(),
                )
            }));
        }
        // A real task completes while the strangers wait for their verdict.
        let started = std::time::Instant::now();
        let real = tokio::task::spawn_blocking(|| {
            offspring::Process::spawn(quadruple, 5).and_then(|child| child.join())
        })
        .await
        .expect("the real task's thread");
        assert_eq!(real.ok(), Some(20));
        println!(
            "a real task completed in {:?} among strangers",
            started.elapsed()
        );
        for watcher in watchers {
            let (what, verdict, took) = watcher.await.expect("a stranger's watcher");
            match verdict {
                Ok(None) => {}
                Ok(Some(frame)) => panic!("{what}: the parent answered with {frame:?}"),
                Err(_) => panic!("{what}: still connected after 30 s"),
            }
            println!("{what}: dropped after {took:?}");
            // The handshake deadline is 5 s; anything else is dropped at once.
            assert!(
                took < std::time::Duration::from_secs(20),
                "{what} kept for {took:?}"
            );
        }
    });
    Ok(())
}
