//! A different program that is an offspring program too. Started by a parent with a real
//! secret, it must be refused for its build identity.

#[offspring::task]
fn other_task(n: u32) -> u32 {
    n + 1
}

fn main() {
    offspring::init();
    println!("other_build ran as a parent: {}", other_task(1));
}
