//! Compiles the wire contract with protox (a pure-Rust protobuf compiler) so the build needs no
//! `protoc` on the machine and works offline.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "qserv/v1/common.proto",
        "qserv/v1/agent.proto",
        "qserv/v1/coordinator.proto",
    ];
    for file in files {
        println!("cargo:rerun-if-changed=proto/{file}");
    }
    let fds = protox::compile(files, ["proto"])?;
    // Served by gRPC reflection, so tools can explore the API without the .proto files.
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out.join("qserv_descriptor.bin"),
        prost::Message::encode_to_vec(&fds),
    )?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)?;
    Ok(())
}
