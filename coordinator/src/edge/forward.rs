//! A change sent to a follower goes to the leader (DESIGN §13). The follower has authorized the
//! caller; it sends the request on with its own identity (its coordinator certificate over TLS)
//! and names the caller in metadata, which the leader believes from a coordinator only.

use std::future::Future;
use std::time::Duration;

use qserv_proto::tls::TlsFiles;
use qserv_proto::transport::secure_endpoint;
use qserv_proto::v1::VersionRequest;
use qserv_proto::v1::coordinator_client::CoordinatorClient;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

use crate::edge::auth::{Caller, FORWARDED_BY, FORWARDED_IDENTITY, FORWARDED_ROLE};

/// How long the leader has to answer before a change is forwarded to it.
const LEADER_ANSWERS_WITHIN: Duration = Duration::from_millis(1500);

/// Where a change goes.
pub enum Route {
    /// This coordinator leads: it runs the change for `Caller`.
    Here(Caller),
    /// The leader at `address` runs it.
    Leader { caller: Caller, address: String },
}

#[derive(Clone)]
pub struct Forwarder {
    tls: Option<TlsFiles>,
    me: String,
}

impl Forwarder {
    pub fn new(tls: Option<TlsFiles>, me: String) -> Forwarder {
        Forwarder { tls, me }
    }

    /// This coordinator's id.
    pub fn me(&self) -> &str {
        &self.me
    }

    /// Sends `message` to the leader at `address` through `call`, on behalf of `caller`, naming
    /// the instance the caller meant.
    pub async fn send<T, R, F, Fut>(
        &self,
        caller: &Caller,
        address: &str,
        meant: Option<&str>,
        message: T,
        call: F,
    ) -> Result<Response<R>, Status>
    where
        F: FnOnce(CoordinatorClient<Channel>, Request<T>) -> Fut,
        Fut: Future<Output = Result<Response<R>, Status>>,
    {
        let client = self.client(address).await?;
        let mut request = Request::new(message);
        let metadata = request.metadata_mut();
        for (key, value) in [
            (FORWARDED_IDENTITY, caller.identity.as_str()),
            (FORWARDED_ROLE, caller.role_name()),
            (FORWARDED_BY, self.me.as_str()),
        ] {
            let value = MetadataValue::try_from(value).map_err(|_| {
                Status::invalid_argument(format!(
                    "cannot forward the request: its {key} is not valid metadata"
                ))
            })?;
            metadata.insert(key, value);
        }
        if let Some(meant) = meant.and_then(|m| MetadataValue::try_from(m).ok()) {
            metadata.insert(qserv_proto::transport::INSTANCE_METADATA, meant);
        }
        tracing::info!(caller = %caller.describe(), leader = address, "forwarding a change to the leader");
        call(client, request).await.map_err(|status| {
            if qserv_proto::transport::answered(&status) {
                return status;
            }
            // Lost on the way after the leader answered: it may have taken the change.
            Status::unavailable(format!(
                "the leader at {address} stopped answering while taking the change ({}); it may have taken it: check 'qserv jobs list' before sending it again",
                qserv_proto::transport::describe_status(&status)
            ))
        })
    }

    async fn client(&self, address: &str) -> Result<CoordinatorClient<Channel>, Status> {
        let unavailable = |why: String| {
            qserv_proto::transport::between_leaders(format!(
                "this coordinator follows the leader at {address} and cannot reach it ({why}); a follower takes over within the lease TTL: run the command again in a few seconds"
            ))
        };
        // A bad certificate or address is this coordinator's configuration, not a takeover.
        let misconfigured = |why: String| {
            Status::internal(format!(
                "this coordinator cannot forward to the leader at {address}: {why}; fix its TLS settings or the leader's --advertise address"
            ))
        };
        let tls = self
            .tls
            .as_ref()
            .map(TlsFiles::client)
            .transpose()
            .map_err(|e| misconfigured(e.to_string()))?;
        let endpoint = secure_endpoint(address, tls.as_ref())
            .map_err(|e| misconfigured(e.to_string()))?
            .connect_timeout(Duration::from_secs(3))
            .timeout(Duration::from_secs(120));
        let connecting = endpoint.connect();
        // tonic bounds the TCP connect alone: a frozen leader's handshake would hold the
        // request for ever.
        let channel = tokio::time::timeout(qserv_proto::transport::HANDSHAKE_TIMEOUT, connecting)
            .await
            .map_err(|_| unavailable("no TLS handshake within 3 s".to_owned()))?
            .map_err(|e| unavailable(qserv_proto::transport::describe_error(&e)))?;
        let mut client = CoordinatorClient::new(channel)
            .max_decoding_message_size(qserv_proto::transport::MAX_MESSAGE_BYTES);
        // A frozen leader's kernel still completes TCP (and, without TLS, the connection):
        // asked first, it shows whether anything runs there before the change is sent, so that
        // a change it never saw is refused as between leaders and sent again.
        let asked =
            tokio::time::timeout(LEADER_ANSWERS_WITHIN, client.get_version(VersionRequest {}))
                .await;
        match asked {
            Ok(Ok(_)) => Ok(client),
            Ok(Err(status)) if qserv_proto::transport::answered(&status) => Ok(client),
            Ok(Err(status)) => Err(unavailable(qserv_proto::transport::describe_status(
                &status,
            ))),
            Err(_) => Err(unavailable(format!(
                "it did not answer within {} ms",
                LEADER_ANSWERS_WITHIN.as_millis()
            ))),
        }
    }
}
