//! On Linux, gives the shared library a SONAME, `libmoe.so.<major>` (`libmoe.so.0` for 0.x): programs
//! linked against it record that name instead of the path of the file they were linked with, and the
//! loader looks it up in its directories (an install has `libmoe.so.0 -> libmoe.so.0.1.0`, see
//! moe-ffi/install.sh).
//!
//! So that programs linked against the build tree (`-L target/release -lmoe -Wl,-rpath,...`, as
//! examples/c/Makefile does) still run, the script also puts a link `libmoe.so.<major> -> libmoe.so`
//! beside the library in the profile's output folder (target/release, target/profiling, ...). That is
//! the one file it writes outside OUT_DIR. Other targets get no special link arguments and no link.

use std::path::{Path, PathBuf};

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("linux") {
        return;
    }
    let major =
        std::env::var("CARGO_PKG_VERSION_MAJOR").expect("cargo sets CARGO_PKG_VERSION_MAJOR");
    let soname = format!("libmoe.so.{major}");
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,{soname}");

    // OUT_DIR is <target>/[<triple>/]<profile>/build/moe-ffi-<hash>/out; libmoe.so lands in <profile>.
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    if let Some(profile_dir) = out_dir.ancestors().nth(3) {
        if let Err(e) = link_soname(profile_dir, &soname) {
            println!(
                "cargo:warning=could not create {}/{soname} -> libmoe.so ({e}); programs linked \
                 against the build tree will not find {soname} at run time",
                profile_dir.display()
            );
        }
    }
}

/// Makes `dir/soname` a relative symbolic link to `libmoe.so` (dangling until the library is linked).
fn link_soname(dir: &Path, soname: &str) -> std::io::Result<()> {
    let link = dir.join(soname);
    match std::fs::read_link(&link) {
        Ok(target) if target == Path::new("libmoe.so") => return Ok(()),
        Ok(_) => std::fs::remove_file(&link)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        // Something other than a link (a copied library?): leave it alone.
        Err(_) if link.exists() => return Ok(()),
        Err(e) => return Err(e),
    }
    #[cfg(unix)]
    std::os::unix::fs::symlink("libmoe.so", &link)?;
    Ok(())
}
