//! The committed header carries the version of Cargo.toml and declares every exported symbol.

use std::path::Path;

/// `include/moe.h` followed by the `include/moe_version.h` it includes.
fn header() -> String {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../include");
    let read =
        |f: &str| std::fs::read_to_string(dir.join(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
    let main = read("moe.h");
    assert!(
        main.contains("#include \"moe_version.h\""),
        "moe.h must include moe_version.h"
    );
    main + &read("moe_version.h")
}

fn define(h: &str, name: &str) -> String {
    let prefix = format!("#define {name} ");
    h.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("moe.h lacks {name}"))
        .trim()
        .to_string()
}

#[test]
fn version_macros_come_from_cargo_toml() {
    let h = header();
    assert_eq!(
        define(&h, "MOE_VERSION_MAJOR"),
        env!("CARGO_PKG_VERSION_MAJOR")
    );
    assert_eq!(
        define(&h, "MOE_VERSION_MINOR"),
        env!("CARGO_PKG_VERSION_MINOR")
    );
    assert_eq!(
        define(&h, "MOE_VERSION_PATCH"),
        env!("CARGO_PKG_VERSION_PATCH")
    );
    assert_eq!(
        define(&h, "MOE_VERSION_STRING"),
        format!("\"{}\"", env!("CARGO_PKG_VERSION"))
    );
}

/// Every `#[no_mangle]` function is named `moe_*`, declared in the header, and runs its body inside
/// the panic boundary.
#[test]
fn exported_functions_are_declared_and_wrapped() {
    let h = header();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut n = 0;
    for entry in std::fs::read_dir(&src).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        let mut lines = text.lines();
        while let Some(l) = lines.next() {
            if l.trim() != "#[no_mangle]" {
                continue;
            }
            let sig = lines.next().unwrap();
            let name = sig.split("fn ").nth(1).unwrap().split('(').next().unwrap();
            assert!(name.starts_with("moe_"), "{name}: exports are named moe_*");
            let declared = [" ", "*"]
                .iter()
                .any(|p| h.contains(&format!("{p}{name}(")));
            assert!(declared, "moe.h lacks {name}");
            let body: Vec<&str> = lines.by_ref().take_while(|l| *l != "}").collect();
            assert!(
                body.iter().any(|l| l.contains("ffi_boundary!")),
                "{name} does not run inside ffi_boundary!"
            );
            n += 1;
        }
    }
    assert!(n >= 20, "only {n} exports found");
}
