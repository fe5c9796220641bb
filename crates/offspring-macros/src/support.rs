//! Helpers shared by both attributes: parsing the annotated item, sorting its
//! attributes, and reporting errors as `compile_error!`.

use proc_macro2::TokenStream;
use quote::quote;
use syn::{Attribute, Item, ItemFn};

/// Parses the annotated item as a function, or fails with `message` spanned
/// at the item when it is some other kind of item.
pub(crate) fn parse_fn(item: TokenStream, message: &str) -> syn::Result<ItemFn> {
    match syn::parse2::<Item>(item)? {
        Item::Fn(func) => Ok(func),
        other => Err(syn::Error::new_spanned(other, message)),
    }
}

/// Folds every collected error into one, so the user sees all problems with
/// the item in a single build instead of fixing them one at a time.
pub(crate) fn combine(errors: Vec<syn::Error>) -> syn::Result<()> {
    let mut errors = errors.into_iter();
    let Some(mut first) = errors.next() else {
        return Ok(());
    };
    for error in errors {
        first.combine(error);
    }
    Err(first)
}

/// Turns an expansion result into tokens.
///
/// On failure the original item is emitted after the error, because dropping
/// it would bury the real error under follow-up ones (such as a missing `main`
/// or an unresolved name) that only exist because the item vanished.
pub(crate) fn or_compile_error(result: syn::Result<TokenStream>, item: TokenStream) -> TokenStream {
    match result {
        Ok(tokens) => tokens,
        Err(error) => {
            let error = error.to_compile_error();
            quote! {
                #error
                #item
            }
        }
    }
}

/// Whether `attr` is `#[cfg(..)]`, which must be repeated on every generated
/// item so that they all appear or disappear together.
pub(crate) fn is_cfg(attr: &Attribute) -> bool {
    attr.path().is_ident("cfg")
}
