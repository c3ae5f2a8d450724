//! What a config change costs the Kubernetes source, on a synthetic cluster of 500 Services and
//! 5 000 Pods in 10 namespaces: reading and checking one object (`Checked::of`, done once per
//! changed object), assembling every checked object into a load (the checks across objects), and
//! building the model, against re-reading every object as well, as each rebuild did before
//! objects were kept checked (with today's loader and selector index: this shows what keeping
//! objects checked saves, not the selector index's share). `cargo bench -p strait --bench
//! config_rebuild`.

use std::{path::PathBuf, sync::Arc};

use criterion::{criterion_group, criterion_main, Criterion};
use strait::config::{assemble, Checked, Model};

const SERVICES: usize = 500;
const PODS_PER_SERVICE: usize = 10;
const NAMESPACES: usize = 10;

/// The cluster's objects as the API sends them (JSON), each with the name it is loaded under.
fn cluster() -> Vec<(Arc<std::path::Path>, String)> {
    let mut objects = Vec::new();
    for s in 0..SERVICES {
        let ns = format!("ns{}", s % NAMESPACES);
        let vip = format!("10.96.{}.{}", s / 250, s % 250 + 1);
        let service = format!(
            r#"{{"apiVersion":"v1","kind":"Service","metadata":{{"name":"svc{s}","namespace":"{ns}","uid":"u{s}","resourceVersion":"1"}},"spec":{{"clusterIP":"{vip}","selector":{{"app":"app{s}"}},"ports":[{{"name":"grpc","port":50051,"targetPort":"grpc"}}]}}}}"#
        );
        objects.push((format!("kubernetes:Service/{ns}/svc{s}"), service));
        for p in 0..PODS_PER_SERVICE {
            let ip = format!("10.{}.{}.{}", s / 250 + 1, s % 250, p + 1);
            let pod = format!(
                r#"{{"apiVersion":"v1","kind":"Pod","metadata":{{"name":"p{s}-{p}","namespace":"{ns}","uid":"u{s}-{p}","labels":{{"app":"app{s}","version":"v1"}}}},"spec":{{"nodeName":"node-1","containers":[{{"name":"c","image":"img","ports":[{{"name":"grpc","containerPort":50051}}]}}]}},"status":{{"phase":"Running","podIP":"{ip}"}}}}"#
            );
            objects.push((format!("kubernetes:Pod/{ns}/p{s}-{p}"), pod));
        }
    }
    objects
        .into_iter()
        .map(|(origin, text)| (Arc::from(PathBuf::from(origin)), text))
        .collect()
}

fn rebuild(c: &mut Criterion) {
    let objects = cluster();
    let checked: Vec<Checked> = objects
        .iter()
        .map(|(origin, text)| Checked::of(origin.clone(), text))
        .collect();
    let mut group = c.benchmark_group("config_rebuild_5500_objects");
    group.sample_size(20);
    group.bench_function("check_one_object", |b| {
        let (origin, text) = &objects[1];
        b.iter(|| Checked::of(origin.clone(), text))
    });
    group.bench_function("assemble_and_build_model", |b| {
        b.iter(|| Model::from_resources(&assemble(&checked).resources))
    });
    group.bench_function("reread_everything_and_build_model", |b| {
        b.iter(|| {
            let checked: Vec<Checked> = objects
                .iter()
                .map(|(origin, text)| Checked::of(origin.clone(), text))
                .collect();
            Model::from_resources(&assemble(&checked).resources)
        })
    });
    group.finish();
}

criterion_group!(benches, rebuild);
criterion_main!(benches);
