use super::*;
use crate::domain::Observation;
use crate::domain::job::{DeleteParams, UpParams, WorkersRemoveParams};
use crate::instance::{Epoch, InstanceState, NodeState, Reach, SchemaState};
use crate::store::NodeRecord;

fn node(name: &str, role: Role) -> Node {
    Node {
        name: name.to_owned(),
        role,
        agent: format!("http://{name}:7080"),
    }
}

fn facts(mode: Mode) -> Facts {
    let nodes = [
        node("czar-0", Role::Czar),
        node("repl-0", Role::Repl),
        node("worker-1", Role::Worker),
        node("worker-2", Role::Worker),
    ];
    Facts {
        mode,
        inventory: Some(Inventory {
            name: "dr1".to_owned(),
            mode,
            epoch: Epoch::from_wire(3),
            nodes: nodes
                .iter()
                .map(|n| NodeRecord {
                    spec: n.clone(),
                    registered_id: None,
                })
                .collect(),
            services: Default::default(),
        }),
        status: InstanceState {
            instance: Some("dr1".to_owned()),
            nodes: nodes
                .iter()
                .map(|n| NodeState::new(n.clone(), None))
                .collect(),
            ..InstanceState::default()
        },
        newcomers: BTreeMap::new(),
        holdings: None,
    }
}

fn remove(name: &str) -> JobSpec {
    JobSpec::WorkersRemove(WorkersRemoveParams {
        name: name.to_owned(),
        purge: true,
        forget_replicas: false,
    })
}

#[test]
fn the_guard_table_comes_first() {
    let spec = JobSpec::Delete(DeleteParams {
        confirm: "dr1".to_owned(),
    });
    assert!(
        admit(&spec, &facts(Mode::Normal)).is_err_and(|e| e.contains("run 'qserv down' first"))
    );
    assert_eq!(admit(&spec, &facts(Mode::Maintenance)), Ok(Verdict::Run));
    assert!(matches!(
        admit(&JobSpec::down(), &facts(Mode::Maintenance)),
        Ok(Verdict::NoOp(_))
    ));
}

#[test]
fn delete_needs_the_exact_name() {
    let wrong = JobSpec::Delete(DeleteParams {
        confirm: "dr2".to_owned(),
    });
    assert!(admit(&wrong, &facts(Mode::Maintenance)).is_err_and(|e| e.contains("does not match")));
}

#[test]
fn remove_takes_only_existing_workers_and_never_the_last() {
    let f = facts(Mode::Maintenance);
    assert!(admit(&remove("czar-0"), &f).is_err_and(|e| e.contains("not a worker")));
    assert!(admit(&remove("worker-9"), &f).is_err_and(|e| e.contains("no node worker-9")));
    assert_eq!(admit(&remove("worker-1"), &f), Ok(Verdict::Run));
    let mut one = f.clone();
    if let Some(inventory) = &mut one.inventory {
        inventory.nodes.retain(|n| n.spec.name != "worker-2");
    }
    assert!(admit(&remove("worker-1"), &one).is_err_and(|e| e.contains("last worker")));
}

#[test]
fn up_is_refused_while_an_identity_is_in_doubt() {
    let mut f = facts(Mode::Maintenance);
    f.status.nodes[2].identity_problem = Some("the agent calls itself 'worker-2'".to_owned());
    let up = JobSpec::Up(UpParams {
        timeout_ms: 0,
        service_timeout_ms: 0,
    });
    assert!(admit(&up, &f).is_err_and(|e| e.contains("worker-1: the agent calls itself")));
    f.status.nodes[2].identity_problem = None;
    f.status.nodes[3].epoch_problem = Some("the agent has seen epoch 9".to_owned());
    assert!(admit(&up, &f).is_err_and(|e| e.contains("worker-2: the agent has seen epoch 9")));
}

#[test]
fn a_new_worker_must_answer_as_itself() {
    let mut f = facts(Mode::Maintenance);
    let new = node("worker-3", Role::Worker);
    let spec = JobSpec::WorkersAdd(WorkersAddParams {
        instance: "dr1".to_owned(),
        nodes: vec![new.clone()],
    });
    f.newcomers.insert(
        new.name.clone(),
        Err(AgentError::Unreachable("connection refused".to_owned())),
    );
    assert!(admit(&spec, &f).is_err_and(|e| e.contains("does not answer")));
    let mut observed = Observation {
        name: "worker-4".to_owned(),
        role: Some(Role::Worker),
        protocol_version: qserv_proto::PROTOCOL_VERSION,
        boot_id: "b".to_owned(),
        seq: 1,
        db_ready: true,
        services: crate::domain::Services::Unknown,
        ..Observation::default()
    };
    f.newcomers.insert(new.name.clone(), Ok(observed.clone()));
    assert!(admit(&spec, &f).is_err_and(|e| e.contains("calls itself 'worker-4'")));
    observed.name = "worker-3".to_owned();
    f.newcomers.insert(new.name.clone(), Ok(observed.clone()));
    assert_eq!(admit(&spec, &f), Ok(Verdict::Run));
    let other = JobSpec::WorkersAdd(WorkersAddParams {
        instance: "dr2".to_owned(),
        nodes: vec![new],
    });
    assert!(admit(&other, &f).is_err_and(|e| e.contains("names instance 'dr2'")));
}

#[test]
fn a_change_meant_for_another_instance_is_refused_naming_both() {
    assert_eq!(check_instance(None, "dr1"), Ok(()));
    assert_eq!(check_instance(Some("dr1"), "dr1"), Ok(()));
    assert_eq!(
        check_instance(Some("dr1"), ""),
        Ok(()),
        "nothing installed yet"
    );
    let why = check_instance(Some("dr1"), "dr2").err().unwrap_or_default();
    assert!(why.contains("'dr2'") && why.contains("'dr1'"), "{why}");
}

fn restart(nodes: &[&str], role: Option<Role>) -> JobSpec {
    JobSpec::Restart(crate::domain::job::RestartParams {
        nodes: nodes.iter().map(|n| (*n).to_owned()).collect(),
        role,
        parallel: 1,
        node_timeout_ms: 60_000,
        settle_ms: 0,
        activity: Default::default(),
        services: Vec::new(),
    })
}

/// Facts of a healthy instance in `mode`: every agent reachable and compatible, every schema
/// at target.
fn healthy(mode: Mode) -> Facts {
    let mut f = facts(mode);
    for node in &mut f.status.nodes {
        node.reach = Reach::Reachable;
        node.observed = Some(Observation {
            name: node.name().to_owned(),
            role: Some(node.role()),
            protocol_version: qserv_proto::PROTOCOL_VERSION,
            db_ready: true,
            ..Observation::default()
        });
        node.schema = vec![SchemaState {
            module: qserv_migrations::Module::Worker,
            version: Some(4),
            target: Some(4),
            dirty: false,
            dirty_reason: String::new(),
        }];
    }
    f
}

#[test]
fn a_rolling_restart_runs_in_normal_and_is_nothing_in_maintenance() {
    assert_eq!(
        admit(&restart(&[], None), &healthy(Mode::Normal)),
        Ok(Verdict::Run)
    );
    assert!(matches!(
        admit(&restart(&[], None), &healthy(Mode::Maintenance)),
        Ok(Verdict::NoOp(why)) if why.contains("services are stopped")
    ));
    assert!(admit(&restart(&[], None), &healthy(Mode::Installing)).is_err());
}

#[test]
fn a_rolling_restart_needs_every_schema_at_target_and_compatible_agents() {
    let spec = restart(&["worker-1"], None);
    let mut f = healthy(Mode::Normal);
    f.status.nodes[3].schema[0].version = Some(3);
    assert!(
        admit(&spec, &f).is_err_and(|e| e.contains("worker-2: worker is at version 3 (target 4)")),
        "any node, not only those restarted"
    );
    let mut f = healthy(Mode::Normal);
    if let Some(observed) = f.status.nodes[0].observed.as_mut() {
        observed.protocol_version = 1;
    }
    assert!(admit(&spec, &f).is_err_and(
        |e| e.contains("czar-0: agent speaks protocol 1") && e.contains("upgrade the agent")
    ));
    let mut f = healthy(Mode::Normal);
    f.status.nodes[2].reach = Reach::Unreachable("connection refused".to_owned());
    assert!(admit(&spec, &f).is_err_and(|e| e.contains("worker-1: its agent cannot be reached")));
    f.status.nodes[2].reach = Reach::Reachable;
    f.status.nodes[3].reach = Reach::Unreachable("connection refused".to_owned());
    assert_eq!(
        admit(&spec, &f),
        Ok(Verdict::Run),
        "worker-2 is not restarted"
    );
}

#[test]
fn a_rolling_restart_picks_nodes_by_name_and_role() {
    let f = healthy(Mode::Normal);
    assert!(admit(&restart(&["worker-9"], None), &f).is_err_and(|e| e.contains("worker-9")));
    let JobSpec::Restart(params) = restart(&[], Some(Role::Worker)) else {
        unreachable!("built as a restart")
    };
    let picked: Vec<String> = restart_targets(&params, &f.status)
        .into_iter()
        .map(|n| n.name)
        .collect();
    assert_eq!(picked, ["worker-1", "worker-2"]);
    assert!(
        admit(&restart(&["czar-0"], Some(Role::Worker)), &f)
            .is_err_and(|e| e.contains("nothing would restart"))
    );
}

/// The czar reports one query executing.
fn querying(mut f: Facts) -> Facts {
    for node in &mut f.status.nodes {
        if node.name() == "czar-0"
            && let Some(observed) = node.observed.as_mut()
        {
            observed.activity.queries = Some(crate::domain::activity::Count {
                open: 1,
                oldest: Some(42),
            });
        }
    }
    f
}

#[test]
fn down_under_a_query_refuses_unless_it_drains_or_forces() {
    let busy = querying(healthy(Mode::Normal));
    let down = |drain_ms, force| {
        JobSpec::Down(crate::domain::job::DownParams {
            activity: crate::domain::activity::ActivityPolicy { drain_ms, force },
        })
    };
    assert!(
        admit(&down(0, false), &busy)
            .is_err_and(|e| e.contains("1 query executing (oldest 42)") && e.contains("--drain"))
    );
    assert_eq!(admit(&down(2000, false), &busy), Ok(Verdict::Run));
    assert_eq!(admit(&down(0, true), &busy), Ok(Verdict::Run));
    assert_eq!(
        overridden(&down(0, true), &busy).as_deref(),
        Some("1 query executing (oldest 42)")
    );
    assert_eq!(overridden(&down(0, false), &busy), None);
    assert_eq!(
        admit(&down(0, false), &healthy(Mode::Normal)),
        Ok(Verdict::Run)
    );
    // What an unreachable czar last said is not what runs now.
    let mut gone = busy.clone();
    for node in &mut gone.status.nodes {
        node.reach = Reach::Unreachable("connection refused".to_owned());
    }
    assert_eq!(admit(&down(0, false), &gone), Ok(Verdict::Run));
    assert!(
        admit(&restart(&[], None), &busy).is_err_and(|e| e.contains("a rolling restart")),
        "a restart stops the czar's services too"
    );
}

#[test]
fn a_worker_holding_replicas_leaves_only_with_forget_replicas() {
    let mut f = facts(Mode::Maintenance);
    f.holdings = Some(Ok(crate::agents::api::Holdings {
        databases: vec![crate::agents::api::DatabaseHoldings {
            database: "dp1".to_owned(),
            replicas: 6,
            sole_copies: 3,
            sole_chunks: vec![1, 2, 3],
            contributions: 2,
        }],
        cascaded: vec![("replica".to_owned(), 6)],
    }));
    assert!(
        admit(&remove("worker-1"), &f)
            .is_err_and(|e| e.contains("database dp1") && e.contains("(1, 2, 3)"))
    );
    let forget = JobSpec::WorkersRemove(WorkersRemoveParams {
        name: "worker-1".to_owned(),
        purge: false,
        forget_replicas: true,
    });
    assert_eq!(admit(&forget, &f), Ok(Verdict::Run));
    f.holdings = Some(Err(AgentError::Unreachable("refused".to_owned())));
    assert!(admit(&remove("worker-1"), &f).is_err_and(|e| e.contains("cannot read what removing")));
    f.holdings = Some(Ok(crate::agents::api::Holdings::default()));
    assert_eq!(admit(&remove("worker-1"), &f), Ok(Verdict::Run));
}
