use std::{fs, net::SocketAddr};

use super::*;

fn service(port: u16) -> String {
    format!("apiVersion: v1\nkind: Service\nmetadata: {{name: a}}\nspec: {{clusterIP: 10.96.0.1, ports: [{{port: {port}}}]}}\n")
}

fn captured(config: &ConfigWatch) -> Vec<SocketAddr> {
    config.models.borrow().captured_addrs()
}

async fn eventually(condition: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !condition() {
        assert!(tokio::time::Instant::now() < deadline, "not within 10 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Writes like an editor or a ConfigMap update: a new file renamed over the old one.
fn replace(path: &Path, text: &str) {
    let temp = path.with_extension("tmp~");
    fs::write(&temp, text).unwrap();
    fs::rename(&temp, path).unwrap();
}

#[tokio::test]
async fn reading_the_files_is_not_a_change() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.yaml");
    fs::write(&file, service(80)).unwrap();
    let config = watch(vec![file.clone()]).unwrap();
    // Someone reads the file (as each reload does): no reload may follow. Nothing signals "no
    // reload happened", so give a would-be reload several debounce periods to show up.
    fs::read_to_string(&file).unwrap();
    tokio::time::sleep(DEBOUNCE * 5).await;
    assert_eq!(config.stats.accepted() + config.stats.rejected(), 0);
}

#[tokio::test]
async fn publishes_changes_and_keeps_the_last_good_model() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.yaml");
    fs::write(&file, service(80)).unwrap();
    let mut config = watch(vec![file.clone()]).unwrap();
    assert_eq!(
        captured(&config),
        ["10.96.0.1:80".parse::<SocketAddr>().unwrap()]
    );

    replace(&file, &service(8080));
    tokio::time::timeout(Duration::from_secs(10), config.models.changed())
        .await
        .unwrap()
        .unwrap();
    assert!(config.stats.accepted() >= 1);
    assert_eq!(config.stats.rejected(), 0);

    // A broken edit: rejected, and the last good model stays.
    fs::write(&file, "apiVersion: v1\nkind: Service\nmetadata: {name: a\n").unwrap();
    eventually(|| config.stats.rejected() == 1).await;
    assert!(!config.models.has_changed().unwrap());
    assert_eq!(
        captured(&config),
        ["10.96.0.1:8080".parse::<SocketAddr>().unwrap()]
    );

    // Fixed again: published.
    fs::write(&file, service(9090)).unwrap();
    tokio::time::timeout(Duration::from_secs(10), config.models.changed())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        captured(&config),
        ["10.96.0.1:9090".parse::<SocketAddr>().unwrap()]
    );
}

#[tokio::test]
async fn follows_new_files_in_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("a.yaml"), service(80)).unwrap();
    let mut config = watch(vec![dir.path().to_owned()]).unwrap();
    let other = service(81)
        .replace("name: a", "name: b")
        .replace("10.96.0.1", "10.96.0.2");
    fs::write(dir.path().join("b.yaml"), other).unwrap();
    tokio::time::timeout(Duration::from_secs(10), config.models.changed())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(config.models.borrow_and_update().services().count(), 2);
}

#[test]
fn relevance_ignores_neighbours_of_a_watched_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.yaml");
    fs::write(&file, "").unwrap();
    let relevant = Relevance::new(std::slice::from_ref(&file));
    assert!(relevant.covers(&file));
    assert!(
        relevant.covers(&dir.path().join("..data")),
        "ConfigMap volumes swap ..data"
    );
    assert!(!relevant.covers(&dir.path().join("other.yaml")));
}

#[test]
fn a_missing_path_is_reported_as_missing() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let err = runtime
        .block_on(async { watch(vec![PathBuf::from("/nonexistent/strait.yaml")]).unwrap_err() });
    assert!(
        matches!(err, WatchError::Load(LoadError::NotFound { .. })),
        "{err}"
    );
}
