//! What `#[offspring::task]` accepts and refuses at compile time, checked by compiling small
//! programs: `ui/pass` must compile and run (they start real workers), `ui/fail` must fail
//! with the messages in their `.stderr` files (`TRYBUILD=overwrite` rewrites those).
//!
//! Not under Wine: trybuild runs cargo, which the Windows half of the suite does not have.

#![cfg(not(windows))]

#[test]
fn task_attribute_ui() {
    let cases = trybuild::TestCases::new();
    cases.pass("tests/ui/pass/*.rs");
    cases.compile_fail("tests/ui/fail/*.rs");
}
