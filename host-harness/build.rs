//! Embeds the sample Lago webhooks shipped in `samples/events/` so the default run needs no files.

use std::fmt::Write as _;
use std::path::Path;

fn main() {
    // Read when the script runs, not when it was compiled: a build directory reused from another
    // checkout must embed this checkout's samples.
    let manifest = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let dir = Path::new(&manifest).join("../samples/events");
    println!("cargo:rerun-if-changed={}", dir.display());
    let entries = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read the sample events in {}: {e}", dir.display()));
    let mut names: Vec<_> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    assert!(
        !names.is_empty(),
        "no sample events (*.json) in {}",
        dir.display()
    );
    names.sort();
    let mut code = String::from(
        "/// Sample Lago webhooks, in sync order.\npub const SAMPLE_EVENTS: &[(&str, &str)] = &[\n",
    );
    for path in names {
        let name = path.file_name().unwrap().to_string_lossy();
        let path = path.canonicalize().unwrap();
        writeln!(
            code,
            "    ({name:?}, include_str!({:?})),",
            path.display().to_string()
        )
        .unwrap();
    }
    code.push_str("];\n");
    let out = Path::new(&std::env::var("OUT_DIR").unwrap()).join("samples.rs");
    std::fs::write(out, code).unwrap();
}
