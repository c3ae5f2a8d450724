//! End-to-end, the balance criterion: through eBPF capture, one client, one HTTP/2
//! connection to the Service VIP, 300 unary calls: each of 3 replicas answers 33 % ± 10 %.
//! A test binary of its own, so that no other test shares the CPU with it: the default
//! balancer weighs latency, and a busy machine's noise is not the balancer's.

use std::{fs, net::SocketAddr};

use anyhow::Result;
use strait_tests::{
    greeter::{
        self,
        loopback::{config_dir, greeter_manifests, GREETER_VIP, REPLICAS},
        CallOptions, Implementation, ServeOptions,
    },
    lab::{self, Lab},
};

#[test]
fn one_connection_to_the_vip_is_balanced_per_call() -> Result<()> {
    if !lab::require_privileges("one_connection_to_the_vip_is_balanced_per_call") {
        return Ok(());
    }
    let mut lab = Lab::new("grpc-vip")?;
    let mut backends = Vec::new();
    for name in REPLICAS {
        let pod = lab.add_pod(name)?;
        let listen: SocketAddr = "0.0.0.0:50051".parse()?;
        lab.serve_greeter(&pod, Implementation::Rust, &ServeOptions::new(listen, name))?;
        backends.push((pod.ip, 50051));
    }
    let client = lab.add_pod("client")?;
    let config = config_dir("vip")?;
    fs::write(config.join("greeter.yaml"), greeter_manifests(&backends))?;
    let _strait = lab.start_strait(&config, &[] as &[&str])?;

    let mut clients = vec![Implementation::Rust];
    if greeter::require_python_grpc(
        "one_connection_to_the_vip_is_balanced_per_call (grpcio client)",
    ) {
        clients.push(Implementation::Python);
    }
    for implementation in clients {
        let calls = CallOptions::new(GREETER_VIP.parse()?).count(300);
        let report = lab.greeter_call(&client, implementation, &calls)?;
        let summary = &report.summary;
        assert_eq!(summary.ok, 300, "{implementation:?}: {summary:?}");
        // Every replica answers a third of the calls (± 10 % of them) made over the one
        // connection: a client stuck to one replica (connection-level balancing) fails this,
        // and so does a balancer that favours one.
        eprintln!(
            "{implementation:?} client, 300 calls over one connection: {:?}",
            summary.by_instance
        );
        for replica in REPLICAS {
            let share = summary.from_instance(replica);
            assert!(
                (70..=130).contains(&share),
                "{implementation:?}: {replica} answered {share} of 300: {summary:?}"
            );
        }
    }
    fs::remove_dir_all(&config)?;
    Ok(())
}
