//! With the `torch` feature, `gourd-step` finds libtorch through an rpath to
//! the folder it was built against, so it runs with no `LD_LIBRARY_PATH`.
//! Only `gourd-step` links libtorch; `gourd` stays quick to start.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var_os("CARGO_FEATURE_TORCH").is_none() {
        return;
    }
    if let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg-bin=gourd-step=-Wl,-rpath,{lib}");
    }
    if std::env::var_os("CARGO_FEATURE_CUDA").is_some() {
        // The linker would drop libtorch_cuda (nothing references it by
        // name), and CUDA would then look unavailable.
        for arg in ["-Wl,--no-as-needed", "-ltorch_cuda", "-ltorch", "-Wl,--as-needed"] {
            println!("cargo:rustc-link-arg-bin=gourd-step={arg}");
        }
    }
}
