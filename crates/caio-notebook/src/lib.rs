//! Jupyter notebooks as caio reads and writes them.
//!
//! caio keeps its routing calculus in Rust notebooks (nbformat 4, evcxr
//! kernel), so every tool of the workbench starts here: [`Notebook`] is a
//! lossless model of the file, [`Notebook::to_json`] writes it back in
//! Jupyter's own layout (one-space indent, sorted keys, non-ASCII kept,
//! trailing newline), and [`directives`] reads the nbdev-style `//|` lines
//! that say what a code cell is for.
//!
//! The design decision that shapes this crate: reading then writing an
//! unchanged notebook must reproduce it byte for byte, so that tools never
//! create diffs nobody asked for. Unknown fields are kept, the string-or-list
//! form of every multi-line text is kept, and numbers are printed the way
//! Python's `json` module prints them.
//!
//! This crate never touches the file system except in [`Notebook::load`], and
//! never executes anything.

pub mod directives;
mod error;
mod json;
mod model;

pub use error::{CellRef, NotebookError, Problem};
pub use json::to_jupyter_json;
pub use model::{
    Cell, CodeCell, DisplayData, ErrorOutput, ExecuteResult, Metadata, MultilineText, Notebook, Output, StreamOutput,
    TextCell, mime_value,
};
