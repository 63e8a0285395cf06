//! The variables Kyverno puts into every rule's context from the request under review:
//! `request` (the admission request: `operation`, `object`, `oldObject`, `userInfo`, `name`,
//! `namespace`, `kind`…), `serviceAccountName` and `serviceAccountNamespace` (from a service
//! account's user name) and `images` (each container's image, by container group and name,
//! with its registry, path, name, tag, digest and references).

use serde_json::{Map, Value, json};

use crate::policy::Operation;

use super::resource::{ExtractedImage, Resource};

/// The request variables for `resource`, whose images are `images`.
pub fn request_variables(resource: &Resource, images: &[ExtractedImage]) -> Map<String, Value> {
    let mut request = match &resource.request {
        Value::Object(map) => map.clone(),
        _ => Map::new(),
    };
    request.insert(
        "operation".into(),
        Value::String(operation_name(resource.operation).into()),
    );
    request.insert("object".into(), resource.object.clone());
    request
        .entry("name")
        .or_insert_with(|| Value::String(resource.name.clone()));
    if let Some(namespace) = &resource.namespace {
        request
            .entry("namespace")
            .or_insert_with(|| Value::String(namespace.clone()));
    }
    request
        .entry("kind")
        .or_insert_with(|| json!({"kind": resource.kind}));
    let username = request
        .get("userInfo")
        .and_then(|u| u.get("username"))
        .and_then(Value::as_str)
        .unwrap_or_default();
    let (sa_namespace, sa_name) = service_account(username);
    let (sa_namespace, sa_name) = (sa_namespace.to_string(), sa_name.to_string());
    let mut out = Map::new();
    out.insert("request".into(), Value::Object(request));
    out.insert("serviceAccountName".into(), Value::String(sa_name));
    out.insert(
        "serviceAccountNamespace".into(),
        Value::String(sa_namespace),
    );
    out.insert("images".into(), image_infos(images));
    out
}

fn operation_name(operation: Operation) -> &'static str {
    match operation {
        Operation::Create => "CREATE",
        Operation::Update => "UPDATE",
        Operation::Delete => "DELETE",
        Operation::Connect => "CONNECT",
    }
}

/// `system:serviceaccount:NS:NAME` → (NS, NAME); anything else → empty strings, as Kyverno.
fn service_account(username: &str) -> (&str, &str) {
    let Some(rest) = username.strip_prefix("system:serviceaccount:") else {
        return ("", "");
    };
    let mut parts = rest.split(':');
    match (parts.next(), parts.next()) {
        (Some(ns), Some(name)) => (ns, name),
        _ => ("", ""),
    }
}

/// Kyverno's `images` variable: `{containers: {NAME: info}, initContainers: …,
/// ephemeralContainers: …}` (extractor images under their extractor's group).
fn image_infos(images: &[ExtractedImage]) -> Value {
    let mut groups: Map<String, Value> = Map::new();
    for image in images {
        let Ok(reference) = &image.reference else {
            continue;
        };
        // Kyverno: `latest` when there is neither tag nor digest, empty with a digest alone.
        let tag = match (reference.tag(), reference.digest()) {
            (Some(t), _) => t,
            (None, Some(_)) => "",
            (None, None) => "latest",
        };
        let mut info = Map::new();
        info.insert("registry".into(), reference.registry().into());
        info.insert("path".into(), reference.path().into());
        info.insert("name".into(), reference.name().into());
        info.insert("tag".into(), tag.into());
        info.insert(
            "digest".into(),
            reference
                .digest()
                .map(|d| d.to_string())
                .unwrap_or_default()
                .into(),
        );
        info.insert("reference".into(), reference.normalized().into());
        info.insert(
            "referenceWithTag".into(),
            reference.reference_with_tag().into(),
        );
        if let Value::Object(group) = groups
            .entry(image.group.clone())
            .or_insert_with(|| Value::Object(Map::new()))
        {
            group.insert(image.name.clone(), Value::Object(info));
        }
    }
    Value::Object(groups)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn the_request_names_the_operation_object_service_account_and_images() {
        let object = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": "team"},
            "spec": {
                "containers": [{"name": "app", "image": "nginx:1.25"}],
                "initContainers": [{"name": "init", "image": "ghcr.io/o/i@sha256:0000000000000000000000000000000000000000000000000000000000000000"}],
            }
        });
        let resource = Resource::from_object(object, Operation::Update, None, BTreeMap::new())
            .unwrap()
            .with_request(json!({"userInfo": {"username": "system:serviceaccount:team:deployer"}}));
        let images = resource.images(crate::policy::ImageSource::PodSpec("/spec"));
        let vars = Value::Object(request_variables(&resource, &images));
        assert_eq!(vars["request"]["operation"], "UPDATE");
        assert_eq!(vars["request"]["namespace"], "team");
        assert_eq!(vars["request"]["object"]["metadata"]["name"], "p");
        assert_eq!(vars["serviceAccountName"], "deployer");
        assert_eq!(vars["serviceAccountNamespace"], "team");
        let app = &vars["images"]["containers"]["app"];
        assert_eq!(app["registry"], "docker.io");
        assert_eq!(app["path"], "nginx");
        assert_eq!(app["name"], "nginx");
        assert_eq!(app["tag"], "1.25");
        assert_eq!(app["reference"], "docker.io/nginx:1.25");
        let init = &vars["images"]["initContainers"]["init"];
        assert_eq!(init["tag"], "");
        assert!(init["digest"].as_str().unwrap().starts_with("sha256:"));
        assert_eq!(init["referenceWithTag"], "ghcr.io/o/i:");
        assert_eq!(service_account("alice"), ("", ""));
    }
}
