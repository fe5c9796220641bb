//! The `#[task]` attribute: checks that a free function can run in another
//! process, then turns it into a unit struct that implements
//! `::offspring::Task` and registers it so that workers can find it by name.

use proc_macro2::{Ident, TokenStream};
use quote::{format_ident, quote};
use syn::{
    Expr, ExprLit, FnArg, GenericArgument, Lifetime, Lit, LitStr, PathArguments, ReturnType,
    Signature, Token, Type, TypeParamBound, parse::Parser,
};

use crate::support::{combine, is_cfg, or_compile_error, parse_fn};

const NOT_A_FUNCTION: &str = "`#[offspring::task]` goes on a free function";
const NOT_GENERIC: &str = "offspring tasks cannot be generic: a worker finds a task by its name, so each task needs one concrete signature";
const NOT_A_METHOD: &str = "`#[offspring::task]` goes on a free function, not a method";
const NOT_UNSAFE: &str = "offspring tasks cannot be `unsafe`: a worker has no way to uphold a caller's safety contract, so make the task safe and use `unsafe` blocks inside it";
const NO_ABI: &str = "offspring tasks cannot declare an ABI: remove the `extern` qualifier, since tasks are only called from Rust";
const NOT_VARIADIC: &str =
    "offspring tasks cannot be variadic: give the task a fixed list of typed parameters";
const OWNED_ARGS: &str =
    "task arguments cross a process boundary, so they must be owned (`String`, not `&str`)";
const OWNED_OUTPUT: &str =
    "a task's result crosses a process boundary, so it must be owned (`String`, not `&str`)";
const TOO_MANY_ARGS: &str =
    "offspring tasks take at most 12 parameters: group the others in a struct or a tuple";
const NO_IMPL_OUTPUT: &str = "offspring tasks cannot return `impl Trait`: the result crosses a process boundary, so name its concrete type";

/// The most parameters a task may have: `::offspring::Task` is implemented for functions of
/// up to this many.
const MAX_ARGS: usize = 12;

/// Expands `#[task]` or `#[task(name = "..")]` on `item`.
pub(crate) fn expand_task(attr: TokenStream, item: TokenStream) -> TokenStream {
    or_compile_error(try_expand_task(attr, item.clone()), item)
}

fn try_expand_task(attr: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let name = parse_task_args(attr);
    let func = parse_fn(item, NOT_A_FUNCTION)?;

    let mut errors = Vec::new();
    let name = name.unwrap_or_else(|error| {
        errors.push(error);
        None
    });
    check_signature(&func.sig, &mut errors);
    combine(errors)?;

    let ident = &func.sig.ident;
    let vis = &func.vis;

    // `cfg` must gate every generated item; every attribute, docs included, stays on the
    // function, which stays what the user wrote.
    let cfgs: Vec<_> = func.attrs.iter().filter(|attr| is_cfg(attr)).collect();

    let arg_types: Vec<&Type> = func
        .sig
        .inputs
        .iter()
        .filter_map(|arg| match arg {
            FnArg::Typed(typed) => Some(&*typed.ty),
            // Receivers were rejected by `check_signature`.
            FnArg::Receiver(_) => None,
        })
        .collect();
    let output = &func.sig.output;
    let arg_names: Vec<Ident> = (0..arg_types.len())
        .map(|index| format_ident!("__offspring_arg{}", index))
        .collect();
    let name_expr = match name {
        Some(name) => quote!(#name),
        None => quote! {
            ::core::concat!(::core::module_path!(), "::", ::core::stringify!(#ident))
        },
    };
    // An `async fn` runs in the worker on a runtime of the worker's own, and its companion's
    // `call` is async too; its table signature says `async`, so a build that changed a task
    // from one to the other is another build.
    let asyncness = &func.sig.asyncness;
    let (await_call, signature, constructor, start) = if asyncness.is_some() {
        (
            quote!(.await),
            quote!(|| ::std::format!("async {}", ::offspring::__private::signature_of(&#ident))),
            quote!(new_async),
            quote!(|args| ::offspring::__private::start_erased(#ident, args),),
        )
    } else {
        (
            quote!(),
            quote!(|| ::offspring::__private::signature_of(&#ident)),
            quote!(new),
            quote!(),
        )
    };
    let companion_doc = format!(
        " The companion of task [`{ident}()`]: `{ident}::call(..)` runs its body in this \
         process, like `{ident}(..)`."
    );

    // The function stays a function item, in the value namespace, so locals and parameters
    // may shadow its name. The companion is a braced struct, which lives only in the type
    // namespace: it holds `call` without taking the name from anything in the value
    // namespace. The registration names the function item's type, by which the parent finds
    // the task's name (see `::offspring::Task`).
    Ok(quote! {
        #func

        #(#cfgs)*
        #[doc = #companion_doc]
        #[doc(hidden)]
        #[allow(non_camel_case_types, dead_code)]
        #[derive(Clone, Copy, Debug)]
        #vis struct #ident {}

        #(#cfgs)*
        #[allow(dead_code)]
        impl #ident {
            /// Runs the task's body in this process, without a worker.
            #[inline]
            #vis #asyncness fn call(#(#arg_names: #arg_types),*) #output {
                #ident(#(#arg_names),*) #await_call
            }
        }

        #(#cfgs)*
        ::offspring::__private::inventory::submit! {
            ::offspring::__private::TaskEntry::#constructor(
                #name_expr,
                #signature,
                |args| ::offspring::__private::run_erased(#ident, args),
                #start
                || ::offspring::__private::type_id_of(&#ident),
            )
        }
    })
}

/// Parses the attribute's arguments: nothing, or `name = "a::stable::name"`.
fn parse_task_args(attr: TokenStream) -> syn::Result<Option<LitStr>> {
    let mut name: Option<LitStr> = None;
    let parser = syn::meta::parser(|meta| {
        if !meta.path.is_ident("name") {
            return Err(meta.error(
                "unknown argument to `#[offspring::task]`: the only one it accepts is `name = \"...\"`",
            ));
        }
        if name.is_some() {
            return Err(meta.error("`name` is given twice: keep a single `name = \"...\"`"));
        }
        if !meta.input.peek(Token![=]) {
            return Err(meta.error("`name` needs a value: write `name = \"my_crate::my_task\"`"));
        }
        let value: Expr = meta.value()?.parse()?;
        match value {
            Expr::Lit(ExprLit {
                lit: Lit::Str(lit), ..
            }) => {
                if lit.value().trim().is_empty() {
                    return Err(syn::Error::new(
                        lit.span(),
                        "a task's `name` cannot be empty: workers find the task by it",
                    ));
                }
                name = Some(lit);
                Ok(())
            }
            other => Err(syn::Error::new_spanned(
                other,
                "`name` must be a string literal, such as `name = \"my_crate::my_task\"`",
            )),
        }
    });
    parser.parse2(attr)?;
    Ok(name)
}

/// Pushes one error for every part of the signature that cannot cross a
/// process boundary or cannot be named by a single task type.
fn check_signature(sig: &Signature, errors: &mut Vec<syn::Error>) {
    if let Some(token) = &sig.unsafety {
        errors.push(syn::Error::new_spanned(token, NOT_UNSAFE));
    }
    if let Some(abi) = &sig.abi {
        errors.push(syn::Error::new_spanned(abi, NO_ABI));
    }
    if !sig.generics.params.is_empty() {
        errors.push(syn::Error::new_spanned(&sig.generics, NOT_GENERIC));
    }
    if let Some(clause) = &sig.generics.where_clause {
        errors.push(syn::Error::new_spanned(clause, NOT_GENERIC));
    }
    if let Some(extra) = sig.inputs.iter().nth(MAX_ARGS) {
        errors.push(syn::Error::new_spanned(extra, TOO_MANY_ARGS));
    }
    for arg in &sig.inputs {
        match arg {
            FnArg::Receiver(receiver) => {
                errors.push(syn::Error::new_spanned(receiver, NOT_A_METHOD));
            }
            FnArg::Typed(typed) => {
                let rules = TypeRules {
                    borrowed: OWNED_ARGS,
                    impl_trait: NOT_GENERIC,
                };
                rules.check(&typed.ty, false, errors);
            }
        }
    }
    if let Some(variadic) = &sig.variadic {
        errors.push(syn::Error::new_spanned(variadic, NOT_VARIADIC));
    }
    if let ReturnType::Type(_, ty) = &sig.output {
        let rules = TypeRules {
            borrowed: OWNED_OUTPUT,
            impl_trait: NO_IMPL_OUTPUT,
        };
        rules.check(ty, false, errors);
    }
}

/// The messages used while walking a parameter or return type, which differ
/// only in whether they talk about arguments or results.
struct TypeRules {
    borrowed: &'static str,
    impl_trait: &'static str,
}

impl TypeRules {
    /// Walks `ty` looking for borrows and `impl Trait`.
    ///
    /// `relaxed` is set inside function signatures (`fn(&str)`, `dyn Fn(&str)`)
    /// and `for<'a>` bounds, where a reference or lifetime describes a callee
    /// rather than data the value borrows, so it says nothing about ownership.
    fn check(&self, ty: &Type, relaxed: bool, errors: &mut Vec<syn::Error>) {
        match ty {
            Type::Reference(reference) => {
                if relaxed {
                    self.check(&reference.elem, relaxed, errors);
                } else {
                    errors.push(syn::Error::new_spanned(reference, self.borrowed));
                }
            }
            Type::Ptr(pointer) => {
                if relaxed {
                    self.check(&pointer.elem, relaxed, errors);
                } else {
                    errors.push(syn::Error::new_spanned(pointer, self.borrowed));
                }
            }
            Type::ImplTrait(impl_trait) => {
                errors.push(syn::Error::new_spanned(impl_trait, self.impl_trait));
            }
            Type::Array(array) => self.check(&array.elem, relaxed, errors),
            Type::Slice(slice) => self.check(&slice.elem, relaxed, errors),
            Type::Group(group) => self.check(&group.elem, relaxed, errors),
            Type::Paren(paren) => self.check(&paren.elem, relaxed, errors),
            Type::Tuple(tuple) => {
                for elem in &tuple.elems {
                    self.check(elem, relaxed, errors);
                }
            }
            Type::Path(path) => {
                if let Some(qself) = &path.qself {
                    self.check(&qself.ty, relaxed, errors);
                }
                self.check_path(&path.path, relaxed, errors);
            }
            Type::BareFn(bare_fn) => {
                for input in &bare_fn.inputs {
                    self.check(&input.ty, true, errors);
                }
                if let ReturnType::Type(_, output) = &bare_fn.output {
                    self.check(output, true, errors);
                }
            }
            Type::TraitObject(object) => {
                for bound in &object.bounds {
                    self.check_bound(bound, relaxed, errors);
                }
            }
            // Macros are opaque here, and the remaining kinds (`!`, `_`, raw
            // tokens) contain no types to look into.
            _ => {}
        }
    }

    fn check_path(&self, path: &syn::Path, relaxed: bool, errors: &mut Vec<syn::Error>) {
        for segment in &path.segments {
            match &segment.arguments {
                PathArguments::None => {}
                PathArguments::AngleBracketed(args) => {
                    for arg in &args.args {
                        self.check_generic_arg(arg, relaxed, errors);
                    }
                }
                PathArguments::Parenthesized(args) => {
                    for input in &args.inputs {
                        self.check(input, true, errors);
                    }
                    if let ReturnType::Type(_, output) = &args.output {
                        self.check(output, true, errors);
                    }
                }
            }
        }
    }

    fn check_generic_arg(
        &self,
        arg: &GenericArgument,
        relaxed: bool,
        errors: &mut Vec<syn::Error>,
    ) {
        match arg {
            GenericArgument::Type(ty) => self.check(ty, relaxed, errors),
            GenericArgument::Lifetime(lifetime) => self.check_lifetime(lifetime, relaxed, errors),
            GenericArgument::AssocType(assoc) => self.check(&assoc.ty, relaxed, errors),
            GenericArgument::Constraint(constraint) => {
                for bound in &constraint.bounds {
                    self.check_bound(bound, relaxed, errors);
                }
            }
            // Const arguments are values, not types, so they cannot borrow.
            _ => {}
        }
    }

    fn check_bound(&self, bound: &TypeParamBound, relaxed: bool, errors: &mut Vec<syn::Error>) {
        match bound {
            TypeParamBound::Trait(trait_bound) => {
                let relaxed = relaxed || trait_bound.lifetimes.is_some();
                self.check_path(&trait_bound.path, relaxed, errors);
            }
            TypeParamBound::Lifetime(lifetime) => self.check_lifetime(lifetime, relaxed, errors),
            _ => {}
        }
    }

    /// Rejects any lifetime but `'static`, which borrows nothing from the
    /// caller: `Cow<'static, str>` can be rebuilt as an owned value on the
    /// other side of the process boundary.
    fn check_lifetime(&self, lifetime: &Lifetime, relaxed: bool, errors: &mut Vec<syn::Error>) {
        if !relaxed && lifetime.ident != "static" {
            errors.push(syn::Error::new_spanned(lifetime, self.borrowed));
        }
    }
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
        compact(expand_task(attr, item))
    }

    /// Asserts that the expansion is a `compile_error!` carrying `message`.
    fn assert_rejects(attr: TokenStream, item: TokenStream, message: &str) {
        let out = expand(attr, item);
        assert!(out.contains("compile_error"), "no compile_error in {out}");
        assert!(
            out.contains(&compact(message)),
            "expected {message:?} in {out}"
        );
    }

    #[test]
    fn expands_a_task_with_several_parameters() -> syn::Result<()> {
        let out = expand_task(
            quote!(),
            quote! {
                /// Adds two numbers.
                #[inline]
                pub fn add(a: u64, mut b: u64) -> u64 { b += a; b }
            },
        );
        // The output must be a valid sequence of items.
        syn::parse2::<syn::File>(out.clone())?;
        let out = compact(out);
        assert!(!out.contains("compile_error"));
        // The function is left as written, docs and attributes included.
        assert!(out.starts_with(&compact(quote! {
            #[doc = r" Adds two numbers."]
            #[inline]
            pub fn add(a: u64, mut b: u64) -> u64 { b += a; b }
        })));
        // The companion is a braced struct: it takes no name in the value namespace.
        assert!(out.contains(&compact(quote! {
            #[allow(non_camel_case_types, dead_code)]
            #[derive(Clone, Copy, Debug)]
            pub struct add {}
        })));
        assert!(!out.contains("structadd;"));
        assert!(out.contains(&compact(quote! {
            pub fn call(__offspring_arg0: u64, __offspring_arg1: u64) -> u64 {
                add(__offspring_arg0, __offspring_arg1)
            }
        })));
        assert!(out.contains(&compact(quote! {
            ::core::concat!(::core::module_path!(), "::", ::core::stringify!(add))
        })));
        assert!(out.contains(&compact(quote! {
            ::offspring::__private::inventory::submit! {
                ::offspring::__private::TaskEntry::new(
                    ::core::concat!(::core::module_path!(), "::", ::core::stringify!(add)),
                    || ::offspring::__private::signature_of(&add),
                    |args| ::offspring::__private::run_erased(add, args),
                    || ::offspring::__private::type_id_of(&add),
                )
            }
        })));
        Ok(())
    }

    #[test]
    fn private_tasks_get_a_private_companion() {
        let out = expand(
            quote!(),
            quote!(
                fn shout(text: String) -> String {
                    text
                }
            ),
        );
        assert!(out.contains(&compact(quote!(
            struct shout {}
        ))));
        assert!(out.contains(&compact(quote!(
            fn call(__offspring_arg0: String) -> String {
                shout(__offspring_arg0)
            }
        ))));
        assert!(!out.contains("pubstruct"));
        assert!(!out.contains("pubfn"));
    }

    #[test]
    fn no_parameters_and_no_return_type() {
        let out = expand(
            quote!(),
            quote!(
                fn tick() {}
            ),
        );
        assert!(out.contains(&compact(quote!(
            fn call() {
                tick()
            }
        ))));
    }

    #[test]
    fn explicit_name_replaces_the_module_path() {
        let out = expand(
            quote!(name = "app::resize_v1"),
            quote!(
                fn resize(width: u32) -> u32 {
                    width
                }
            ),
        );
        assert!(out.contains("TaskEntry::new(\"app::resize_v1\","), "{out}");
        assert!(!out.contains("module_path"));
    }

    #[test]
    fn cfg_applies_to_every_item() {
        let out = compact(expand_task(
            quote!(),
            quote! {
                #[cfg(unix)]
                #[allow(clippy::too_many_arguments)]
                fn gated() {}
            },
        ));
        assert_eq!(out.matches("#[cfg(unix)]").count(), 4);
        assert!(out.starts_with(&compact(quote! {
            #[cfg(unix)]
            #[allow(clippy::too_many_arguments)]
            fn gated() {}
        })));
    }

    #[test]
    fn rejects_more_than_twelve_parameters() {
        let with_params = |n: usize| {
            let names = (0..n).map(|i| format_ident!("p{}", i));
            quote!(fn f(#(#names: u8),*) {})
        };
        assert_rejects(quote!(), with_params(13), TOO_MANY_ARGS);
        let out = expand(quote!(), with_params(12));
        assert!(!out.contains("compile_error"), "{out}");
    }

    #[test]
    fn static_lifetimes_and_function_pointers_are_accepted() {
        let out = expand(
            quote!(),
            quote!(
                fn f(a: std::borrow::Cow<'static, str>, b: fn(&str) -> usize) {}
            ),
        );
        assert!(!out.contains("compile_error"), "{out}");
    }

    #[test]
    fn accepts_async() {
        let out = expand(
            quote!(),
            quote!(
                async fn f(n: u64) -> u64 {
                    n
                }
            ),
        );
        assert!(!out.contains("compile_error"), "{out}");
        assert!(out.contains("new_async"), "{out}");
    }

    #[test]
    fn rejects_generics() {
        assert_rejects(
            quote!(),
            quote!(
                fn f<T>(t: T) {}
            ),
            NOT_GENERIC,
        );
        assert_rejects(
            quote!(),
            quote!(
                fn f<const N: usize>() {}
            ),
            NOT_GENERIC,
        );
        assert_rejects(
            quote!(),
            quote!(
                fn f<'a>() {}
            ),
            NOT_GENERIC,
        );
        assert_rejects(
            quote!(),
            quote!(
                fn f()
                where
                    u8: Copy,
                {
                }
            ),
            NOT_GENERIC,
        );
        assert_rejects(
            quote!(),
            quote!(
                fn f(t: impl Clone) {}
            ),
            NOT_GENERIC,
        );
        assert_rejects(
            quote!(),
            quote!(
                fn f(t: Vec<impl Clone>) {}
            ),
            NOT_GENERIC,
        );
    }

    #[test]
    fn rejects_methods() {
        assert_rejects(
            quote!(),
            quote!(
                fn f(&self) {}
            ),
            NOT_A_METHOD,
        );
        assert_rejects(
            quote!(),
            quote!(
                fn f(self: Box<Self>) {}
            ),
            NOT_A_METHOD,
        );
    }

    #[test]
    fn rejects_unsafe_extern_and_variadic() {
        assert_rejects(
            quote!(),
            quote!(
                unsafe fn f() {}
            ),
            NOT_UNSAFE,
        );
        assert_rejects(
            quote!(),
            quote!(
                extern "C" fn f() {}
            ),
            NO_ABI,
        );
        assert_rejects(
            quote!(),
            quote!(
                unsafe extern "C" fn f(a: i32, ...) {}
            ),
            NOT_VARIADIC,
        );
    }

    #[test]
    fn rejects_borrowed_arguments_and_results() {
        assert_rejects(
            quote!(),
            quote!(
                fn f(s: &str) {}
            ),
            OWNED_ARGS,
        );
        assert_rejects(
            quote!(),
            quote!(
                fn f(s: Vec<&'static str>) {}
            ),
            OWNED_ARGS,
        );
        assert_rejects(
            quote!(),
            quote!(
                fn f(s: Cow<'_, str>) {}
            ),
            OWNED_ARGS,
        );
        assert_rejects(
            quote!(),
            quote!(
                fn f(s: *const u8) {}
            ),
            OWNED_ARGS,
        );
        assert_rejects(
            quote!(),
            quote!(
                fn f() -> &'static str {
                    ""
                }
            ),
            OWNED_OUTPUT,
        );
        assert_rejects(
            quote!(),
            quote!(
                fn f() -> impl Clone {
                    0
                }
            ),
            NO_IMPL_OUTPUT,
        );
    }

    #[test]
    fn reports_every_problem_at_once() {
        let out = expand(
            quote!(),
            quote!(
                unsafe fn f<T>(s: &str) {}
            ),
        );
        assert!(out.contains(&compact(NOT_GENERIC)));
        assert!(out.contains(&compact(NOT_UNSAFE)));
        assert!(out.contains(&compact(OWNED_ARGS)));
    }

    #[test]
    fn rejects_bad_attribute_arguments() {
        assert_rejects(
            quote!(label = "x"),
            quote!(
                fn f() {}
            ),
            "unknown argument to `#[offspring::task]`",
        );
        assert_rejects(
            quote!(name),
            quote!(
                fn f() {}
            ),
            "`name` needs a value",
        );
        assert_rejects(
            quote!(name = 3),
            quote!(
                fn f() {}
            ),
            "`name` must be a string literal",
        );
        assert_rejects(
            quote!(name = ""),
            quote!(
                fn f() {}
            ),
            "a task's `name` cannot be empty",
        );
        assert_rejects(
            quote!(name = "a", name = "b"),
            quote!(
                fn f() {}
            ),
            "`name` is given twice",
        );
    }

    #[test]
    fn rejects_items_that_are_not_functions() {
        assert_rejects(
            quote!(),
            quote!(
                struct S;
            ),
            NOT_A_FUNCTION,
        );
    }

    #[test]
    fn errors_keep_the_original_item() {
        let out = expand(
            quote!(),
            quote!(
                async fn fetch() {}
            ),
        );
        assert!(out.contains(&compact(quote!(
            async fn fetch() {}
        ))));
    }
}
