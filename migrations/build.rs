//! Embeds the bundled smig-layout scripts under `qserv/` so the binaries carry them.

use std::fmt::Write as _;
use std::path::Path;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = Path::new("qserv");
    println!("cargo:rerun-if-changed=qserv");
    println!("cargo:rerun-if-changed=agent");
    println!("cargo:rerun-if-changed=store");
    println!("cargo:rerun-if-changed=store-mysql");
    let mut entries = Vec::new();
    for module in std::fs::read_dir(root)? {
        let module = module?;
        if !module.file_type()?.is_dir() {
            continue;
        }
        println!("cargo:rerun-if-changed={}", module.path().display());
        for script in std::fs::read_dir(module.path())? {
            let script = script?;
            if script.file_type()?.is_file() {
                entries.push((
                    module.file_name().to_string_lossy().into_owned(),
                    script.file_name().to_string_lossy().into_owned(),
                    std::fs::canonicalize(script.path())?,
                ));
            }
        }
    }
    entries.sort();
    let mut out = String::from("&[\n");
    for (module, name, path) in entries {
        writeln!(
            out,
            "    ({module:?}, {name:?}, include_str!({:?})),",
            path.display().to_string()
        )?;
    }
    out.push(']');
    let dest = Path::new(&std::env::var("OUT_DIR")?).join("bundled.rs");
    std::fs::write(dest, out)?;
    Ok(())
}
