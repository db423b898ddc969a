//! Everything the agent's gRPC port serves: the agent service, the standard health service
//! (whose overall entry follows database readiness, like `/readyz`) and reflection.

use qserv_model::AgentState;
use qserv_proto::reflection::HEALTH_SERVICE;
use qserv_proto::v1::agent_server::{AgentServer, SERVICE_NAME};
use tokio::sync::watch;
use tonic::transport::server::Router;

use crate::edge::grpc::{Access, AgentService, authorize};

pub async fn router(
    service: AgentService,
    tls_on: bool,
    insecure: bool,
    state: watch::Receiver<AgentState>,
) -> Result<Router, qserv_proto::reflection::Error> {
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<AgentServer<AgentService>>()
        .await;
    tokio::spawn(follow_readiness(health_reporter, state));
    // Reflection is a read: it answers whom any read would answer.
    let explore = move |request: tonic::Request<()>| {
        authorize(&request, tls_on, insecure, "explore the API", Access::Read)?;
        Ok(request)
    };
    let (reflection_v1, reflection_v1alpha) =
        qserv_proto::reflection::guarded(&[HEALTH_SERVICE, SERVICE_NAME], explore)?;
    Ok(qserv_proto::transport::server()
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(
            AgentServer::new(service)
                .max_decoding_message_size(qserv_proto::transport::MAX_MESSAGE_BYTES),
        ))
}

async fn follow_readiness(
    reporter: tonic_health::server::HealthReporter,
    mut state: watch::Receiver<AgentState>,
) {
    loop {
        let status = if state.borrow_and_update().db_ready {
            tonic_health::ServingStatus::Serving
        } else {
            tonic_health::ServingStatus::NotServing
        };
        reporter.set_service_status("", status).await;
        if state.changed().await.is_err() {
            break;
        }
    }
}
