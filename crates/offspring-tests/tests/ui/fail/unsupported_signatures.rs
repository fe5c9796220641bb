//! Functions that cannot be tasks are refused with a message that says why.

#[offspring::task]
fn borrowed(text: &str) -> usize {
    text.len()
}

#[offspring::task]
fn generic<T: Clone>(value: T) -> T {
    value
}

#[offspring::task]
unsafe fn dangerous() {}

#[offspring::task]
async fn borrowed_async(text: &str) -> usize {
    text.len()
}

#[offspring::task]
async fn generic_async<T: Clone>(value: T) -> T {
    value
}

fn main() {}
