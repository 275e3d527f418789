//! The small runtime compiled into every runner program. It is the child's
//! half of the protocol [`super::capture`] reads: cell boundaries and the
//! final-expression region are marked on stdout and stderr with
//! `\x1ecaio:...\x1e` records (the ASCII record separator never appears in
//! ordinary output), panics are reported with their location, and the final
//! expression of a cell is displayed as evcxr displays it: through an
//! `evcxr_display` method when the value has one, otherwise as `Debug` text
//! in an `EVCXR_BEGIN_CONTENT text/plain` block.

/// Source of the `__caio_rt` module placed in every generated `main.rs`.
pub const SOURCE: &str = r#"
#[doc(hidden)]
mod __caio_rt {
    use std::io::Write;

    fn mark(record: std::fmt::Arguments) {
        let record = format!("\u{1e}caio:{record}\u{1e}");
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(record.as_bytes());
        let _ = out.flush();
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(record.as_bytes());
        let _ = err.flush();
    }

    pub fn begin(cell: usize) {
        mark(format_args!("begin:{cell}"));
    }

    pub fn end(cell: usize) {
        mark(format_args!("end:{cell}"));
    }

    pub fn begin_result() {
        mark(format_args!("result-begin"));
    }

    pub fn end_result() {
        mark(format_args!("result-end"));
    }

    /// What `?` in a cell converts errors into, as evcxr does: the error is
    /// printed to stderr with `Display` and the remaining cells do not run.
    pub struct UserError;

    impl<T: std::fmt::Display> From<T> for UserError {
        fn from(error: T) -> Self {
            eprintln!("{error}");
            mark(format_args!("user-error"));
            UserError
        }
    }

    /// What evcxr requires of every top-level variable of a cell, which it
    /// keeps for the next cells: a `'static` type (checked by the compiler
    /// through this bound) that is not a closure (checked here, by the
    /// type's name, as evcxr checks the type rust-analyzer infers).
    #[track_caller]
    pub fn persist<T: 'static>(_value: &T, name: &str) {
        let type_name = std::any::type_name::<T>();
        if type_name.contains("{{closure}}") && !type_name.ends_with("}}") {
            // A type holding a closure (an iterator adaptor, say): evcxr cannot name it.
            panic!(
                "caio-persist: The variable `{name}` has type `{type_name}` which cannot be persisted (evcxr keeps every top-level variable of a cell for the next cells, and must write its type). Collect it into owned data, box it (`let {name}: Box<dyn Iterator<Item = ..>> = Box::new(..);`), or wrap the code in braces so the variable is not kept."
            );
        }
        if type_name.contains("{{closure}}") {
            panic!(
                "caio-persist: The variable `{name}` is a closure, which cannot be persisted (evcxr keeps every top-level variable of a cell for the next cells). Box it, as in `let {name}: Box<dyn Fn(..)> = Box::new(|..| ..);`, make it a `fn`, or wrap the code in braces so the variable is not kept."
            );
        }
    }

    /// Found by method resolution only when the value has no `evcxr_display`
    /// of its own (see the runner documentation).
    pub trait DebugFallback {
        fn evcxr_display(&self);
    }

    impl<T: ?Sized + std::fmt::Debug> DebugFallback for &T {
        fn evcxr_display(&self) {
            let text = format!("{:?}", *self);
            let mut out = std::io::stdout().lock();
            let _ = write!(out, "EVCXR_BEGIN_CONTENT text/plain\n{text}\nEVCXR_END_CONTENT\n");
            let _ = out.flush();
        }
    }

    pub fn install() {
        std::panic::set_hook(Box::new(|info| {
            let payload = info.payload();
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "Box<dyn Any>".to_string());
            let (file, line, column) = info
                .location()
                .map(|l| (l.file().to_string(), l.line(), l.column()))
                .unwrap_or_default();
            let _ = std::io::stdout().flush();
            let mut err = std::io::stderr().lock();
            let message = message.replace('\u{1e}', " ");
            let _ = write!(err, "\u{1e}caio:panic\u{1f}{file}\u{1f}{line}\u{1f}{column}\u{1f}{message}\u{1e}");
            let _ = err.flush();
        }));
    }

    pub fn finish(outcome: Result<(), UserError>) {
        let _ = std::io::stdout().flush();
        if outcome.is_err() {
            std::process::exit(1);
        }
    }
}
"#;
