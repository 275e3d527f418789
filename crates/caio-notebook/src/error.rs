//! Errors about a notebook file, always naming the file and, where there is
//! one, the cell (1-based, as a reader counts them) and the line in it.

use std::fmt;
use std::path::PathBuf;

/// Which cell a message is about: its position (0-based index in the file)
/// and its id when it has one. Displayed 1-based: "cell 3 (id a1b2c3)".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CellRef {
    /// 0-based index of the cell in `cells`.
    pub index: usize,
    /// The nbformat 4.5 cell id, if the cell has one.
    pub id: Option<String>,
    /// 1-based line inside the cell source, if the message is about a line.
    pub line: Option<usize>,
}

impl CellRef {
    /// A reference to a whole cell.
    pub fn new(index: usize, id: Option<&str>) -> Self {
        CellRef { index, id: id.map(str::to_owned), line: None }
    }

    /// The same cell, narrowed to one line (1-based).
    pub fn at_line(mut self, line: usize) -> Self {
        self.line = Some(line);
        self
    }
}

impl fmt::Display for CellRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cell {}", self.index + 1)?;
        if let Some(id) = &self.id {
            write!(f, " (id {id})")?;
        }
        if let Some(line) = self.line {
            write!(f, ", line {line}")?;
        }
        Ok(())
    }
}

/// What is wrong with a notebook's content, before the file is known.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    /// The file is not JSON at all.
    #[error(
        "line {line}, column {column}: invalid JSON: {message}; fix the syntax (an unresolved merge conflict?) or restore the file from git"
    )]
    Json {
        /// 1-based line of the syntax error.
        line: usize,
        /// 1-based column of the syntax error.
        column: usize,
        /// What the JSON parser expected.
        message: String,
    },
    /// The notebook's `nbformat` is not 4.
    #[error(
        "nbformat {found} is not supported; caio reads nbformat 4 (open and save the notebook in a current Jupyter to upgrade it)"
    )]
    UnsupportedFormat {
        /// The version the file declares.
        found: u64,
    },
    /// A required top-level field is missing or has the wrong type.
    #[error("{0}")]
    Structure(String),
    /// One cell is malformed.
    #[error("{cell}: {message}")]
    Cell {
        /// The cell concerned.
        cell: CellRef,
        /// What is wrong with it and what to do.
        message: String,
    },
    /// The notebook is not for the Rust (evcxr) kernel.
    #[error("{0}")]
    Kernel(String),
}

/// A problem with one notebook file: the file, then what is wrong.
#[derive(Debug, thiserror::Error)]
pub enum NotebookError {
    /// The file could not be read.
    #[error("{path}: cannot read the notebook: {source}")]
    Read {
        /// The notebook file.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// The file was read but its content is not a usable notebook.
    #[error("{path}: {problem}")]
    Invalid {
        /// The notebook file.
        path: PathBuf,
        /// What is wrong.
        problem: Problem,
    },
}

impl NotebookError {
    /// The content problem, if this is not an I/O error.
    pub fn problem(&self) -> Option<&Problem> {
        match self {
            NotebookError::Invalid { problem, .. } => Some(problem),
            NotebookError::Read { .. } => None,
        }
    }
}
