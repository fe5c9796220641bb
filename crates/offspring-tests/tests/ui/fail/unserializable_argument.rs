//! A task's arguments must be serde types, checked where the task is used.

struct Opaque;

#[offspring::task]
fn takes_opaque(_value: Opaque) {}

fn main() {}
