//! This crate's own test binaries find libtorch through an rpath (the CLI's
//! build script does the same for the `gourd` binary).

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
    }
}
