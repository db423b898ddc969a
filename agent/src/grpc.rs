//! The agent's gRPC service: answers from the published status, never from the database.

use std::pin::Pin;

use futures::Stream;
use qserv_proto::v1::agent_server::Agent;
use qserv_proto::v1::{AgentStatus, AgentStatusRequest};
use tokio::sync::watch;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::WatchStream;
use tonic::{Request, Response, Status};

pub struct AgentService {
    status: watch::Receiver<AgentStatus>,
}

impl AgentService {
    pub fn new(status: watch::Receiver<AgentStatus>) -> AgentService {
        AgentService { status }
    }
}

type StatusStream = Pin<Box<dyn Stream<Item = Result<AgentStatus, Status>> + Send>>;

#[tonic::async_trait]
impl Agent for AgentService {
    async fn get_status(
        &self,
        _request: Request<AgentStatusRequest>,
    ) -> Result<Response<AgentStatus>, Status> {
        Ok(Response::new(self.status.borrow().clone()))
    }

    type WatchStatusStream = StatusStream;

    async fn watch_status(
        &self,
        _request: Request<AgentStatusRequest>,
    ) -> Result<Response<Self::WatchStatusStream>, Status> {
        let stream = WatchStream::new(self.status.clone()).map(Ok);
        Ok(Response::new(Box::pin(stream)))
    }
}
