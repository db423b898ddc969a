use qserv_model::{ServiceStatus, Services};

use super::*;
use crate::domain::{Node, Observation};
use crate::instance::state::Reach;

fn name(n: &str) -> ServiceName {
    ServiceName::parse(n).unwrap_or_else(|e| panic!("{e}"))
}

fn node(role: Role, services: &[(&str, ServiceState)]) -> NodeState {
    let mut node = NodeState::new(
        Node {
            name: "n".to_owned(),
            role,
            agent: "http://n:7080".to_owned(),
        },
        None,
    );
    node.reach = Reach::Reachable;
    node.observed = Some(Observation {
        services: Services::Starting,
        service_states: services
            .iter()
            .map(|(n, s)| ServiceStatus::new(name(n), *s, 1))
            .collect(),
        ..Observation::default()
    });
    node
}

#[test]
fn a_worker_without_a_service_of_the_layout_has_a_layout_problem() {
    let order = ServiceOrder::the_qserv_layout();
    let lacking = node(
        Role::Worker,
        &[
            ("worker-xrootd", ServiceState::Stopped),
            ("worker-cmsd", ServiceState::Stopped),
        ],
    );
    let problem = layout_problem(&order, &lacking).unwrap_or_default();
    assert!(problem.contains("no service worker-repl"), "{problem}");
    let whole = node(
        Role::Worker,
        &[
            ("worker-xrootd", ServiceState::Stopped),
            ("worker-cmsd", ServiceState::Stopped),
            ("worker-repl", ServiceState::Stopped),
        ],
    );
    assert_eq!(layout_problem(&order, &whole), None);
    assert_eq!(layout_problem(&ServiceOrder::default(), &lacking), None);
}

#[test]
fn a_node_may_run_its_roles_services_of_the_waves_started() {
    let order = ServiceOrder::the_qserv_layout();
    assert_eq!(released_through(&order, Role::Czar, 1), Release::none());
    assert_eq!(
        released_through(&order, Role::Czar, 2),
        Release::Only([name("xrootd-manager"), name("cmsd-manager")].into())
    );
    let all_czar = released_through(&order, Role::Czar, 6);
    assert!(all_czar.allows(&name("czar-http")) && !all_czar.allows(&name("worker-repl")));
}

#[test]
fn a_wave_is_ready_waiting_or_failed_on_a_node() {
    let order = ServiceOrder::the_qserv_layout();
    let waves = order.waves();
    let workers = &waves[2];
    let starting = node(
        Role::Worker,
        &[
            ("worker-xrootd", ServiceState::Ready),
            ("worker-cmsd", ServiceState::Starting),
            ("worker-repl", ServiceState::Running),
        ],
    );
    assert_eq!(
        wave_state(workers, &starting),
        WaveState::Waiting("worker-cmsd starting".to_owned())
    );
    let mut failed = starting.clone();
    if let Some(o) = failed.observed.as_mut() {
        o.service_states[1].state = ServiceState::Failed;
        o.service_states[1].exit_code = Some(3);
        o.service_states[1].detail = "it exited".to_owned();
    }
    assert_eq!(
        wave_state(workers, &failed),
        WaveState::Failed {
            service: name("worker-cmsd"),
            why: "it exited (exit code 3)".to_owned()
        }
    );
    // A czar has nothing in the workers' wave: it is ready for it at once.
    assert_eq!(
        wave_state(workers, &node(Role::Czar, &[])),
        WaveState::Ready
    );
    let mut gone = starting;
    gone.reach = Reach::Unreachable("refused".to_owned());
    assert!(matches!(wave_state(workers, &gone), WaveState::Waiting(_)));
    assert_eq!(
        wave_stopped(workers, &failed),
        Some("still running: worker-xrootd ready, worker-repl running".to_owned())
    );
}

#[test]
fn a_service_that_died_since_it_was_seen_ready_is_a_lapse_even_when_started_again() {
    let order = ServiceOrder::the_qserv_layout();
    let waves = order.waves();
    let started: Vec<&OrderedService> = waves[..2].iter().flatten().copied().collect();
    let czar = |state: ServiceState, since: i64| {
        let mut n = node(
            Role::Czar,
            &[
                ("xrootd-manager", state),
                ("cmsd-manager", ServiceState::Ready),
            ],
        );
        n.node.name = "czar-0".to_owned();
        if let Some(o) = n.observed.as_mut() {
            o.service_states[0].since_ms = since;
        }
        n
    };
    let state = |n: NodeState| InstanceState {
        nodes: vec![n],
        ..InstanceState::default()
    };
    let mut seen = ReadySince::new();
    assert_eq!(
        lapse(&started, &state(czar(ServiceState::Ready, 10)), &mut seen),
        None
    );
    assert_eq!(
        lapse(&started, &state(czar(ServiceState::Ready, 10)), &mut seen),
        None
    );
    let again = lapse(&started, &state(czar(ServiceState::Ready, 20)), &mut seen);
    assert!(again.is_some_and(|w| w.contains("czar-0: xrootd-manager stopped being ready")));
    let mut fresh = ReadySince::new();
    let failed = lapse(&started, &state(czar(ServiceState::Failed, 30)), &mut fresh);
    assert!(failed.is_some_and(|w| w.starts_with("czar-0: xrootd-manager")));
}
