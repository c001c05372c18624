//! Compiles `proto/mahnwerk/v1/*.proto` with protox (pure Rust, no system protoc) and writes the
//! encoded file descriptor set for gRPC reflection.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let files: Vec<_> = std::fs::read_dir(root.join("mahnwerk/v1"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "proto"))
        .collect();
    // The directory too, so that a new .proto file is compiled.
    println!(
        "cargo:rerun-if-changed={}",
        root.join("mahnwerk/v1").display()
    );
    for f in &files {
        println!("cargo:rerun-if-changed={}", f.display());
    }
    let mut compiler = protox::Compiler::new([&root])?;
    compiler
        .include_imports(true)
        .include_source_info(true)
        .open_files(&files)?;
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out.join("mahnwerk_descriptor.bin"),
        compiler.encode_file_descriptor_set(),
    )?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(compiler.file_descriptor_set())?;
    Ok(())
}
