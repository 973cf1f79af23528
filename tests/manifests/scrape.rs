//! End to end: the scrape jobs on a real Flink scrape, the server on what they collect.

use crate::*;

// ---------------------------------------------------------------------------------------------
// End to end: the scrape jobs on a real Flink scrape, the server on what they collect.
// ---------------------------------------------------------------------------------------------

/// Serves `body` at any path on a loopback port, for as long as the test process lives.
pub(crate) fn serve_text(body: String) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut request = Vec::new();
            let mut buf = [0u8; 4096];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(body.as_bytes());
        }
    });
    port
}

pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("address")
        .port()
}

/// A child process, killed when the test ends however it ends.
pub(crate) struct Killed(pub(crate) Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The sections of the real scrape's second capture (one JobManager, the TaskManager running
/// the source, the other TaskManagers), keyed by their header line.
pub(crate) fn scrape_sections() -> Vec<(String, String)> {
    let text = read(&repo().join("tests/data/flink-1.20.5-scrape.txt"));
    let part_b = &text[text.find("# PART B").expect("PART B")..];
    let mut sections: Vec<(String, String)> = Vec::new();
    for line in part_b.lines() {
        if line.starts_with("# =====") {
            sections.push((line.to_string(), String::new()));
        } else if let Some((_, body)) = sections.last_mut() {
            body.push_str(line);
            body.push('\n');
        }
    }
    sections
}

/// Prometheus' name for a Kubernetes label or annotation key in discovery labels.
pub(crate) fn sd_name(key: &str) -> String {
    key.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

/// A pod as the API server holds it once its controller has created it: the template's labels
/// plus those the controller adds, and who owns it.
pub(crate) struct CreatedPod<'a> {
    pub(crate) name: String,
    pub(crate) namespace: String,
    pub(crate) labels: BTreeMap<String, String>,
    pub(crate) template: &'a PodTemplateSpec,
    pub(crate) controller: (&'static str, String),
    pub(crate) phase: &'static str,
}

/// A pod of a Job. The API server fills in the Job's selector when it is created
/// (kubernetes pkg/registry/batch/job/strategy.go, generateSelector, unless manualSelector):
/// the pod template gains `job-name` and `batch.kubernetes.io/job-name` (the Job's name) and
/// `controller-uid` and `batch.kubernetes.io/controller-uid` (its UID), each only where the
/// template does not set it. The Job controller adds nothing else for a NonIndexed Job.
pub(crate) fn job_pod<'a>(
    job: &'a Job,
    uid: &str,
    suffix: &str,
    phase: &'static str,
) -> CreatedPod<'a> {
    let spec = job.spec.as_ref().expect("Job spec");
    let job_name = name(&job.metadata);
    let mut labels = labels_of(&spec.template.metadata);
    if spec.manual_selector != Some(true) {
        for (key, value) in [
            ("job-name", job_name.as_str()),
            ("batch.kubernetes.io/job-name", job_name.as_str()),
            ("controller-uid", uid),
            ("batch.kubernetes.io/controller-uid", uid),
        ] {
            labels
                .entry(key.to_string())
                .or_insert_with(|| value.to_string());
        }
    }
    CreatedPod {
        name: format!("{job_name}-{suffix}"),
        namespace: ns(&job.metadata),
        labels,
        template: &spec.template,
        controller: ("Job", job_name),
        phase,
    }
}

/// A pod of a Deployment: its ReplicaSet `<deployment>-<pod-template-hash>` adds the label
/// `pod-template-hash` and names the pod `<replicaset>-<suffix>`.
pub(crate) fn deployment_pod<'a>(
    d: &'a Deployment,
    hash: &str,
    suffix: &str,
    phase: &'static str,
) -> CreatedPod<'a> {
    let replica_set = format!("{}-{hash}", name(&d.metadata));
    let mut labels = labels_of(&d.spec.template.metadata);
    labels.insert("pod-template-hash".into(), hash.into());
    CreatedPod {
        name: format!("{replica_set}-{suffix}"),
        namespace: ns(&d.metadata),
        labels,
        template: &d.spec.template,
        controller: ("ReplicaSet", replica_set),
        phase,
    }
}

/// Static targets standing in for what Prometheus' kubernetes_sd_configs (role pod) discovers
/// for `pod` (discovery/kubernetes/pod.go): one target per declared container port, or per
/// container without ports, each with the pod's labels, annotations, phase and controller. The
/// pod's IP is loopback, and its prometheus.io/port annotation names `port`, where a test
/// exporter serves the pod's metrics.
pub(crate) fn pod_targets(pod: &CreatedPod, port: u16) -> Vec<Value> {
    let mut common = serde_json::Map::new();
    let mut put = |k: &str, v: &str| {
        common.insert(format!("__meta_kubernetes_{k}"), json!(v));
    };
    put("namespace", &pod.namespace);
    put("pod_name", &pod.name);
    put("pod_ip", "127.0.0.1");
    put("pod_phase", pod.phase);
    put(
        "pod_ready",
        if pod.phase == "Running" {
            "true"
        } else {
            "false"
        },
    );
    put("pod_node_name", "node-1");
    put("pod_host_ip", "10.0.0.1");
    put("pod_uid", &format!("{}-uid", pod.name));
    put("pod_controller_kind", pod.controller.0);
    put("pod_controller_name", &pod.controller.1);
    for (k, v) in &pod.labels {
        put(&format!("pod_label_{}", sd_name(k)), v);
        put(&format!("pod_labelpresent_{}", sd_name(k)), "true");
    }
    for (k, v) in annotations_of(&pod.template.metadata) {
        let v = if k == "prometheus.io/port" {
            port.to_string()
        } else {
            v
        };
        put(&format!("pod_annotation_{}", sd_name(&k)), &v);
        put(&format!("pod_annotationpresent_{}", sd_name(&k)), "true");
    }
    let spec = pod.template.spec.as_ref().expect("pod spec");
    let all = spec
        .containers
        .iter()
        .map(|c| (c, false))
        .chain(spec.init_containers.iter().flatten().map(|c| (c, true)));
    let mut targets = Vec::new();
    for (c, init) in all {
        let mut container = common.clone();
        container.insert("__meta_kubernetes_pod_container_name".into(), json!(c.name));
        container.insert(
            "__meta_kubernetes_pod_container_image".into(),
            json!(c.image.clone().unwrap_or_default()),
        );
        container.insert(
            "__meta_kubernetes_pod_container_init".into(),
            json!(init.to_string()),
        );
        let ports = c.ports.clone().unwrap_or_default();
        if ports.is_empty() {
            targets.push(json!({"targets": ["127.0.0.1"], "labels": container}));
        }
        for p in ports {
            let mut labels = container.clone();
            let number = p.container_port.to_string();
            labels.insert(
                "__meta_kubernetes_pod_container_port_name".into(),
                json!(p.name.unwrap_or_default()),
            );
            labels.insert(
                "__meta_kubernetes_pod_container_port_number".into(),
                json!(number),
            );
            labels.insert(
                "__meta_kubernetes_pod_container_port_protocol".into(),
                json!(p.protocol.unwrap_or_else(|| "TCP".into())),
            );
            targets.push(json!({"targets": [format!("127.0.0.1:{number}")], "labels": labels}));
        }
    }
    targets
}

pub(crate) async fn prom_query(client: &reqwest::Client, url: &str, q: &str) -> Vec<Value> {
    let r = client
        .post(format!("{url}/api/v1/query"))
        .form(&[("query", q)])
        .send()
        .await
        .and_then(|r| r.error_for_status());
    match r {
        Ok(r) => r
            .json::<Value>()
            .await
            .map(|v| v["data"]["result"].as_array().cloned().unwrap_or_default())
            .unwrap_or_default(),
        Err(_) => Vec::new(),
    }
}

/// Every label name of the series Prometheus holds.
pub(crate) async fn prom_label_names(client: &reqwest::Client, url: &str) -> Vec<String> {
    let body: Value = client
        .get(format!("{url}/api/v1/labels"))
        .send()
        .await
        .expect("labels")
        .json()
        .await
        .expect("labels JSON");
    body["data"]
        .as_array()
        .expect("label names")
        .iter()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect()
}

/// The `kubectl get --raw` paths of README.md's "Install on a cluster" section.
pub(crate) fn readme_raw_paths() -> Vec<String> {
    let readme = read(&repo().join("README.md"));
    let start = readme
        .find("## Install on a cluster")
        .expect("README.md: no \"Install on a cluster\" section");
    let section = &readme[start..];
    let end = section[3..].find("\n## ").map_or(section.len(), |i| i + 3);
    let raw = regex::Regex::new(r"kubectl get --raw '?([^'\s|]+)'?").expect("regex");
    raw.captures_iter(&section[..end])
        .map(|c| c[1].to_string())
        .collect()
}

/// The values the example HPAs select for a label key (job_name, scope, stream).
fn example_label_values(hpas: &[(String, HorizontalPodAutoscaler)], key: &str) -> BTreeSet<String> {
    hpas.iter()
        .flat_map(|(_, h)| h.spec.metrics.clone().unwrap_or_default())
        .filter_map(|m| m.external.map(|e| e.metric).or(m.pods.map(|p| p.metric)))
        .filter_map(|m| m.selector?.match_labels?.get(key).cloned())
        .collect()
}

/// The loopback ports of the test exporters standing in for the scraped pods and services.
struct Exporters {
    jm: u16,
    tms: [u16; 2],
    kafka: u16,
    pravega: u16,
    canary: u16,
}

/// Targets: the real JobManager and TaskManager scrapes, with the job renamed to each job the
/// examples select; kafka_exporter and Pravega controller series; and a canary series for the
/// pods and ports that must not be scraped.
fn start_exporters(hpas: &[(String, HorizontalPodAutoscaler)]) -> Exporters {
    let label_values = |key: &str| example_label_values(hpas, key);
    let sections = scrape_sections();
    let section = |header: &str| -> String {
        let body = sections
            .iter()
            .find(|(h, _)| h.contains(header))
            .unwrap_or_else(|| panic!("scrape section {header:?}"))
            .1
            .clone();
        label_values("job_name")
            .iter()
            .map(|j| {
                body.replace(
                    "job_name=\"loadjob\"",
                    &format!("job_name=\"{}\"", flink_label_value(j)),
                )
            })
            .collect()
    };
    let jm_port = serve_text(section("JobManager"));
    let tm_ports = [
        serve_text(section("TaskManager hosting the source")),
        serve_text(section("other TaskManagers")),
    ];
    let kafka_port = serve_text(
        "kafka_consumergroup_lag{consumergroup=\"orders-enrich\",partition=\"0\",topic=\"orders\"} 1200\n\
         kafka_consumergroup_lag{consumergroup=\"orders-enrich\",partition=\"1\",topic=\"orders\"} -1\n\
         kafka_consumergroup_current_offset{consumergroup=\"orders-enrich\",partition=\"0\",topic=\"orders\"} 5000\n"
            .to_string(),
    );
    let segments: String = label_values("scope")
        .iter()
        .flat_map(|scope| {
            label_values("stream")
                .into_iter()
                .map(move |s| (scope.clone(), s))
        })
        .map(|(scope, stream)| {
            format!(
                "pravega_controller_segments_count{{scope=\"{scope}\",stream=\"{stream}\"}} 3\n"
            )
        })
        .collect();
    let pravega_port = serve_text(segments);
    let canary_port = serve_text("should_not_be_scraped 1\n".to_string());
    Exporters {
        jm: jm_port,
        tms: tm_ports,
        kafka: kafka_port,
        pravega: pravega_port,
        canary: canary_port,
    }
}

/// The Flink pods as discovered: the JobManager Job's pod and two TaskManagers, plus a
/// completed and an unannotated TaskManager pod that must not be scraped.
struct FlinkPods {
    targets: Vec<Value>,
    jm_namespace: String,
    jm_name: String,
    tm_namespace: String,
    tm_names: [String; 2],
    tm_labels: BTreeMap<String, String>,
}

fn flink_pods_discovered(flink: &Inventory, ex: &Exporters) -> FlinkPods {
    let runs = |t: &PodTemplateSpec, role: &str| {
        t.spec.iter().flat_map(|s| &s.containers).any(|c| {
            c.args
                .as_ref()
                .is_some_and(|a| a.first().map(String::as_str) == Some(role))
        })
    };
    let jm_job = flink
        .jobs
        .iter()
        .find(|j| {
            j.spec
                .as_ref()
                .is_some_and(|s| runs(&s.template, "standalone-job"))
        })
        .expect("no JobManager Job");
    let tm_deployment = flink
        .deployments
        .iter()
        .find(|d| runs(&d.spec.template, "taskmanager"))
        .expect("no TaskManager Deployment");
    let tm_ns = ns(&tm_deployment.metadata);
    let tm = &tm_deployment.spec.template;
    let hash = "5d8f7c9b4";
    let jm_pod = job_pod(
        jm_job,
        "0b6c3f2e-6a1d-4c55-9e7b-2f3a8d1c9e40",
        "x7k2p",
        "Running",
    );
    let tm_created = [
        deployment_pod(tm_deployment, hash, "tm000", "Running"),
        deployment_pod(tm_deployment, hash, "tm001", "Running"),
    ];
    let tm_pods = [tm_created[0].name.clone(), tm_created[1].name.clone()];
    let mut unannotated = tm_deployment.clone();
    if let Some(m) = unannotated.spec.template.metadata.as_mut() {
        m.annotations = Some(BTreeMap::from([(
            "prometheus.io/port".to_string(),
            ex.canary.to_string(),
        )]));
    }
    let pod_targets: Vec<Value> = [
        pod_targets(&jm_pod, ex.jm),
        pod_targets(&tm_created[0], ex.tms[0]),
        pod_targets(&tm_created[1], ex.tms[1]),
        pod_targets(
            &deployment_pod(tm_deployment, hash, "done0", "Succeeded"),
            ex.canary,
        ),
        pod_targets(
            &deployment_pod(&unannotated, hash, "nope0", "Running"),
            ex.canary,
        ),
    ]
    .concat();
    FlinkPods {
        targets: pod_targets,
        jm_namespace: jm_pod.namespace.clone(),
        jm_name: jm_pod.name.clone(),
        tm_namespace: tm_ns,
        tm_names: tm_pods,
        tm_labels: labels_of(&tm.metadata),
    }
}

/// The scrape jobs as shipped, with discovery replaced by static targets carrying the discovery
/// labels (and scraping every second so the test need not wait).
fn prometheus_config(pod_targets: &[Value], ex: &Exporters) -> Value {
    let endpoint = |port_name: &str, port: u16| {
        json!({"targets": [format!("127.0.0.1:{port}")], "labels": {
            "__meta_kubernetes_namespace": "pravega",
            "__meta_kubernetes_service_name": "pravega-pravega-controller",
            "__meta_kubernetes_pod_name": "pravega-pravega-controller-0",
            "__meta_kubernetes_endpoint_port_name": port_name,
        }})
    };

    let path = repo().join("manifests/prometheus/scrape-configs.yaml");
    let jobs: Vec<Value> = serde_yaml::from_str(&read(&path)).expect("scrape-configs.yaml");
    let mut static_jobs = 0;
    let jobs: Vec<Value> = jobs
        .into_iter()
        .map(|mut job| {
            job["scrape_interval"] = json!("1s");
            job["scrape_timeout"] = json!("1s");
            let job_map = job.as_object_mut().expect("job");
            if let Some(sd) = job_map.remove("kubernetes_sd_configs") {
                let targets = match sd[0]["role"].as_str() {
                    Some("pod") => pod_targets.to_vec(),
                    Some("endpoints") => {
                        vec![endpoint("rest", ex.pravega), endpoint("grpc", ex.canary)]
                    }
                    other => panic!("no stand-in for kubernetes_sd_configs role {other:?}"),
                };
                job_map.insert("static_configs".into(), Value::Array(targets));
            } else {
                static_jobs += 1;
                job_map.insert(
                    "static_configs".into(),
                    json!([{"targets": [format!("127.0.0.1:{}", ex.kafka)]}]),
                );
            }
            job
        })
        .collect();
    assert_eq!(static_jobs, 1, "one static job expected (kafka_exporter)");
    json!({"global": {"scrape_interval": "1s", "evaluation_interval": "1s"}, "scrape_configs": jobs})
}

/// Starts Prometheus on `config` in `dir`; returns the process and its URL.
fn start_prometheus(prometheus: &str, dir: &Path, config: &Value) -> (Killed, String) {
    std::fs::write(
        dir.join("prometheus.yml"),
        serde_yaml::to_string(config).expect("yaml"),
    )
    .expect("write");
    let prom_port = free_port();
    let log = std::fs::File::create(dir.join("prometheus.log")).expect("log");
    let prom = Killed(
        Command::new(prometheus)
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start prometheus"),
    );
    let prom_url = format!("http://127.0.0.1:{prom_port}");
    (prom, prom_url)
}

/// Waits until the five targets are up (the JobManager, two TaskManagers, kafka_exporter, one
/// controller) and scraped twice, and checks that nothing else is.
async fn wait_for_targets(client: &reqwest::Client, prom_url: &str, dir: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let up = prom_query(client, prom_url, "count(up == 1)").await;
        if up.first().and_then(|r| r["value"][1].as_str()) == Some("5") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "targets not up; Prometheus log:\n{}\ntargets: {:?}",
            std::fs::read_to_string(dir.join("prometheus.log")).unwrap_or_default(),
            prom_query(client, prom_url, "up").await
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // Give every target a second scrape so that all series have arrived.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(
        prom_query(client, prom_url, "should_not_be_scraped")
            .await
            .is_empty(),
        "a completed or unannotated pod was scraped"
    );
    assert!(
        prom_query(client, prom_url, "count(up)")
            .await
            .first()
            .and_then(|r| r["value"][1].as_str())
            == Some("5"),
        "the relabelling kept a target it should drop (a completed pod, an unannotated pod, a \
         controller port other than rest)"
    );
}

/// The labels the signals need on the Flink series: namespace, pod and the pod's own labels on
/// the TaskManagers'; Flink's own job_name on the JobManager's.
async fn check_flink_labels(
    client: &reqwest::Client,
    prom_url: &str,
    pods: &FlinkPods,
    hpas: &[(String, HorizontalPodAutoscaler)],
) {
    let pod_labels: String = pods
        .tm_labels
        .clone()
        .iter()
        .map(|(k, v)| format!(",{k}=\"{v}\""))
        .collect();
    for pod in &pods.tm_names {
        let q = format!("flink_taskmanager_job_task_busyTimeMsPerSecond{{namespace=\"{}\",pod=\"{pod}\"{pod_labels}}}", pods.tm_namespace);
        assert!(
            !prom_query(client, prom_url, &q).await.is_empty(),
            "no series {q}"
        );
    }

    // The JobManager's job series keep Flink's job_name, which the restart hold matches the
    // HPA's selector against: the Job controller's job-name pod label must not replace it (a
    // target label wins, and Prometheus renames the scraped one exported_job_name), and none
    // of the controller's bookkeeping labels reach the series.
    let jobs_expected: BTreeSet<String> = example_label_values(hpas, "job_name")
        .iter()
        .map(|j| flink_label_value(j))
        .collect();
    let q = format!(
        "flink_jobmanager_job_numRestarts{{namespace=\"{}\",pod=\"{}\"}}",
        pods.jm_namespace, pods.jm_name
    );
    let jm_series = prom_query(client, prom_url, &q).await;
    let jm_jobs: BTreeSet<String> = jm_series
        .iter()
        .filter_map(|r| r["metric"]["job_name"].as_str().map(str::to_string))
        .collect();
    assert_eq!(jm_jobs, jobs_expected, "{q}: {jm_series:?}");
    let label_names = prom_label_names(client, prom_url).await;
    let foreign: Vec<&String> = label_names
        .iter()
        .filter(|n| {
            n.starts_with("exported_")
                || n.starts_with("batch_kubernetes_io_")
                || n.as_str() == "controller_uid"
        })
        .collect();
    assert!(
        foreign.is_empty(),
        "labels from the pods' controllers reached the series: {foreign:?}"
    );
}

/// The server's configuration as shipped, but matching pod selectors against series labels
/// (there is no Kubernetes API here) and, where the build has it, without authentication.
fn server_test_config(dir: &Path) -> PathBuf {
    let mut test_cfg: serde_yaml::Value =
        serde_yaml::from_str(&read(&repo().join("manifests/base/flink-hpa-bridge.yaml")))
            .expect("config");
    test_cfg["pods"]["source"] = "labels".into();
    let mut without_auth = test_cfg.clone();
    without_auth["server"]["auth"]["insecureSkipAuth"] = true.into();
    if Config::from_yaml(&serde_yaml::to_string(&without_auth).expect("yaml"), "test").is_ok() {
        test_cfg = without_auth;
    }
    let cfg_path = dir.join("flink-hpa-bridge.yaml");
    std::fs::write(&cfg_path, serde_yaml::to_string(&test_cfg).expect("yaml")).expect("write");
    cfg_path
}

/// `flink-hpa-bridge query` for one metric: whether the HPA would get a value, and the output.
fn query_metric(
    prom_url: &str,
    cfg_path: &Path,
    metric: &str,
    namespace: &str,
    selector: &str,
    metric_selector: Option<&str>,
) -> (bool, String) {
    let mut cmd = Command::new(BIN);
    cmd.args([
        "query",
        metric,
        "-n",
        namespace,
        "-l",
        selector,
        "--prometheus-url",
        prom_url,
        "--config",
    ])
    .arg(cfg_path);
    if let Some(ms) = metric_selector {
        cmd.args(["--metric-selector", ms]);
    }
    let out = cmd.output().expect("run query");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success() && text.contains("(HTTP 200)"), text)
}

/// Every example HPA's metric, and kafka_exporter's lag, as the server answers them from what
/// Prometheus scraped.
fn hpa_query_errors(
    hpas: &[(String, HorizontalPodAutoscaler)],
    flink: &Inventory,
    prom_url: &str,
    cfg_path: &Path,
    tm_pods: &[String; 2],
) -> Vec<String> {
    let query = |metric: &str, namespace: &str, selector: &str, metric_selector: Option<&str>| {
        query_metric(
            prom_url,
            cfg_path,
            metric,
            namespace,
            selector,
            metric_selector,
        )
    };
    let mut errors = Vec::new();
    for (file, hpa) in hpas {
        let namespace = ns(&hpa.metadata);
        let deployment = flink
            .deployment(&namespace, &hpa.spec.scale_target_ref.name)
            .expect("target");
        for m in hpa.spec.metrics.clone().unwrap_or_default() {
            let (metric, pods_selector) = match (&m.external, &m.pods) {
                (Some(e), _) => (e.metric.clone(), None),
                (_, Some(p)) => (
                    p.metric.clone(),
                    Some(selector_string(&deployment.spec.selector)),
                ),
                _ => continue,
            };
            let series = metric
                .selector
                .as_ref()
                .map(selector_string)
                .unwrap_or_default();
            let (ok, text) = match &pods_selector {
                None => query(&metric.name, &namespace, &series, None),
                Some(pods) => query(&metric.name, &namespace, pods, Some(&series)),
            };
            if !ok
                || (pods_selector.is_some() && !tm_pods.iter().all(|p| text.contains(p.as_str())))
            {
                errors.push(format!("{file}: {} answers no value:\n{text}", metric.name));
            }
        }
    }
    // kafka_exporter, the alternative source the lag examples describe.
    let (ok, text) = query(
        "flink_kafka_lag_records",
        "flink",
        "consumergroup=orders-enrich,topic=orders",
        None,
    );
    if !ok {
        errors.push(format!(
            "flink_kafka_lag_records from kafka_exporter:\n{text}"
        ));
    }
    errors
}

/// README's `kubectl get --raw` commands, against the server directly: the paths the
/// aggregator forwards unchanged.
async fn check_readme_raw_paths(prom_url: &str, cfg_path: &Path) {
    let paths = readme_raw_paths();
    assert!(
        !paths.is_empty(),
        "README.md's install section has no kubectl get --raw command"
    );
    let port = free_port();
    let _server = Killed(
        Command::new(BIN)
            .args([
                "serve",
                "--prometheus-url",
                prom_url,
                "--bind-address",
                "127.0.0.1",
                "--secure-port",
                &port.to_string(),
                "--config",
            ])
            .arg(cfg_path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start server"),
    );
    let https = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()
        .expect("client");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !https
        .get(format!("https://127.0.0.1:{port}/readyz"))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
    {
        assert!(Instant::now() < deadline, "server not ready");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for path in paths {
        let out = Command::new("kubectl")
            .args([
                "get",
                "--raw",
                &path,
                "--server",
                &format!("https://127.0.0.1:{port}"),
                "--insecure-skip-tls-verify",
                "--token",
                "unused",
            ])
            .env("KUBECONFIG", "/dev/null")
            .output()
            .expect("kubectl");
        let body: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        let answered = body["items"].as_array().is_some_and(|i| !i.is_empty())
            || body["resources"].as_array().is_some_and(|r| !r.is_empty());
        assert!(
            out.status.success() && answered,
            "kubectl get --raw {path}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn scraped_flink_series_answer_every_example_hpa() {
    let prometheus = flink_hpa_bridge::fixtures::local_prometheus::binary();
    if !command_works(&prometheus, &["--version"]) {
        eprintln!("{prometheus} not installed: scrape jobs not run");
        return;
    }
    let (flink, _) = inventory(&repo().join("manifests/flink"));
    let hpas = hpa_examples();
    let exporters = start_exporters(&hpas);
    let pods = flink_pods_discovered(&flink, &exporters);
    let dir = tempfile::tempdir().expect("tempdir");
    let config = prometheus_config(&pods.targets, &exporters);
    let (_prom, prom_url) = start_prometheus(&prometheus, dir.path(), &config);
    let client = reqwest::Client::new();
    wait_for_targets(&client, &prom_url, dir.path()).await;
    check_flink_labels(&client, &prom_url, &pods, &hpas).await;
    let cfg_path = server_test_config(dir.path());
    let errors = hpa_query_errors(&hpas, &flink, &prom_url, &cfg_path, &pods.tm_names);
    assert!(errors.is_empty(), "\n{}", errors.join("\n"));
    if !has_kubectl() {
        eprintln!("kubectl not installed: README's kubectl get --raw commands not run");
        return;
    }
    check_readme_raw_paths(&prom_url, &cfg_path).await;
}
