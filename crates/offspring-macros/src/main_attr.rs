//! The `#[main]` attribute: makes `::offspring::init()` the first thing
//! `fn main` does, before any async runtime starts, so that a re-executed
//! worker process never runs the user's program.

use proc_macro2::{Ident, Span, TokenStream};
use quote::quote;
use syn::{Attribute, ReturnType, Stmt, parse_quote};

use crate::support::{combine, is_cfg, or_compile_error, parse_fn};

const NOT_MAIN: &str = "`#[offspring::main]` goes on `fn main`";
const NO_ARGUMENTS: &str =
    "`#[offspring::main]` takes no arguments: write it as a bare `#[offspring::main]`";
const NEEDS_RUNTIME: &str = "`#[offspring::main]` on an async main needs a runtime attribute such as `#[tokio::main]` below it";

/// The name the user's `async fn main` is given once a sync `main` takes its
/// place.
const RENAMED_MAIN: &str = "__offspring_main";

/// Expands `#[main]` on `item`.
pub(crate) fn expand_main(attr: TokenStream, item: TokenStream) -> TokenStream {
    or_compile_error(try_expand_main(attr, item.clone()), item)
}

fn try_expand_main(attr: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let mut func = parse_fn(item, NOT_MAIN)?;
    let mut errors = Vec::new();
    if !attr.is_empty() {
        errors.push(syn::Error::new_spanned(&attr, NO_ARGUMENTS));
    }
    if func.sig.ident != "main" {
        errors.push(syn::Error::new_spanned(&func.sig.ident, NOT_MAIN));
    }
    let is_async = func.sig.asyncness.is_some();
    if let Some(token) = &func.sig.asyncness
        && !func.attrs.iter().any(may_start_runtime)
    {
        errors.push(syn::Error::new_spanned(token, NEEDS_RUNTIME));
    }
    combine(errors)?;

    if !is_async {
        // A sync `main` (including one a runtime attribute written above us
        // already expanded) only needs `init()` before its first statement.
        let init: Stmt = parse_quote!(::offspring::init(););
        func.block.stmts.insert(0, init);
        return Ok(quote!(#func));
    }

    // The runtime attribute below us would start the runtime at the top of
    // `main`, before `init()` could run. Renaming the user's function keeps
    // that attribute working on it, and a new sync `main` calls `init()` first
    // and then enters the runtime by calling the renamed function.
    let vis = func.vis.clone();
    let main_ident = func.sig.ident.clone();
    let output = match &func.sig.output {
        ReturnType::Default => quote!(),
        ReturnType::Type(arrow, ty) => quote!(#arrow #ty),
    };
    let cfgs: Vec<Attribute> = func.attrs.iter().filter(|a| is_cfg(a)).cloned().collect();
    let renamed = Ident::new(RENAMED_MAIN, Span::call_site());
    func.sig.ident = renamed.clone();

    Ok(quote! {
        #func

        #(#cfgs)*
        #vis fn #main_ident() #output {
            ::offspring::init();
            #renamed()
        }
    })
}

/// Whether `attr` could be a runtime attribute such as `#[tokio::main]`.
///
/// Built-in attributes that only document the function, set lint levels or
/// tune code generation can never turn an `async fn` into something `main`
/// can call, so they do not count; anything else is assumed to be a runtime.
fn may_start_runtime(attr: &Attribute) -> bool {
    const INERT: &[&str] = &[
        "doc",
        "allow",
        "warn",
        "deny",
        "forbid",
        "expect",
        "cfg",
        "deprecated",
        "must_use",
        "inline",
        "cold",
        "track_caller",
    ];
    let path = attr.path();
    let Some(first) = path.segments.first() else {
        return true;
    };
    let is_tool = path.segments.len() > 1 && (first.ident == "rustfmt" || first.ident == "clippy");
    let is_builtin = path.segments.len() == 1 && INERT.iter().any(|name| first.ident == name);
    !(is_tool || is_builtin)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Renders tokens without whitespace, so that assertions do not depend on
    /// how `proc_macro2` spaces its output.
    fn compact(tokens: impl ToString) -> String {
        tokens
            .to_string()
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect()
    }

    fn expand(attr: TokenStream, item: TokenStream) -> String {
        compact(expand_main(attr, item))
    }

    fn assert_rejects(attr: TokenStream, item: TokenStream, message: &str) {
        let out = expand(attr, item);
        assert!(out.contains("compile_error"), "no compile_error in {out}");
        assert!(
            out.contains(&compact(message)),
            "expected {message:?} in {out}"
        );
    }

    #[test]
    fn sync_main_calls_init_first() -> syn::Result<()> {
        let out = expand_main(
            quote!(),
            quote! {
                #[allow(unused)]
                fn main() -> Result<(), String> { let x = 1; Ok(()) }
            },
        );
        syn::parse2::<syn::File>(out.clone())?;
        assert_eq!(
            compact(out),
            compact(quote! {
                #[allow(unused)]
                fn main() -> Result<(), String> { ::offspring::init(); let x = 1; Ok(()) }
            })
        );
        Ok(())
    }

    #[test]
    fn async_main_is_renamed_behind_a_sync_main() -> syn::Result<()> {
        let out = expand_main(
            quote!(),
            quote! {
                /// Serves forever.
                #[tokio::main]
                async fn main() -> std::io::Result<()> { serve().await }
            },
        );
        syn::parse2::<syn::File>(out.clone())?;
        assert_eq!(
            compact(out),
            compact(quote! {
                #[doc = r" Serves forever."]
                #[tokio::main]
                async fn __offspring_main() -> std::io::Result<()> { serve().await }

                fn main() -> std::io::Result<()> {
                    ::offspring::init();
                    __offspring_main()
                }
            })
        );
        Ok(())
    }

    #[test]
    fn async_main_without_return_type_gets_none() {
        let out = expand(
            quote!(),
            quote!(
                #[tokio::main]
                async fn main() {}
            ),
        );
        assert!(out.contains(&compact(quote! {
            fn main() { ::offspring::init(); __offspring_main() }
        })));
    }

    #[test]
    fn rejects_async_main_without_runtime() {
        assert_rejects(
            quote!(),
            quote!(
                async fn main() {}
            ),
            NEEDS_RUNTIME,
        );
        assert_rejects(
            quote!(),
            quote!(
                #[allow(unused)]
                async fn main() {}
            ),
            NEEDS_RUNTIME,
        );
    }

    #[test]
    fn rejects_other_functions() {
        assert_rejects(
            quote!(),
            quote!(
                fn start() {}
            ),
            NOT_MAIN,
        );
        assert_rejects(
            quote!(),
            quote!(
                struct S;
            ),
            NOT_MAIN,
        );
    }

    #[test]
    fn rejects_arguments() {
        assert_rejects(
            quote!(flavor = "x"),
            quote!(
                fn main() {}
            ),
            NO_ARGUMENTS,
        );
    }
}
