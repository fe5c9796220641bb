//! A crowd of strangers on a parent's socket: `crowd <abstract-name> <count> [<hex-bytes>]`
//! opens `count` connections at once (raising its own descriptor limit to do so), writes the
//! given bytes on each (none: silent), then waits until the parent has closed them all, or 30 s.
//!
//! It prints two lines for the test that started it:
//!
//! - `connected n=<opened> failed=<refused> ms=<time to open them all>`
//! - `closed n=<closed by the parent> fast=<of those within 1 s> last_ms=<time of the last>
//!   open=<still open at the end>`
//!
//! A separate process, so that its descriptors count against its own limit, not the parent's.

#[cfg(target_os = "linux")]
fn main() {
    use std::io::{Read, Write};
    use std::os::fd::AsRawFd;
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::net::{SocketAddr, UnixStream};
    use std::time::{Duration, Instant};

    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(name), Some(count)) = (args.first(), args.get(1).and_then(|n| n.parse().ok())) else {
        eprintln!("usage: crowd <abstract-name> <count> [<hex-bytes>]");
        std::process::exit(2);
    };
    let count: usize = count;
    let payload: Vec<u8> = args.get(2).map_or_else(Vec::new, |hex| {
        (0..hex.len() / 2)
            .filter_map(|i| u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok())
            .collect()
    });
    raise_descriptor_limit();
    let Ok(addr) = SocketAddr::from_abstract_name(name) else {
        eprintln!("crowd: bad name {name:?}");
        std::process::exit(2);
    };

    let started = Instant::now();
    let mut streams = Vec::with_capacity(count);
    let mut failed = 0;
    for _ in 0..count {
        match UnixStream::connect_addr(&addr) {
            Ok(mut stream) => {
                // A parent that already closed it makes this fail: that is a rejection too,
                // seen below as the end of the stream.
                let _ = stream.write_all(&payload);
                streams.push(stream);
            }
            Err(_) => failed += 1,
        }
    }
    let opened = started.elapsed();
    println!(
        "connected n={} failed={failed} ms={}",
        streams.len(),
        opened.as_millis()
    );
    let _ = std::io::stdout().flush();

    // Watch every connection until the parent closes it.
    let deadline = Duration::from_secs(30);
    let mut closed_at: Vec<Option<Duration>> = vec![None; streams.len()];
    let mut buf = [0u8; 4096];
    while closed_at.iter().any(Option::is_none) && started.elapsed() < deadline {
        let mut fds: Vec<libc::pollfd> = streams
            .iter()
            .zip(&closed_at)
            .filter(|(_, closed)| closed.is_none())
            .map(|(stream, _)| libc::pollfd {
                fd: stream.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        // SAFETY: `fds` is a valid, exclusively borrowed array of `fds.len()` pollfd structs
        // for the duration of the call.
        let ready = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 100) };
        if ready <= 0 {
            continue;
        }
        for fd in fds.iter().filter(|fd| fd.revents != 0) {
            let Some(i) = streams.iter().position(|s| s.as_raw_fd() == fd.fd) else {
                continue;
            };
            let mut ended = false;
            // Whatever the parent says is drained; only the end of the stream counts.
            let _ = streams[i].set_nonblocking(true);
            loop {
                match streams[i].read(&mut buf) {
                    Ok(0) => {
                        ended = true;
                        break;
                    }
                    Ok(_) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(_) => {
                        ended = true;
                        break;
                    }
                }
            }
            if ended {
                closed_at[i] = Some(started.elapsed().saturating_sub(opened));
            }
        }
    }
    let closed: Vec<Duration> = closed_at.iter().flatten().copied().collect();
    let fast = closed
        .iter()
        .filter(|t| **t < Duration::from_secs(1))
        .count();
    let last = closed.iter().max().copied().unwrap_or_default();
    println!(
        "closed n={} fast={fast} last_ms={} open={}",
        closed.len(),
        last.as_millis(),
        streams.len() - closed.len()
    );
}

#[cfg(target_os = "linux")]
fn raise_descriptor_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit read and write the one struct we pass, which lives for
    // the duration of the calls.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn main() {
    eprintln!("crowd: Linux only (abstract socket names)");
    std::process::exit(2);
}
