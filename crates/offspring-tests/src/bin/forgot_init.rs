//! A program that forgot `offspring::init()`. Started as a worker, it reaches process creation
//! without `init()` and must fail with the error that says so instead of starting copies of
//! itself.

#[offspring::task]
fn noop() {}

fn main() {
    match offspring::Process::spawn(noop, ()) {
        Ok(child) => {
            let _ = child.kill();
            eprintln!("forgot_init: a worker was started without init()");
            std::process::exit(4);
        }
        Err(e) => {
            eprintln!("forgot_init: {e}");
            std::process::exit(3);
        }
    }
}
