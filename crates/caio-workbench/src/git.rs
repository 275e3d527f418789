//! Running git in the workspace, for the commands that read its objects,
//! index or history. A failure names the command and git's own message.

use crate::error::{Error, Result};
use crate::workspace::Workspace;

/// git's standard output for `args`, run in the workspace root.
pub fn output(ws: &Workspace, args: &[&str]) -> Result<Vec<u8>> {
    let output = std::process::Command::new("git")
        .args(args)
        .current_dir(ws.root())
        .output()
        .map_err(|e| Error::io(".", "run git for", e))?;
    if !output.status.success() {
        return Err(Error::File {
            path: ".".into(),
            message: format!("`git {}` failed: {}", args.join(" "), String::from_utf8_lossy(&output.stderr).trim()),
        });
    }
    Ok(output.stdout)
}

/// The same, as text without surrounding white space.
pub fn text(ws: &Workspace, args: &[&str]) -> Result<String> {
    Ok(String::from_utf8_lossy(&output(ws, args)?).trim().to_string())
}
