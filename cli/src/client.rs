//! The connection to the coordinator.

use std::future::Future;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use backon::{BackoffBuilder, ExponentialBuilder};

use qserv_proto::tls::TlsFiles;
use qserv_proto::transport::{answered, describe_error, describe_status, secure_endpoint};
use qserv_proto::v1::VersionRequest;
use qserv_proto::v1::coordinator_client::CoordinatorClient;
use tonic::transport::{Channel, ClientTlsConfig};

use crate::exit::{CliError, Exit, from_status, unreachable};

static TLS: OnceLock<Option<ClientTlsConfig>> = OnceLock::new();

/// Sets the TLS configuration every connection of this process uses (from the global flags).
/// A CA alone verifies the coordinator without presenting a client certificate; a coordinator
/// that requires one then refuses the connection, and the error says so.
pub fn configure_tls(
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    ca: Option<PathBuf>,
) -> Result<(), CliError> {
    let _ = TLS.set(tls_config(cert, key, ca)?);
    Ok(())
}

/// The TLS configuration the files give (none without any).
pub fn tls_config(
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    ca: Option<PathBuf>,
) -> Result<Option<ClientTlsConfig>, CliError> {
    let usage = |e: qserv_proto::tls::TlsError| CliError::new(Exit::Usage, e.to_string());
    if let Some(cert) = &cert {
        check_own_certificate(cert)?;
    }
    Ok(match (cert, key, ca) {
        (None, None, Some(ca)) => Some(TlsFiles::ca_only(&ca).map_err(usage)?),
        (cert, key, ca) => TlsFiles::from_flags(cert, key, ca)
            .map_err(usage)?
            .map(|f| f.client())
            .transpose()
            .map_err(usage)?,
    })
}

/// Refuses a client certificate the coordinator would refuse, saying why, before any
/// connection: an expired one otherwise surfaces as a broken pipe.
fn check_own_certificate(path: &std::path::Path) -> Result<(), CliError> {
    let refused = |why: String| CliError::new(Exit::Refused, why);
    let facts = qserv_proto::certs::file_facts(path).map_err(refused)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    facts
        .check_time(now)
        .map_err(|problem| refused(format!("certificate {} {problem}", path.display())))
}

/// A connection that failed on a certificate (the coordinator's, or ours as it judged it):
/// the coordinator is there, and trying again will not help.
fn certificate_failure(url: &str, cause: &str) -> Option<CliError> {
    let lower = cause.to_ascii_lowercase();
    let expired = lower.contains("expired");
    let certificate = lower.contains("certificate") || lower.contains("unknownca");
    (expired || certificate).then(|| {
        let what = if expired {
            "certificate expired"
        } else {
            "certificate refused"
        };
        CliError::new(
            Exit::Refused,
            format!(
                "{what} on the TLS connection to {url}: {cause}; check the certificates of --tls-cert, --tls-ca and the coordinator's"
            ),
        )
    })
}

/// The instance every request of this process is meant for, when the CLI knows it: mutating
/// requests carry it, and a coordinator of another instance refuses them.
static INSTANCE: OnceLock<String> = OnceLock::new();

pub fn configure_instance(name: &str) {
    let _ = INSTANCE.set(name.to_owned());
}

/// Refuses an answer from a coordinator of another instance than the one meant: reading
/// dr2's status while meaning dr1 misleads as surely as changing it would.
pub fn check_instance(answered: &str, coordinator: &str) -> Result<(), CliError> {
    match INSTANCE.get() {
        Some(meant) if !answered.is_empty() && answered != meant => Err(CliError::new(
            Exit::Refused,
            format!(
                "the coordinator at {coordinator} runs instance '{answered}', not '{meant}': check --instance, --coordinator and the configuration file"
            ),
        )),
        _ => Ok(()),
    }
}

/// Attaches who is asking (for the job's record) and which instance they mean.
pub fn with_user<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    let who = crate::caller();
    if let Ok(value) = who.parse() {
        request.metadata_mut().insert("x-qserv-user", value);
    }
    if let Some(instance) = INSTANCE.get()
        && let Ok(value) = instance.parse()
    {
        request
            .metadata_mut()
            .insert(qserv_proto::transport::INSTANCE_METADATA, value);
    }
    request
}

/// Connects to the coordinator at `urls`: one address, or a comma-separated list of the
/// coordinators sharing a store, tried in order. When none answers it is exit 5, naming each.
pub async fn connect(urls: &str) -> Result<CoordinatorClient<Channel>, CliError> {
    connect_with(urls, TLS.get().and_then(Option::as_ref)).await
}

/// [`connect`] with TLS settings of its own (an instance of the configuration file).
///
/// One address is connected to as it is. Of several, each is asked for its version at once:
/// the leader is used as soon as it answers; otherwise, once every address answered or failed
/// (or [`ANSWER_WITHIN`] passed), the first in the list that answered. A frozen coordinator
/// accepts connections (its kernel does) but answers nothing, and holds no command past that
/// time; one cut off from its store answers, but not as the leader.
pub async fn connect_with(
    urls: &str,
    tls: Option<&ClientTlsConfig>,
) -> Result<CoordinatorClient<Channel>, CliError> {
    let list: Vec<&str> = urls
        .split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .collect();
    match list.as_slice() {
        [] => Err(CliError::new(
            Exit::Usage,
            "no coordinator address given: pass --coordinator URL or set QSERV_COORDINATOR",
        )),
        [url] => connect_one(url, tls).await,
        _ => best_to_answer(&list, tls).await,
    }
}

/// How long the coordinators among several have to answer before the CLI goes on with those
/// that did.
const ANSWER_WITHIN: Duration = qserv_proto::transport::HANDSHAKE_TIMEOUT;

/// A coordinator's answer to "what is your version": whether it said it leads.
struct Answer {
    client: CoordinatorClient<Channel>,
    leads: bool,
}

async fn ask(url: &str, tls: Option<&ClientTlsConfig>) -> Result<Answer, CliError> {
    let mut client = connect_one(url, tls).await?;
    match client.get_version(with_user(VersionRequest {})).await {
        Ok(reply) => Ok(Answer {
            leads: reply.into_inner().leads,
            client,
        }),
        // A refusal is an answer: the command's own call reports it.
        Err(status) if answered(&status) => Ok(Answer {
            client,
            leads: false,
        }),
        Err(status) => Err(unreachable(url, &describe_status(&status))),
    }
}

async fn best_to_answer(
    urls: &[&str],
    tls: Option<&ClientTlsConfig>,
) -> Result<CoordinatorClient<Channel>, CliError> {
    use futures::StreamExt;
    let mut asked: futures::stream::FuturesUnordered<_> = urls
        .iter()
        .enumerate()
        .map(|(index, url)| async move { (index, ask(url, tls).await) })
        .collect();
    let deadline = tokio::time::Instant::now() + ANSWER_WITHIN;
    // The first in the list that answered without leading, and every failure.
    let mut first: Option<(usize, CoordinatorClient<Channel>)> = None;
    let mut silent = vec![true; urls.len()];
    let mut failures = Vec::new();
    while let Ok(Some((index, answer))) = tokio::time::timeout_at(deadline, asked.next()).await {
        silent[index] = false;
        match answer {
            Ok(Answer {
                client,
                leads: true,
            }) => return Ok(client),
            Ok(Answer { client, .. }) => {
                if first.as_ref().is_none_or(|(at, _)| index < *at) {
                    first = Some((index, client));
                }
            }
            Err(err) => failures.push(err),
        }
    }
    if let Some((_, client)) = first {
        return Ok(client);
    }
    for (url, _) in urls.iter().zip(&silent).filter(|(_, silent)| **silent) {
        failures.push(unreachable(
            url,
            &format!("no answer within {} s", ANSWER_WITHIN.as_secs()),
        ));
    }
    // A certificate or address problem says more than "cannot reach".
    if let Some(index) = failures.iter().position(|e| e.exit != Exit::Unreachable) {
        return Err(failures.swap_remove(index));
    }
    Err(CliError::new(
        Exit::Unreachable,
        failures
            .iter()
            .map(|e| e.message.clone())
            .collect::<Vec<_>>()
            .join("; "),
    ))
}

/// How long a change is sent again while the coordinators are between leaders: a takeover
/// takes the lease TTL and a second at most, with room for a TTL longer than the default.
const BETWEEN_LEADERS: Duration = Duration::from_secs(20);

/// Sends a change built by `call` to the coordinators at `urls`. A refusal that says the
/// coordinators are between leaders applied nothing, so the same change is sent again (through
/// whichever address answers) until a leader takes it; any other answer is final. Returns the
/// client that got the answer, to follow the job with.
pub async fn change<T, F, Fut>(
    urls: &str,
    mut call: F,
) -> Result<(CoordinatorClient<Channel>, T), CliError>
where
    F: FnMut(CoordinatorClient<Channel>) -> Fut,
    Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
{
    let started = Instant::now();
    // Short steps: a refusal between leaders costs the coordinator nothing, and a longer wait
    // only delays the change past the takeover (with 200 ms doubling, a leader in place after
    // 0.7 s took the change at 1.4 s).
    let mut delays = ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(100))
        .with_factor(1.5)
        .with_max_delay(Duration::from_millis(500))
        .with_jitter()
        .without_max_times()
        .build();
    loop {
        let client = connect(urls).await?;
        let status = match call(client.clone()).await {
            Ok(reply) => return Ok((client, reply.into_inner())),
            Err(status) => status,
        };
        let retry = qserv_proto::transport::is_between_leaders(&status)
            && started.elapsed() < BETWEEN_LEADERS;
        match delays.next() {
            Some(delay) if retry => {
                eprintln!(
                    "qserv: the coordinators are between leaders and applied nothing ({}); sending the change again in {} ms",
                    qserv_proto::transport::describe_status(&status),
                    delay.as_millis()
                );
                tokio::time::sleep(delay).await;
            }
            _ => return Err(from_status(&status, urls)),
        }
    }
}

async fn connect_one(
    url: &str,
    tls: Option<&ClientTlsConfig>,
) -> Result<CoordinatorClient<Channel>, CliError> {
    let endpoint = secure_endpoint(url, tls)
        .map_err(|e| CliError::new(Exit::Usage, e.to_string()))?
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(30));
    let channel = endpoint.connect().await.map_err(|e| {
        let cause = describe_error(&e);
        certificate_failure(url, &cause).unwrap_or_else(|| unreachable(url, &cause))
    })?;
    Ok(CoordinatorClient::new(channel))
}
