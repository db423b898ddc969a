//! gRPC server reflection (v1 and v1alpha), so that grpcurl, grpcui or Postman can explore the
//! API of a coordinator or an agent without the `.proto` files. Each binary puts its own
//! authentication in front: reflection is a read like any other.

/// The compiled `.proto` files of package `qserv.v1`.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/qserv_descriptor.bin"));

/// The health service, which every binary serves and reflection lists beside its own.
pub const HEALTH_SERVICE: &str = "grpc.health.v1.Health";

pub type Error = tonic_reflection::server::Error;

fn builder(services: &[&str]) -> tonic_reflection::server::Builder<'static> {
    let mut builder = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .with_service_name(HEALTH_SERVICE);
    for service in services {
        builder = builder.with_service_name(*service);
    }
    builder
}

type Guarded<S, F> = tonic::service::interceptor::InterceptedService<S, F>;

/// Reflection v1 and v1alpha (for grpcurl before 1.9 and Postman) over `services` (fully
/// qualified names such as `qserv.v1.Coordinator`), each behind `check`.
#[allow(clippy::type_complexity)]
pub fn guarded<F>(
    services: &[&str],
    check: F,
) -> Result<
    (
        Guarded<
            tonic_reflection::server::v1::ServerReflectionServer<
                impl tonic_reflection::server::v1::ServerReflection,
            >,
            F,
        >,
        Guarded<
            tonic_reflection::server::v1alpha::ServerReflectionServer<
                impl tonic_reflection::server::v1alpha::ServerReflection,
            >,
            F,
        >,
    ),
    Error,
>
where
    F: tonic::service::Interceptor + Clone,
{
    let v1 = builder(services).build_v1()?;
    let v1alpha = builder(services).build_v1alpha()?;
    Ok((
        Guarded::new(v1, check.clone()),
        Guarded::new(v1alpha, check),
    ))
}
