//! Seed scenario `pipe`: the parent sends "你好" on one end of a pipe; the child, holding the
//! other end, receives it and prints it after the parent's own line.

use offspring::{Connection, Process, pipe};

/// The child: waits for the parent's message and prints it.
#[offspring::task]
fn f1(conn: Connection<String>) {
    match conn.recv() {
        Ok(message) => {
            println!("我是子进程");
            println!("来自主进程的消息: {message}");
        }
        Err(e) => eprintln!("the child could not receive: {e}"),
    }
}

#[offspring::main]
fn main() -> offspring::Result<()> {
    let (conn1, conn2) = pipe::<String>()?;
    let p1 = Process::spawn(f1, conn2)?;
    // The seed prints the parent's line before the child's; printing it before sending keeps
    // that order certain.
    println!("我是主进程");
    conn1.send(&"你好".to_owned())?;
    p1.join()?;
    Ok(())
}
