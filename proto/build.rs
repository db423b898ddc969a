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
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)?;
    Ok(())
}
