//! The fleet examples in deploy/fleet/ are what they say: BIRD 2 parses the
//! BIRD config (`bird -p`), the key file is one `serve --key-file` takes,
//! and the Kubernetes DaemonSet has what a DPDK pod needs. No Kubernetes
//! schema validator is packaged in Debian 12 (no kubeconform, no kubeval),
//! so the YAML is parsed with python3-yaml and its fields checked here.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

const PY: &str = "/usr/bin/python3";

fn fleet(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/fleet").join(file)
}

fn dlisten(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_dlisten")).args(args).output().expect("run dlisten");
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

fn temp(name: &str, text: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("dlisten-deploy-fleet-{}-{name}", std::process::id()));
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn bird_parses_the_bird_config_and_refuses_a_broken_one() {
    let bird = |path: &Path| Command::new("bird").args(["-p", "-c"]).arg(path).output().expect("bird (bird2: deploy/setup.sh)");
    let out = bird(&fleet("bird.conf"));
    assert!(out.status.success(), "bird -p: {}", String::from_utf8_lossy(&out.stderr));
    // The check is real: the same file without a semicolon does not parse.
    let text = std::fs::read_to_string(fleet("bird.conf")).unwrap();
    let broken = temp("bird.conf", &text.replacen("route 198.18.0.1/32 blackhole;", "route 198.18.0.1/32 blackhole", 1));
    let out = bird(&broken);
    let _ = std::fs::remove_file(&broken);
    assert!(!out.status.success(), "bird accepted a broken config");
    // The health check names the protocol that holds the service route.
    let script = std::fs::read_to_string(fleet("health-check.sh")).unwrap();
    assert!(text.contains("protocol static dlisten_vip") && script.contains("proto=${2:-dlisten_vip}"));
    let sh = Command::new("bash").arg("-n").arg(fleet("health-check.sh")).status().unwrap();
    assert!(sh.success());
}

#[test]
fn the_example_key_file_is_one_serve_takes() {
    let keys = fleet("keys.toml");
    let (ok, out) = dlisten(&["serve", "--addr", "198.18.0.1", "--key-file", keys.to_str().unwrap(), "--check"]);
    assert!(ok, "{out}");
    let text = std::fs::read_to_string(&keys).unwrap();
    // Uncommenting the optional keys keeps it valid.
    let all = temp("keys.toml", &text.replace("# syncookie_previous", "syncookie_previous").replace("# fastopen_previous", "fastopen_previous"));
    let (ok, out) = dlisten(&["serve", "--addr", "198.18.0.1", "--key-file", all.to_str().unwrap(), "--check"]);
    let _ = std::fs::remove_file(&all);
    assert!(ok, "{out}");
}

/// The documents of daemonset.yaml as JSON (python3-yaml).
fn manifests() -> Vec<Value> {
    let script = "import json, sys, yaml; print(json.dumps(list(yaml.safe_load_all(open(sys.argv[1])))))";
    let out = Command::new(PY).args(["-c", script]).arg(fleet("daemonset.yaml")).output().expect("python3");
    assert!(out.status.success(), "python3-yaml: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice::<Value>(&out.stdout).unwrap().as_array().unwrap().clone()
}

#[test]
fn the_daemonset_has_what_a_dpdk_pod_needs() {
    let docs = manifests();
    let kind = |k: &str| docs.iter().find(|d| d["kind"] == k).unwrap_or_else(|| panic!("no {k}"));
    let (cm, ds) = (kind("ConfigMap"), kind("DaemonSet"));
    assert_eq!(ds["apiVersion"], "apps/v1");
    assert_eq!(cm["metadata"]["namespace"], ds["metadata"]["namespace"]);
    let spec = &ds["spec"];
    let labels = &spec["template"]["metadata"]["labels"];
    for (k, v) in spec["selector"]["matchLabels"].as_object().unwrap() {
        assert_eq!(&labels[k], v, "the selector must match the pod template's labels");
    }
    let pod = &spec["template"]["spec"];
    assert_eq!(pod["hostNetwork"], true);
    assert_eq!(pod["dnsPolicy"], "ClusterFirstWithHostNet");
    let c = &pod["containers"][0];
    assert!(c["image"].is_string() && c["name"].is_string());
    let sc = &c["securityContext"];
    let caps: Vec<&str> = sc["capabilities"]["add"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert!(sc["privileged"] == true && caps.contains(&"IPC_LOCK"), "{sc}");
    // Hugepages and the device plugin's VF; a Guaranteed pod (requests = limits).
    let res = &c["resources"];
    for r in ["hugepages-2Mi", "intel.com/sriov_netdevice", "memory", "cpu"] {
        assert!(res["limits"][r].is_string(), "limits.{r}: {res}");
        assert_eq!(res["requests"][r], res["limits"][r], "{r}");
    }
    let args = c["args"][0].as_str().unwrap();
    assert!(args.contains("$PCIDEVICE_INTEL_COM_SRIOV_NETDEVICE") && args.contains("--config /etc/dlisten/dlisten.toml"), "{args}");
    // Every mount names a volume; the hugepage volume is hugetlbfs; the
    // config volume is this file's ConfigMap.
    let volumes = pod["volumes"].as_array().unwrap();
    let volume = |name: &str| volumes.iter().find(|v| v["name"] == name).unwrap_or_else(|| panic!("no volume {name}"));
    for m in c["volumeMounts"].as_array().unwrap() {
        volume(m["name"].as_str().unwrap());
    }
    let huge = c["volumeMounts"].as_array().unwrap().iter().find(|m| m["mountPath"] == "/dev/hugepages").expect("hugepage mount");
    assert_eq!(volume(huge["name"].as_str().unwrap())["emptyDir"]["medium"], "HugePages-2Mi");
    let cfg_mount = c["volumeMounts"].as_array().unwrap().iter().find(|m| m["mountPath"] == "/etc/dlisten/dlisten.toml").expect("config mount");
    let cfg_volume = volume(cfg_mount["name"].as_str().unwrap());
    assert_eq!(cfg_volume["configMap"]["name"], cm["metadata"]["name"]);
    let toml = cm["data"][cfg_mount["subPath"].as_str().unwrap()].as_str().expect("the ConfigMap holds the file");
    // The key file is a Secret mounted whole (kubelet updates it in place).
    let keys_mount = c["volumeMounts"].as_array().unwrap().iter().find(|m| m["mountPath"] == "/etc/dlisten/keys").expect("keys mount");
    assert!(keys_mount["subPath"].is_null());
    assert!(volume(keys_mount["name"].as_str().unwrap())["secret"]["secretName"].is_string());
    assert!(toml.contains("key-file = \"/etc/dlisten/keys/keys.toml\""), "{toml}");
    // The probe reads /health on the config's metrics port.
    let probe = &c["readinessProbe"]["httpGet"];
    assert_eq!(probe["path"], "/health");
    assert!(toml.contains(&format!("metrics = \"127.0.0.1:{}\"", probe["port"])), "{toml}");
    // The ConfigMap's file is a configuration serve takes (with the example keys).
    let file = temp("dlisten.toml", toml);
    let (ok, out) = dlisten(&[
        "serve", "--config", file.to_str().unwrap(), "--key-file", fleet("keys.toml").to_str().unwrap(), "--check",
    ]);
    let _ = std::fs::remove_file(&file);
    assert!(ok, "{out}");
}
