//! The two attributes of offspring: `#[task]`, which registers a free
//! function as a task that a worker process can find by name and run, and
//! `#[main]`, which makes `fn main` hand control to offspring before anything
//! else happens, so that a re-executed binary becomes a worker.
//!
//! This crate holds no runtime code. Every path it emits is absolute and goes
//! through `::offspring` (`::offspring::init`, `::offspring::__private`), so the expansions only compile in a crate that
//! depends on the `offspring` facade, which re-exports both attributes. Users
//! should depend on `offspring` and never on this crate directly.

#![forbid(unsafe_code)]

use proc_macro::TokenStream;

mod main_attr;
mod support;
mod task;

/// Turns a free function into an offspring task.
///
/// The function stays a plain function: `square(7)` runs the body in this
/// process, a local or a parameter may be named `square` anywhere in the
/// module, and `pool.apply(square, 7)` hands it to a worker. The attribute
/// registers the function in the task table under its stable name, and adds a
/// hidden companion in the type namespace so that `square::call(7)` also runs
/// the body.
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
/// pub fn add(a: u64, b: u64) -> u64 {
///     a + b
/// }
///
/// #[doc(hidden)]
/// #[allow(non_camel_case_types, dead_code)]
/// #[derive(Clone, Copy, Debug)]
/// pub struct add {}
///
/// impl add {
///     /// Runs the task's body in this process, without a worker.
///     pub fn call(__offspring_arg0: u64, __offspring_arg1: u64) -> u64 {
///         add(__offspring_arg0, __offspring_arg1)
///     }
/// }
///
/// ::offspring::__private::inventory::submit! {
///     ::offspring::__private::TaskEntry::new(
///         concat!(module_path!(), "::", stringify!(add)),
///         || ::offspring::__private::signature_of(&add),
///         |args| ::offspring::__private::run_erased(add, args),
///         || ::offspring::__private::type_id_of(&add),
///     )
/// }
/// ```
///
/// `offspring::Task` is implemented for every function of up to 12 owned
/// serde parameters: its `Args` is the single parameter's type (not a
/// one-element tuple), a tuple of several, or `()`, and its `Output` the
/// return type, so argument and result types are checked at compile time.
///
/// # Why a function, and how its task is found
///
/// An attribute that turns `square` into a unit struct (as this one once did)
/// takes the name in both namespaces: a unit struct is also a constant, and a
/// constant in scope turns every `let square = ..` and every parameter named
/// `square` in the module into a pattern that fails to compile. Only function
/// items may be shadowed by a binding, so the name must stay a function item.
/// The designs weighed:
///
/// - *A companion type of the same name.* Route and command attributes of
///   several web and GUI frameworks generate a struct or module next to the
///   function; a braced struct (`struct square {}`) or a module lives in the
///   type namespace only, so it coexists with the function and shadowing keeps
///   working. It cannot carry the task by itself, though: `pool.apply(square,
///   ..)` names the value, which is the function item.
/// - *Looking the task up by code address.* The parent could map a function
///   pointer to its name. The linker may fold identical bodies into one
///   address (`fn a(x: u32) -> u32 { x }` and `fn b(x: u64) -> u64 { x }`
///   compile to the same code), so two tasks could be confused. Rejected.
/// - *A trait implemented for the function item's type.* The type of a
///   function item cannot be named in Rust, so no attribute can write `impl
///   Task for <type of square>`. What can be written is a blanket impl over
///   `F: Fn(A, B) -> R`, with the signature as a marker parameter (`Task<fn(A,
///   B) -> R>`) so that the arities do not overlap, as handler traits of web
///   and ECS frameworks do.
///
/// offspring takes the last, plus the registration: the table entry records
/// the `TypeId` of the function item's type (obtained from a value of it,
/// `type_id_of(&square)`), and the parent finds a task's stable name by the
/// `TypeId` of the value passed to a method. Every function item has a type of
/// its own whatever code it compiles to, so identical bodies are never
/// confused, and no code address crosses a process boundary: the worker
/// receives the name. The price is point 3 of the design: a plain function
/// without the attribute also satisfies the blanket impl, so passing one is not
/// a compile error. It fails at the call, before anything is sent, with
/// `Error::NotATask` naming the function and saying to add the attribute.
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
/// Every attribute stays on the function; `#[cfg(..)]` attributes also apply
/// to every generated item.
///
/// An `async fn` is a task like any other, with the same methods and results:
/// the worker runs it on a tokio current-thread runtime of its own, started on
/// first use and reused (a sync task never runs inside it).
///
/// The attribute rejects, with a compile error, functions that cannot be a
/// task: `unsafe` or `extern` functions, generic functions (including
/// `impl Trait` arguments), methods, variadic functions, functions of more
/// than 12 parameters, and parameters or return types that borrow, because
/// arguments and results cross a process boundary and must be owned.
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
