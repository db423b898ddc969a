//! The Kubernetes examples: a StatefulSet per role with MariaDB and the agent as a sidecar, the
//! Qserv container gated by the agent, probes on the agent's plaintext HTTP port, secrets as
//! files; two coordinators and the three-node Galera store they share.

use std::path::Path;

use yaml_rust2::{Yaml, YamlLoader};

fn documents(file: &str) -> Vec<Yaml> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy/kubernetes")
        .join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    YamlLoader::load_from_str(&text).unwrap_or_else(|e| panic!("{file} is not valid YAML: {e}"))
}

fn of_kind<'a>(docs: &'a [Yaml], kind: &str) -> &'a Yaml {
    docs.iter()
        .find(|d| d["kind"].as_str() == Some(kind))
        .unwrap_or_else(|| panic!("no {kind}"))
}

fn container<'a>(pod: &'a Yaml, name: &str) -> &'a Yaml {
    pod["containers"]
        .as_vec()
        .into_iter()
        .flatten()
        .find(|c| c["name"].as_str() == Some(name))
        .unwrap_or_else(|| panic!("no container {name}"))
}

fn probe_path(container: &Yaml, probe: &str) -> Option<String> {
    container[probe]["httpGet"]["path"]
        .as_str()
        .map(str::to_owned)
}

#[test]
fn every_role_has_mariadb_an_agent_sidecar_and_a_gated_qserv_container() {
    for role in ["czar", "worker", "repl"] {
        let docs = documents(&format!("{role}.yaml"));
        let set = of_kind(&docs, "StatefulSet");
        let pod = &set["spec"]["template"]["spec"];
        container(pod, "mariadb");
        let agent = container(pod, "agent");
        assert_eq!(
            probe_path(agent, "readinessProbe").as_deref(),
            Some("/readyz"),
            "{role}"
        );
        assert_eq!(
            probe_path(agent, "livenessProbe").as_deref(),
            Some("/healthz"),
            "{role}"
        );
        assert_eq!(
            agent["readinessProbe"]["httpGet"]["port"].as_str(),
            Some("http"),
            "{role}"
        );
        let http = agent["ports"]
            .as_vec()
            .into_iter()
            .flatten()
            .find(|p| p["name"].as_str() == Some("http"));
        assert_eq!(
            http.and_then(|p| p["containerPort"].as_i64()),
            Some(7081),
            "{role}"
        );
        let env: Vec<(String, String)> = agent["env"]
            .as_vec()
            .into_iter()
            .flatten()
            .map(|e| {
                (
                    e["name"].as_str().unwrap_or("").to_owned(),
                    e["value"].as_str().unwrap_or("").to_owned(),
                )
            })
            .collect();
        assert!(
            env.iter()
                .any(|(k, v)| k == "QSERV_AGENT_ROLE" && v == role),
            "{role}"
        );
        assert!(
            env.iter()
                .any(|(k, v)| k == "QSERV_AGENT_SECRETS_FILE" && v.starts_with("/secrets/")),
            "{role}"
        );
        assert!(
            !env.iter().any(|(k, _)| k.contains("PASSWORD")),
            "{role}: secrets come as files, never as environment"
        );
        // One container per service of the role in Qserv's layout, each Qserv's own
        // entrypoint subcommand behind its own gate; the agent's services are those, probe-only.
        let order = qserv_model::ServiceOrder::the_qserv_layout();
        let role_of = qserv_model::Role::parse(role).unwrap_or_else(|e| panic!("{e}"));
        let services: Vec<String> = order
            .node_order(role_of)
            .into_iter()
            .map(ToString::to_string)
            .collect();
        for service in &services {
            let c = container(pod, service);
            let command: Vec<&str> = c["command"]
                .as_vec()
                .into_iter()
                .flatten()
                .filter_map(Yaml::as_str)
                .collect();
            let gate =
                format!("qserv-agent gate --agent https://localhost:7080 --service {service} ");
            let exec = format!("&& exec entrypoint {service} ");
            assert!(
                command
                    .iter()
                    .any(|c| c.contains(&gate) && c.contains(&exec)),
                "{role}/{service}: {command:?}"
            );
        }
        let config = of_kind(&docs, "ConfigMap");
        let agent_toml: toml::Table = config["data"]["agent.toml"]
            .as_str()
            .and_then(|t| toml::from_str(t).ok())
            .unwrap_or_else(|| panic!("{role}: the agent's ConfigMap holds agent.toml"));
        assert_eq!(
            agent_toml["service-controller"].as_str(),
            Some("none"),
            "{role}"
        );
        let declared: Vec<&toml::Value> = agent_toml["services"]
            .as_array()
            .into_iter()
            .flatten()
            .collect();
        let names: Vec<&str> = declared.iter().filter_map(|s| s["name"].as_str()).collect();
        assert_eq!(names, services, "{role}");
        for entry in &declared {
            let table = entry.as_table().cloned().unwrap_or_default();
            assert!(
                !table.contains_key("exec") && !table.contains_key("unit"),
                "{role}: {entry}"
            );
            assert!(
                table
                    .get("ready")
                    .and_then(|r| r.as_str())
                    .is_some_and(|r| r.starts_with("tcp://") || r.starts_with("http://")),
                "{role}: {entry}"
            );
        }
        assert!(
            env.iter()
                .any(|(k, v)| k == "QSERV_AGENT_CONFIG" && v == "/etc/qserv-agent/agent.toml"),
            "{role}"
        );
        for volume in ["secrets", "pki"] {
            let v = pod["volumes"]
                .as_vec()
                .into_iter()
                .flatten()
                .find(|v| v["name"].as_str() == Some(volume));
            assert!(
                v.is_some_and(|v| v["secret"]["secretName"].as_str().is_some()),
                "{role}: {volume} is a Secret"
            );
        }
        let mounts = agent["volumeMounts"].as_vec().cloned().unwrap_or_default();
        assert!(
            mounts
                .iter()
                .any(|m| m["name"].as_str() == Some("secrets")
                    && m["readOnly"].as_bool() == Some(true)),
            "{role}: secrets mounted read-only"
        );

        // One certificate per pod: the agent picks the files issued for its own pod name.
        for (key, suffix) in [
            ("QSERV_AGENT_TLS_CERT", ".pem"),
            ("QSERV_AGENT_TLS_KEY", ".key"),
        ] {
            assert!(
                env.iter().any(|(k, v)| k == key
                    && v.contains("$(QSERV_AGENT_NAME)")
                    && v.ends_with(suffix)),
                "{role}: {key} names the pod's own file"
            );
        }
        let name_first = env.iter().position(|(k, _)| k == "QSERV_AGENT_NAME");
        let cert_at = env.iter().position(|(k, _)| k == "QSERV_AGENT_TLS_CERT");
        assert!(
            name_first < cert_at && name_first.is_some(),
            "{role}: $(QSERV_AGENT_NAME) is defined before it is used"
        );

        // The agent's key never reaches the Qserv container: it mounts only the gate's.
        let volume_secret = |name: &str| {
            pod["volumes"]
                .as_vec()
                .into_iter()
                .flatten()
                .find(|v| v["name"].as_str() == Some(name))
                .and_then(|v| v["secret"]["secretName"].as_str())
                .map(str::to_owned)
        };
        let agent_pki = volume_secret("pki");
        for service in &services {
            let qserv = container(pod, service);
            let qserv_mounts = qserv["volumeMounts"].as_vec().cloned().unwrap_or_default();
            for mount in &qserv_mounts {
                let name = mount["name"].as_str().unwrap_or_default();
                assert!(
                    volume_secret(name).is_none() || volume_secret(name) != agent_pki,
                    "{role}: the Qserv container mounts the agent's certificates ({name})"
                );
            }
            assert_eq!(
                qserv_mounts
                    .iter()
                    .find(|m| m["name"].as_str() == Some("gate-pki"))
                    .and_then(|m| m["readOnly"].as_bool()),
                Some(true),
                "{role}: the gate's own certificate, read-only"
            );
        }
        assert_eq!(volume_secret("gate-pki").as_deref(), Some("qserv-gate-pki"));
        for service in &services {
            let qserv = container(pod, service);
            let qserv_env: Vec<String> = qserv["env"]
                .as_vec()
                .into_iter()
                .flatten()
                .filter_map(|e| e["value"].as_str().map(str::to_owned))
                .collect();
            assert!(
                qserv_env.iter().all(|v| !v.starts_with("/pki/")),
                "{role}: {qserv_env:?}"
            );
        }
    }
}

#[test]
fn two_coordinators_share_a_store_with_tls_and_probes() {
    let docs = documents("coordinator.yaml");
    let set = of_kind(&docs, "StatefulSet");
    assert_eq!(
        set["spec"]["replicas"].as_i64(),
        Some(2),
        "a leader and a follower"
    );
    let pod = &set["spec"]["template"]["spec"];
    let coordinator = container(pod, "coordinator");
    assert_eq!(
        probe_path(coordinator, "readinessProbe").as_deref(),
        Some("/readyz")
    );
    assert_eq!(
        probe_path(coordinator, "livenessProbe").as_deref(),
        Some("/healthz")
    );
    let args: Vec<&str> = coordinator["args"]
        .as_vec()
        .into_iter()
        .flatten()
        .filter_map(Yaml::as_str)
        .collect();
    for flag in [
        "--tls-cert=",
        "--tls-key=",
        "--tls-ca=",
        "--spec=",
        "--lease-ttl=",
    ] {
        assert!(
            args.iter().any(|a| a.starts_with(flag)),
            "{flag} missing: {args:?}"
        );
    }
    let env = |name: &str| {
        coordinator["env"]
            .as_vec()
            .into_iter()
            .flatten()
            .find(|e| e["name"].as_str() == Some(name))
            .cloned()
            .unwrap_or(Yaml::BadValue)
    };
    assert_eq!(
        env("QSERV_COORDINATOR_ID")["valueFrom"]["fieldRef"]["fieldPath"].as_str(),
        Some("metadata.name"),
        "each pod has its own id"
    );
    let advertise = env("QSERV_COORDINATOR_ADVERTISE")["value"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        advertise.starts_with("https://$(QSERV_COORDINATOR_ID).qserv-coordinator-peers"),
        "{advertise}"
    );
    assert!(
        env("QSERV_COORDINATOR_STORE")["valueFrom"]["configMapKeyRef"]["name"]
            .as_str()
            .is_some()
    );
    assert_eq!(
        env("QSERV_COORDINATOR_STORE_PASSWORD_FILE")["value"].as_str(),
        Some("/store/password"),
        "the password is a file, never a variable"
    );
    assert!(matches!(
        env("QSERV_COORDINATOR_STORE_PASSWORD"),
        Yaml::BadValue
    ));
    let hosts = docs
        .iter()
        .find(|d| {
            d["kind"].as_str() == Some("ConfigMap")
                && d["metadata"]["name"].as_str() == Some("qserv-coordinator-store")
        })
        .and_then(|d| d["data"]["hosts"].as_str())
        .unwrap_or_default()
        .to_owned();
    assert!(
        hosts.split(',').count() >= 3
            && hosts.split(',').all(|h| {
                let user = h
                    .strip_prefix("mysql://")
                    .and_then(|rest| rest.split_once('@'))
                    .map(|(user, _)| user);
                user.is_some_and(|u| !u.contains(':'))
            }),
        "the Galera hosts, without a password: {hosts}"
    );
    let services: Vec<&Yaml> = docs
        .iter()
        .filter(|d| d["kind"].as_str() == Some("Service"))
        .collect();
    assert!(
        services
            .iter()
            .any(|s| s["spec"]["clusterIP"].as_str() == Some("None")
                && s["metadata"]["name"].as_str() == Some("qserv-coordinator-peers")),
        "a headless Service names each coordinator"
    );
    let spec = docs
        .iter()
        .find(|d| d["metadata"]["name"].as_str() == Some("qserv-instance"))
        .map_or(&Yaml::BadValue, |d| &d["data"]["instance.toml"])
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(spec.contains("https://"), "agents are reached over TLS");
}

/// The elements of a YAML list (none when it is not a list).
fn items(list: &Yaml) -> impl Iterator<Item = &Yaml> {
    list.as_vec().into_iter().flatten()
}

/// The element of a list whose `field` is `value`.
fn with<'a>(list: &'a Yaml, field: &str, value: &str) -> &'a Yaml {
    items(list)
        .find(|item| item[field].as_str() == Some(value))
        .unwrap_or(&Yaml::BadValue)
}

fn named<'a>(docs: &'a [Yaml], kind: &str, name: &str) -> &'a Yaml {
    docs.iter()
        .find(|d| d["kind"].as_str() == Some(kind) && d["metadata"]["name"].as_str() == Some(name))
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

fn env_value(container: &Yaml, key: &str) -> String {
    with(&container["env"], "name", key)["value"]
        .as_str()
        .unwrap_or_else(|| panic!("no {key}"))
        .to_owned()
}

/// The Secret and key a pod reads `file` from.
fn secret_file(pod: &Yaml, file: &str) -> (String, String) {
    let (dir, key) = file.rsplit_once('/').unwrap_or_default();
    let mount = items(&pod["containers"])
        .flat_map(|c| items(&c["volumeMounts"]))
        .find(|m| m["mountPath"].as_str() == Some(dir))
        .unwrap_or_else(|| panic!("nothing mounted at {dir}"));
    let volume = with(
        &pod["volumes"],
        "name",
        mount["name"].as_str().unwrap_or_default(),
    );
    let secret = volume["secret"]["secretName"].as_str().unwrap_or_default();
    (secret.to_owned(), key.to_owned())
}

/// The store the coordinators are pointed at is the one `store.yaml` runs: three Galera nodes
/// under their stable names, founded by the first, its account made from the same Secret the
/// coordinators read their password from.
#[test]
fn the_coordinators_store_is_a_three_node_galera_cluster() {
    let docs = documents("store.yaml");
    let set = of_kind(&docs, "StatefulSet");
    let name = set["metadata"]["name"].as_str().unwrap_or_default();
    let replicas = set["spec"]["replicas"].as_i64().unwrap_or_default();
    assert_eq!(replicas, 3, "a Galera majority survives one lost node");
    assert_eq!(
        set["spec"]["podManagementPolicy"].as_str(),
        Some("OrderedReady"),
        "joiners start once a synced node exists"
    );
    let service = set["spec"]["serviceName"].as_str().unwrap_or_default();
    let headless = named(&docs, "Service", service);
    assert_eq!(headless["spec"]["clusterIP"].as_str(), Some("None"));
    assert_eq!(
        headless["spec"]["publishNotReadyAddresses"].as_bool(),
        Some(true),
        "joiners reach each other before they are ready"
    );

    let pod = &set["spec"]["template"]["spec"];
    let mariadb = container(pod, "mariadb");
    assert_eq!(
        mariadb["command"][0].as_str(),
        Some("/usr/local/bin/store-entrypoint.sh")
    );
    let entrypoint = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/docker/store-entrypoint.sh"),
    )
    .unwrap_or_else(|e| panic!("store-entrypoint.sh: {e}"));
    for key in [
        "STORE_PEERS",
        "STORE_FOUNDER",
        "STORE_ACCOUNT",
        "STORE_PASSWORD_FILE",
    ] {
        env_value(mariadb, key);
        assert!(entrypoint.contains(key), "the entrypoint reads {key}");
    }
    let pods: Vec<String> = (0..replicas).map(|i| format!("{name}-{i}")).collect();
    let peers: Vec<String> = pods.iter().map(|p| format!("{p}.{service}")).collect();
    assert_eq!(env_value(mariadb, "STORE_PEERS"), peers.join(","));
    assert_eq!(
        env_value(mariadb, "STORE_FOUNDER"),
        pods[0],
        "the pod's host name is its own name"
    );

    // The coordinators' --store list names exactly these nodes, with the account made here.
    let coordinators = documents("coordinator.yaml");
    let account = env_value(mariadb, "STORE_ACCOUNT");
    let expected: Vec<String> = peers
        .iter()
        .map(|p| format!("mysql://{account}@{p}:3306/{account}"))
        .collect();
    assert_eq!(
        named(&coordinators, "ConfigMap", "qserv-coordinator-store")["data"]["hosts"].as_str(),
        Some(expected.join(",").as_str())
    );

    // One Secret, one key: the store makes the account with the password the coordinators use.
    let coordinator_pod = &of_kind(&coordinators, "StatefulSet")["spec"]["template"]["spec"];
    let coordinator_file = env_value(
        container(coordinator_pod, "coordinator"),
        "QSERV_COORDINATOR_STORE_PASSWORD_FILE",
    );
    let (secret, key) = secret_file(pod, &env_value(mariadb, "STORE_PASSWORD_FILE"));
    assert_eq!(
        (secret.clone(), key.clone()),
        secret_file(coordinator_pod, &coordinator_file)
    );
    assert_eq!(secret, "qserv-coordinator-store");
    let secrets = documents("secrets.example.yaml");
    assert!(
        !named(&secrets, "Secret", &secret)["stringData"][key.as_str()].is_badvalue(),
        "the example Secret holds the key both mount"
    );

    // Kept across restarts: a node rejoins with its own data instead of founding anew.
    let data = with(&mariadb["volumeMounts"], "mountPath", "/var/lib/mysql")["name"]
        .as_str()
        .unwrap_or_default();
    assert!(
        items(&set["spec"]["volumeClaimTemplates"])
            .any(|c| c["metadata"]["name"].as_str() == Some(data)),
        "the data directory is a persistent volume"
    );
    assert!(
        items(&mariadb["readinessProbe"]["exec"]["command"])
            .filter_map(Yaml::as_str)
            .any(|c| c.contains("Synced") && c.contains("account-ready")),
        "ready once synced and the account exists"
    );
}
