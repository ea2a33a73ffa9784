//! The library's modules import only downward: `tools/module-graph.py` prints the import graph
//! between them and fails on a cycle.

#[test]
fn the_module_graph_has_no_cycle() {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tools/module-graph.py");
    let output = std::process::Command::new("python3")
        .arg(&script)
        .output()
        .expect("python3 runs tools/module-graph.py");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("no cycle"), "{stderr}");
}
