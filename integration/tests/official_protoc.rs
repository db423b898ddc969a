//! The API as a user outside this workspace meets it: the `.proto` files compile with the
//! official `protoc` (Debian's `protobuf-compiler`, with the gRPC Python plugin), and the
//! generated Python client reads a real coordinator's status and a job.

use std::path::Path;
use std::process::Command;

use qserv_integration::Cluster;

const PROTOC: &str = "/usr/bin/protoc";
const PLUGIN: &str = "/usr/bin/grpc_python_plugin";
/// Debian's interpreter, which sees the packaged grpcio and protobuf modules.
const PYTHON: &str = "/usr/bin/python3";

const CLIENT: &str = r#"
import json, sys
sys.path.insert(0, sys.argv[1])
import grpc
from qserv.v1 import common_pb2, coordinator_pb2, coordinator_pb2_grpc

with grpc.insecure_channel(sys.argv[2], options=[("grpc.enable_http_proxy", 0)]) as channel:
    stub = coordinator_pb2_grpc.CoordinatorStub(channel)
    status = stub.GetStatus(coordinator_pb2.InstanceStatusRequest(), timeout=30)
    job = stub.GetJob(coordinator_pb2.JobRequest(id="j1"), timeout=30)
    print(json.dumps({
        "instance": status.instance,
        "mode": common_pb2.Mode.Name(status.mode),
        "nodes": sorted(n.name for n in status.nodes),
        "job": {"id": job.id, "kind": job.kind, "state": coordinator_pb2.JobState.Name(job.state),
                "params": job.params.WhichOneof("kind")},
    }))
"#;

fn need(path: &str) {
    assert!(
        Path::new(path).exists(),
        "{path} is missing: apt-get install -y protobuf-compiler protobuf-compiler-grpc python3-grpcio python3-protobuf"
    );
}

#[test]
fn the_protos_compile_with_official_protoc_and_its_client_reads_a_coordinator() {
    for tool in [PROTOC, PLUGIN, PYTHON] {
        need(tool);
    }
    let out = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let protos = Path::new(env!("CARGO_MANIFEST_DIR")).join("../proto/proto");
    let generated = Command::new(PROTOC)
        .arg(format!("--proto_path={}", protos.display()))
        .arg(format!("--python_out={}", out.path().display()))
        .arg(format!("--grpc_out={}", out.path().display()))
        .arg(format!("--plugin=protoc-gen-grpc={PLUGIN}"))
        .args([
            "qserv/v1/common.proto",
            "qserv/v1/agent.proto",
            "qserv/v1/coordinator.proto",
        ])
        .output()
        .unwrap_or_else(|e| panic!("cannot run protoc: {e}"));
    assert!(
        generated.status.success(),
        "protoc refused the protos: {}",
        String::from_utf8_lossy(&generated.stderr)
    );

    let cluster = Cluster::installed("dr1", 1, &[]);
    let address = cluster
        .coordinator
        .url()
        .trim_start_matches("http://")
        .to_owned();
    let ran = Command::new(PYTHON)
        .args(["-c", CLIENT])
        .arg(out.path())
        .arg(&address)
        .output()
        .unwrap_or_else(|e| panic!("cannot run python: {e}"));
    assert!(
        ran.status.success(),
        "the generated client failed: {}",
        String::from_utf8_lossy(&ran.stderr)
    );
    let seen: serde_json::Value = serde_json::from_slice(&ran.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&ran.stdout)));
    assert_eq!(seen["instance"], "dr1");
    assert_eq!(seen["mode"], "MODE_MAINTENANCE");
    assert_eq!(
        seen["nodes"],
        serde_json::json!(["czar-0", "repl-0", "worker-1"])
    );
    assert_eq!(seen["job"]["id"], "j1");
    assert_eq!(seen["job"]["kind"], "install");
    assert_eq!(seen["job"]["state"], "JOB_STATE_SUCCEEDED");
    assert_eq!(seen["job"]["params"], "install", "typed parameters: {seen}");
}
