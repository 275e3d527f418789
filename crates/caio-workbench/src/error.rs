//! The workbench's one error type. Every message names the file and, where
//! there is one, the cell and line, and says what to do.

use std::fmt;
use std::io;

use caio_notebook::{CellRef, NotebookError};

/// Everything that can go wrong in the workbench.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A notebook file could not be read or is not a valid notebook.
    #[error(transparent)]
    Notebook(#[from] NotebookError),
    /// Something is wrong in one cell of a notebook.
    #[error("{path}: {cell}: {message}")]
    Cell {
        /// The notebook, relative to the workspace root.
        path: String,
        /// The cell (and line) concerned.
        cell: CellRef,
        /// What is wrong and what to do.
        message: String,
    },
    /// Something is wrong with a file as a whole.
    #[error("{path}: {message}")]
    File {
        /// The file, relative to the workspace root.
        path: String,
        /// What is wrong and what to do.
        message: String,
    },
    /// A file operation failed.
    #[error("{path}: cannot {action}: {source}")]
    Io {
        /// The file or directory.
        path: String,
        /// What was being done (`read`, `write`, ...).
        action: &'static str,
        /// The underlying error.
        source: io::Error,
    },
    /// Several independent problems, reported together.
    #[error("{}", List(.0))]
    Many(Vec<Error>),
}

struct List<'a>(&'a [Error]);

impl fmt::Display for List<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl Error {
    /// An I/O error about `path`.
    pub fn io(path: impl fmt::Display, action: &'static str, source: io::Error) -> Self {
        Error::Io { path: path.to_string(), action, source }
    }

    /// Turns a list of problems into one error, or `Ok` when there are none.
    pub fn from_list(mut errors: Vec<Error>) -> Result<(), Error> {
        match errors.len() {
            0 => Ok(()),
            1 => Err(errors.remove(0)),
            _ => Err(Error::Many(errors)),
        }
    }
}

/// The workbench's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
