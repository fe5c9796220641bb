//! A worker started by the real parent, with the right worker id and pid, that presents a
//! secret other than the one it was given: it flips every bit of `OFFSPRING_SECRET` before
//! `init()` reads it. The handshake must fail, and the parent's spawn with it.

#[offspring::task]
fn never_runs(n: u32) -> u32 {
    n
}

fn main() {
    if let Ok(secret) = std::env::var("OFFSPRING_SECRET") {
        let flipped: String = secret
            .chars()
            .map(|c| match c.to_digit(16) {
                Some(d) => char::from_digit(15 - d, 16).unwrap_or(c),
                None => c,
            })
            .collect();
        // SAFETY: nothing else runs yet: this is the first statement of `main`, before any
        // thread is started, so no one reads the environment while it changes.
        unsafe { std::env::set_var("OFFSPRING_SECRET", flipped) };
    }
    offspring::init();
    println!("wrong_secret ran as a parent: {}", never_runs(1));
}
