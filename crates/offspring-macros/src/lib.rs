//! The two attributes of offspring: `#[task]`, which turns a free function
//! into a task type that a worker process can find by name and run, and
//! `#[main]`, which makes `fn main` hand control to offspring before anything
//! else happens, so that a re-executed binary becomes a worker.
//!
//! This crate holds no runtime code. Every path it emits is absolute and goes
//! through `::offspring` (`::offspring::Task`, `::offspring::init`,
//! `::offspring::__private`), so the expansions only compile in a crate that
//! depends on the `offspring` facade, which re-exports both attributes. Users
//! should depend on `offspring` and never on this crate directly.

use proc_macro::TokenStream;

mod main_attr;
mod support;
mod task;

/// Turns a free function into an offspring task.
///
/// The function becomes a unit struct of the same name that implements
/// `offspring::Task`, and the task is registered so that a worker process can
/// look it up by its name. The original body stays callable in-process as
/// `NAME::call(..)`.
///
/// ```ignore
/// /// Adds two numbers.
/// #[offspring::task]
/// pub fn add(a: u64, b: u64) -> u64 {
///     a + b
/// }
/// ```
///
/// expands to:
///
/// ```ignore
/// /// Adds two numbers.
/// #[allow(non_camel_case_types)]
/// #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
/// pub struct add;
///
/// impl add {
///     /// Runs the task's body in this process, without a worker.
///     pub fn call(a: u64, b: u64) -> u64 {
///         a + b
///     }
/// }
///
/// impl ::offspring::Task for add {
///     type Args = (u64, u64);
///     type Output = u64;
///     const NAME: &'static str = concat!(module_path!(), "::", stringify!(add));
///     fn run(args: Self::Args) -> Self::Output {
///         let (__offspring_arg0, __offspring_arg1) = args;
///         Self::call(__offspring_arg0, __offspring_arg1)
///     }
/// }
///
/// ::offspring::__private::inventory::submit! {
///     ::offspring::__private::entry::<add>()
/// }
/// ```
///
/// A task with exactly one parameter uses that parameter's type as `Args`
/// (not a one-element tuple), and a task with none uses `()`.
///
/// The default name follows the module path, so moving or renaming the
/// function changes it. To keep a name stable across such moves (for logs and
/// traces that name tasks), pin it:
///
/// ```ignore
/// #[offspring::task(name = "my_app::resize_v1")]
/// fn resize(image: Vec<u8>, width: u32) -> Vec<u8> {
///     // ...
/// }
/// ```
///
/// Doc comments move to the struct, `#[cfg(..)]` attributes apply to every
/// generated item, and the remaining attributes (such as `#[allow(..)]` or
/// `#[inline]`) stay on `call`.
///
/// The attribute rejects, with a compile error, functions that cannot be a
/// task: `async`, `unsafe` or `extern` functions, generic functions (including
/// `impl Trait` arguments), methods, variadic functions, and parameters or
/// return types that borrow, because arguments and results cross a process
/// boundary and must be owned.
#[proc_macro_attribute]
pub fn task(attr: TokenStream, item: TokenStream) -> TokenStream {
    task::expand_task(attr.into(), item.into()).into()
}

/// Lets offspring take over `fn main` before the program does anything else.
///
/// In the coordinator process `offspring::init()` returns and `main` goes on
/// as written; in a re-executed worker process it never returns and runs the
/// worker loop instead.
///
/// On a plain `main`, the attribute inserts the call as the first statement:
///
/// ```ignore
/// #[offspring::main]
/// fn main() -> std::io::Result<()> {
///     run()
/// }
/// ```
///
/// expands to:
///
/// ```ignore
/// fn main() -> std::io::Result<()> {
///     ::offspring::init();
///     run()
/// }
/// ```
///
/// On an `async fn main`, a runtime attribute must be written below
/// `#[offspring::main]`. The runtime must not start before `init()` runs, so
/// the user's function is renamed, keeps its attributes, and a new sync
/// `main` calls `init()` first:
///
/// ```ignore
/// #[offspring::main]
/// #[tokio::main]
/// async fn main() {
///     serve().await;
/// }
/// ```
///
/// expands to:
///
/// ```ignore
/// #[tokio::main]
/// async fn __offspring_main() {
///     serve().await;
/// }
///
/// fn main() {
///     ::offspring::init();
///     __offspring_main()
/// }
/// ```
///
/// When `#[tokio::main]` is written above `#[offspring::main]` instead, tokio
/// expands first and hands over a sync `main`, whose first statement is then
/// `init()`, which is also correct.
///
/// The attribute takes no arguments, only goes on `fn main`, and rejects an
/// `async fn main` that has no runtime attribute below it.
#[proc_macro_attribute]
pub fn main(attr: TokenStream, item: TokenStream) -> TokenStream {
    main_attr::expand_main(attr.into(), item.into()).into()
}
