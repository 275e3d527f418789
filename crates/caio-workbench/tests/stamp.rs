//! The record of a passed validate: any change of a workspace file, or of
//! the flags and branch, means a full validate; what is under target/ does not.

mod support;

use caio_workbench::stamp;
use support::{read, workspace, write};

#[test]
fn a_pass_is_remembered_only_for_the_exact_state_it_judged() {
    let (_dir, ws) = workspace("evidence");
    let context = "check=true branch=main";
    let first = stamp::fingerprint(&ws, context).unwrap();
    assert!(first.files >= 5, "{first:?}");
    assert!(!stamp::passed_before(&ws, &first), "nothing passed yet");
    stamp::record_pass(&ws, &first).unwrap();
    assert!(stamp::passed_before(&ws, &stamp::fingerprint(&ws, context).unwrap()));
    // The record itself and builds live under target/: not part of the state.
    std::fs::create_dir_all(ws.path("target/caio-runner")).unwrap();
    std::fs::write(ws.path("target/caio-runner/x"), "build").unwrap();
    assert!(stamp::passed_before(&ws, &stamp::fingerprint(&ws, context).unwrap()));
    // Another branch or mode is another question.
    assert!(!stamp::passed_before(&ws, &stamp::fingerprint(&ws, "check=true branch=dev").unwrap()));
    // A changed file, even one changed back, is a change.
    let notebook = ws.notebooks().unwrap().remove(0).rel;
    let text = read(&ws, &notebook);
    write(&ws, &notebook, &format!("{text} "));
    assert!(!stamp::passed_before(&ws, &stamp::fingerprint(&ws, context).unwrap()));
    write(&ws, &notebook, &text);
    let file = std::fs::File::options().write(true).open(ws.path(&notebook)).unwrap();
    file.set_modified(std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1)).unwrap();
    assert!(!stamp::passed_before(&ws, &stamp::fingerprint(&ws, context).unwrap()));
    // A new file is a change; forgetting drops the record.
    stamp::record_pass(&ws, &stamp::fingerprint(&ws, context).unwrap()).unwrap();
    write(&ws, "invariants/notes.txt", "x");
    assert!(!stamp::passed_before(&ws, &stamp::fingerprint(&ws, context).unwrap()));
    stamp::record_pass(&ws, &stamp::fingerprint(&ws, context).unwrap()).unwrap();
    stamp::forget(&ws);
    assert!(!stamp::passed_before(&ws, &stamp::fingerprint(&ws, context).unwrap()));
}
