//! A frame header announcing a huge body is refused before anything of that size is
//! allocated. Its own test binary, because it installs a counting global allocator.

// Helpers of tests expect too: a failed expectation there is the test failing.
#![allow(clippy::expect_used)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use offspring_transport::{BuildIdentity, HandshakeError, Listener, accept_handshake, connect};
use offspring_wire::{MAX_FRAME, WireError, WorkerConfig};

/// The system allocator, remembering the largest single allocation since the last reset.
struct Counting;

static LARGEST: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every method forwards to `System` with the caller's arguments unchanged, so the
// `GlobalAlloc` contract holds exactly as it does for `System`.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        // SAFETY: forwarded unchanged; the caller upholds `alloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged; `ptr` came from `System` through `alloc`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

async fn refused_after(header: u32, authenticated: bool) -> (WireError, usize) {
    let listener = Listener::bind().expect("bind");
    let mut client = connect(listener.endpoint()).await.expect("connect");
    let mut server = listener.accept().await.expect("accept");
    if authenticated {
        server.authenticated();
    }
    LARGEST.store(0, Ordering::SeqCst);
    client
        .writer
        .write_frame(&header.to_le_bytes())
        .await
        .expect("send the header");
    let error = if authenticated {
        server
            .reader
            .read_frame()
            .await
            .expect_err("must be refused")
    } else {
        let identity = BuildIdentity {
            build_id: [0; 32],
            table_id: [0; 32],
        };
        let config = WorkerConfig {
            log_filter: String::new(),
            segment: None,
            time_calls: false,
            async_concurrency: 1,
            task_timeout_ms: None,
        };
        match accept_handshake(server, |_| None, &identity, config).await {
            Err(HandshakeError::Wire(e)) => e,
            other => panic!("expected a wire error, got {other:?}"),
        }
    };
    (error, LARGEST.load(Ordering::SeqCst))
}

#[test]
fn oversized_length_prefixes_are_refused_without_allocating_them() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        for (header, authenticated) in [(u32::MAX, false), (64 * 1024, false), (MAX_FRAME + 1, true), (u32::MAX, true)] {
            let (error, largest) = refused_after(header, authenticated).await;
            println!("header {header} (authenticated: {authenticated}): {error}; largest allocation {largest} bytes");
            assert!(matches!(error, WireError::TooLarge { .. }), "{error}");
            // The connection's read buffer (64 KiB) is the most a refused frame may cost.
            assert!(largest <= 64 * 1024, "allocated {largest} bytes for a refused frame");
        }
    });
}
