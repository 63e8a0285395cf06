//! The resource under review and the images it runs.
//!
//! [`Resource`] is what a rule is matched against (kind, namespace, name, labels, operation) plus
//! the object itself; [`Resource::images`] extracts every container image from where the kind
//! keeps them — containers, init containers and ephemeral containers alike (Kyverno #6115 was a
//! bypass through one of them) — or from a rule's `imageExtractors`.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;

use crate::image::{ImageRef, ParseError};
use crate::policy::model::ImageExtractorConfig;
use crate::policy::{ImageSource, Operation, ResourceMeta, Unsupported};

/// A Kubernetes object under review.
#[derive(Debug, Clone)]
pub struct Resource {
    /// `kind`, e.g. `Pod`.
    pub kind: String,
    /// `metadata.namespace`; `None` for cluster-scoped kinds.
    pub namespace: Option<String>,
    /// `metadata.name` (or `generateName` when the name is not set yet).
    pub name: String,
    /// `metadata.labels`.
    pub labels: BTreeMap<String, String>,
    /// `metadata.annotations`.
    pub annotations: BTreeMap<String, String>,
    /// Labels of the namespace the resource lives in.
    pub namespace_labels: BTreeMap<String, String>,
    /// Whether `namespace_labels` are known ([`Resource::without_namespace_labels`]).
    pub namespace_labels_known: bool,
    /// The admission operation (`CREATE` for files given to `apply`).
    pub operation: Operation,
    /// The whole object.
    pub object: Value,
    /// The admission request besides the object (`uid`, `userInfo`, `oldObject`, `kind`…), for
    /// `request.*` variables; `Null` when there is none (`apply`).
    pub request: Value,
}

/// Why an object cannot be reviewed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResourceError {
    /// No `kind`.
    #[error("the object has no kind")]
    NoKind,
    /// Not a JSON object.
    #[error("the object is not a JSON/YAML mapping")]
    NotAnObject,
}

fn string_map(v: &Value) -> BTreeMap<String, String> {
    v.as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

impl Resource {
    /// Reads kind and metadata from `object`. `default_namespace` applies to namespaced objects
    /// that do not name one (as `kubectl apply -n` would).
    pub fn from_object(
        object: Value,
        operation: Operation,
        default_namespace: Option<&str>,
        namespace_labels: BTreeMap<String, String>,
    ) -> Result<Resource, ResourceError> {
        if !object.is_object() {
            return Err(ResourceError::NotAnObject);
        }
        let kind = object["kind"]
            .as_str()
            .filter(|k| !k.is_empty())
            .ok_or(ResourceError::NoKind)?
            .to_string();
        let meta = &object["metadata"];
        let name = meta["name"]
            .as_str()
            .or_else(|| meta["generateName"].as_str())
            .unwrap_or_default()
            .to_string();
        let namespace = meta["namespace"]
            .as_str()
            .filter(|n| !n.is_empty())
            .or(if kind == "Namespace" {
                None
            } else {
                default_namespace
            })
            .map(str::to_string);
        Ok(Resource {
            labels: string_map(&meta["labels"]),
            annotations: string_map(&meta["annotations"]),
            kind,
            namespace,
            name,
            namespace_labels,
            namespace_labels_known: true,
            operation,
            object,
            request: Value::Null,
        })
    }

    /// This resource with the admission request's other members (`userInfo`, `oldObject`…).
    pub fn with_request(mut self, request: Value) -> Resource {
        self.request = request;
        self
    }

    /// This resource with its namespace's labels marked unknown, as the webhook has them (an
    /// AdmissionReview does not carry them): `namespaceSelector` in `match` is then taken as
    /// satisfied and in `exclude` as not, so a rule limited by namespace labels still applies.
    pub fn without_namespace_labels(mut self) -> Resource {
        self.namespace_labels.clear();
        self.namespace_labels_known = false;
        self
    }

    /// The namespace's labels, when known (see [`Resource::without_namespace_labels`]).
    pub fn known_namespace_labels(&self) -> Option<&BTreeMap<String, String>> {
        self.namespace_labels_known
            .then_some(&self.namespace_labels)
    }

    /// The view match/exclude evaluation needs.
    pub fn meta(&self) -> ResourceMeta<'_> {
        ResourceMeta {
            kind: &self.kind,
            namespace: self.namespace.as_deref(),
            name: &self.name,
            labels: &self.labels,
            annotations: &self.annotations,
            namespace_labels: self.known_namespace_labels(),
            operation: self.operation,
        }
    }

    /// The names in the pod spec's `imagePullSecrets`: the Pod's own, or the template's of a
    /// pod controller (`spec.template.spec`, a CronJob's `spec.jobTemplate.spec.template.spec`),
    /// in order, without repeats.
    pub fn pull_secrets(&self) -> Vec<String> {
        let spec = [
            "/spec",
            "/spec/template/spec",
            "/spec/jobTemplate/spec/template/spec",
        ]
        .iter()
        .filter_map(|pointer| self.object.pointer(pointer))
        .find(|spec| spec.get("containers").is_some() || spec.get("imagePullSecrets").is_some());
        let mut names: Vec<String> = Vec::new();
        let secrets = spec
            .and_then(|spec| spec.get("imagePullSecrets"))
            .and_then(Value::as_array);
        for name in secrets
            .into_iter()
            .flatten()
            .filter_map(|s| s.get("name").and_then(Value::as_str))
        {
            if !name.is_empty() && !names.iter().any(|n| n == name) {
                names.push(name.to_string());
            }
        }
        names
    }

    /// `Kind/namespace/name` as Kyverno's messages name a resource.
    pub fn display_name(&self) -> String {
        format!(
            "{}/{}/{}",
            self.kind,
            self.namespace.as_deref().unwrap_or(""),
            self.name
        )
    }

    /// The images at `source` in this object.
    pub fn images(&self, source: ImageSource<'_>) -> Vec<ExtractedImage> {
        match source {
            ImageSource::None => Vec::new(),
            ImageSource::PodSpec(pointer) => pod_spec_images(&self.object, pointer),
            ImageSource::Extractors(configs) => configs
                .iter()
                .flat_map(|c| extractor_images(&self.object, c))
                .collect(),
        }
    }
}

/// One image found in an object.
#[derive(Debug, Clone, PartialEq)]
pub struct ExtractedImage {
    /// JSON pointer of the image string, e.g. `/spec/initContainers/0/image`.
    pub pointer: String,
    /// `containers`, `initContainers`, `ephemeralContainers` or an extractor's name.
    pub group: String,
    /// The container name (or the extractor key).
    pub name: String,
    /// The string as written.
    pub raw: String,
    /// The parsed reference, or why it does not parse.
    pub reference: Result<ImageRef, ParseError>,
    /// `Some` when the extractor post-processes the value with JMESPath, which is not supported.
    pub unsupported: Option<Unsupported>,
    /// `Some` when the object holds something other than an image where an image (or the list
    /// of containers) belongs: why, naming the JSON path. Every rule that matches the object
    /// covers it, and it fails (an object that cannot be checked is never admitted unchecked).
    pub unreadable: Option<String>,
    normalized: String,
    repository: String,
    /// The repository as a reference (no tag, no digest): where its signatures are by default.
    repository_ref: Option<Arc<ImageRef>>,
}

impl ExtractedImage {
    /// An image found at `pointer`; the reference is parsed and normalised once, here.
    pub fn new(
        pointer: String,
        group: String,
        name: String,
        raw: String,
        unsupported: Option<Unsupported>,
    ) -> ExtractedImage {
        let reference = ImageRef::parse(&raw);
        let (normalized, repository, repository_ref) = match &reference {
            Ok(r) => (
                r.normalized().to_string(),
                r.repository(),
                Some(Arc::new(r.repository_ref())),
            ),
            Err(_) => (raw.clone(), String::new(), None),
        };
        ExtractedImage {
            pointer,
            group,
            name,
            raw,
            reference,
            unsupported,
            unreadable: None,
            normalized,
            repository,
            repository_ref,
        }
    }

    /// What stands at `pointer` where an image or a list of containers belongs, when it is not
    /// one: `found` says what it is.
    pub fn unreadable(pointer: String, group: String, expected: &str, found: &Value) -> Self {
        let path = json_path(&pointer);
        let mut image = ExtractedImage::new(pointer, group, String::new(), path.clone(), None);
        image.unreadable = Some(format!(
            "{path} is {}, not {expected}: the object cannot be checked, so it is refused",
            kind_of_value(found)
        ));
        image
    }

    /// Kyverno's normalised form (`docker.io/nginx:latest`), or the raw string if it does not
    /// parse.
    pub fn normalized(&self) -> &str {
        &self.normalized
    }

    /// `registry/path` of the image (empty when it does not parse).
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// The image's repository as a reference (`None` when it does not parse), made once.
    pub fn repository_ref(&self) -> Option<&Arc<ImageRef>> {
        self.repository_ref.as_ref()
    }
}

/// `spec.containers[0].image` for the pointer `/spec/containers/0/image`.
pub(super) fn json_path(pointer: &str) -> String {
    let mut out = String::new();
    for segment in pointer.split('/').skip(1) {
        let segment = segment.replace("~1", "/").replace("~0", "~");
        if !segment.is_empty() && segment.bytes().all(|b| b.is_ascii_digit()) {
            out.push_str(&format!("[{segment}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(&segment);
        }
    }
    out
}

/// "a number", "a list", ... for messages.
fn kind_of_value(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

/// Escapes one JSON pointer segment (RFC 6901).
pub(super) fn pointer_segment(s: &str) -> String {
    s.replace('~', "~0").replace('/', "~1")
}

const POD_IMAGE_GROUPS: [&str; 3] = ["initContainers", "containers", "ephemeralContainers"];

fn pod_spec_images(object: &Value, pointer: &str) -> Vec<ExtractedImage> {
    // Each step to the pod spec must be a mapping where it exists (a missing one holds no
    // containers; the API server rejects such an object anyway).
    let mut at = String::new();
    let mut node = object;
    for segment in pointer.split('/').skip(1) {
        at = format!("{at}/{segment}");
        match node.get(segment) {
            None | Some(Value::Null) => return Vec::new(),
            Some(child @ Value::Object(_)) => node = child,
            Some(other) => {
                return vec![ExtractedImage::unreadable(
                    at,
                    "spec".into(),
                    "a mapping",
                    other,
                )];
            }
        }
    }
    let spec = node;
    let mut out = Vec::new();
    for group in POD_IMAGE_GROUPS {
        let containers = match &spec[group] {
            Value::Null => continue,
            Value::Array(containers) => containers,
            other => {
                out.push(ExtractedImage::unreadable(
                    format!("{pointer}/{group}"),
                    group.to_string(),
                    "a list of containers",
                    other,
                ));
                continue;
            }
        };
        for (i, c) in containers.iter().enumerate() {
            let raw = match c {
                Value::Object(_) => match &c["image"] {
                    // No image: the API server rejects the object; nothing to check here.
                    Value::Null => continue,
                    Value::String(raw) => raw,
                    other => {
                        out.push(ExtractedImage::unreadable(
                            format!("{pointer}/{group}/{i}/image"),
                            group.to_string(),
                            "an image reference string",
                            other,
                        ));
                        continue;
                    }
                },
                other => {
                    out.push(ExtractedImage::unreadable(
                        format!("{pointer}/{group}/{i}"),
                        group.to_string(),
                        "a container mapping",
                        other,
                    ));
                    continue;
                }
            };
            if raw.trim().is_empty() {
                continue;
            }
            out.push(ExtractedImage::new(
                format!("{pointer}/{group}/{i}/image"),
                group.to_string(),
                c["name"].as_str().unwrap_or_default().to_string(),
                raw.to_string(),
                None,
            ));
        }
    }
    out
}

fn extractor_images(object: &Value, config: &ImageExtractorConfig) -> Vec<ExtractedImage> {
    let mut segments: Vec<&str> = config.path.split('/').filter(|s| !s.is_empty()).collect();
    let value_field = match &config.value {
        Some(v) => v.clone(),
        None => match segments.pop() {
            Some(last) => last.to_string(),
            None => return Vec::new(),
        },
    };
    let group = config.name.clone().unwrap_or_else(|| "custom".to_string());
    let mut found = Vec::new();
    walk(object, &segments, String::new(), &mut |node, pointer| {
        let raw = match node.get(&value_field) {
            None | Some(Value::Null) => return,
            Some(Value::String(raw)) => raw,
            Some(other) => {
                found.push(ExtractedImage::unreadable(
                    format!("{pointer}/{}", pointer_segment(&value_field)),
                    group.clone(),
                    "an image reference string",
                    other,
                ));
                return;
            }
        };
        if raw.trim().is_empty() {
            return;
        }
        let name = match &config.key {
            Some(k) => node
                .get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            None => pointer.clone(),
        };
        found.push(ExtractedImage::new(
            format!("{pointer}/{}", pointer_segment(&value_field)),
            group.clone(),
            name,
            raw.to_string(),
            config
                .jmes_path
                .as_ref()
                .map(|j| Unsupported::ExtractorJmesPath {
                    expression: j.clone(),
                }),
        ));
    });
    found
}

fn walk(node: &Value, segments: &[&str], pointer: String, visit: &mut dyn FnMut(&Value, &String)) {
    let Some((first, rest)) = segments.split_first() else {
        visit(node, &pointer);
        return;
    };
    if *first == "*" {
        match node {
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    walk(item, rest, format!("{pointer}/{i}"), visit);
                }
            }
            Value::Object(map) => {
                for (k, item) in map {
                    walk(
                        item,
                        rest,
                        format!("{pointer}/{}", pointer_segment(k)),
                        visit,
                    );
                }
            }
            _ => {}
        }
    } else if let Some(child) = node.get(*first) {
        walk(
            child,
            rest,
            format!("{pointer}/{}", pointer_segment(first)),
            visit,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(spec: Value) -> Resource {
        Resource::from_object(
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": {"app": "x"}}, "spec": spec}),
            Operation::Create,
            Some("default"),
            BTreeMap::new(),
        )
        .unwrap()
    }

    #[test]
    fn every_container_kind_is_extracted_whatever_the_order() {
        let r = pod(json!({
            "ephemeralContainers": [{"name": "debug", "image": "busybox"}],
            "containers": [{"name": "app", "image": "registry.company.com/app:v1"}, {"name": "empty", "image": " "}],
            "initContainers": [{"name": "init", "image": "ghcr.io/x/init@sha256:dead07b4d8ed7e29e98de0f4504d87e8880d4347859d839686a31da35a3b532f"}],
        }));
        let images = r.images(ImageSource::PodSpec("/spec"));
        let pointers: Vec<&str> = images.iter().map(|i| i.pointer.as_str()).collect();
        assert_eq!(
            pointers,
            [
                "/spec/initContainers/0/image",
                "/spec/containers/0/image",
                "/spec/ephemeralContainers/0/image"
            ]
        );
        assert_eq!(images[2].normalized(), "docker.io/busybox:latest");
        assert_eq!(images[1].name, "app");
        assert_eq!(r.namespace.as_deref(), Some("default"));
        assert_eq!(r.display_name(), "Pod/default/p");
    }

    #[test]
    fn controller_templates_and_custom_extractors() {
        let cronjob = Resource::from_object(
            json!({"kind": "CronJob", "metadata": {"name": "c", "namespace": "ops"},
                   "spec": {"jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "a", "image": "nginx:1"}]}}}}}}),
            Operation::Create,
            None,
            BTreeMap::new(),
        )
        .unwrap();
        let images = cronjob.images(ImageSource::PodSpec("/spec/jobTemplate/spec/template/spec"));
        assert_eq!(
            images[0].pointer,
            "/spec/jobTemplate/spec/template/spec/containers/0/image"
        );

        let task = Resource::from_object(
            json!({"kind": "Task", "metadata": {"name": "t"}, "spec": {"steps": [{"name": "s1", "image": "ubuntu:bionic"}, {"name": "s2", "image": "alpine"}]}}),
            Operation::Create,
            None,
            BTreeMap::new(),
        )
        .unwrap();
        let simple = ImageExtractorConfig {
            path: "/spec/steps/*/image".into(),
            value: None,
            name: None,
            key: None,
            jmes_path: None,
        };
        let found = task.images(ImageSource::Extractors(std::slice::from_ref(&simple)));
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].pointer, "/spec/steps/0/image");
        assert_eq!(found[1].normalized(), "docker.io/alpine:latest");
        let complex = ImageExtractorConfig {
            path: "/spec/steps/*".into(),
            value: Some("image".into()),
            name: Some("steps".into()),
            key: Some("name".into()),
            jmes_path: Some("trim_prefix(@, 'docker://')".into()),
        };
        let found = task.images(ImageSource::Extractors(std::slice::from_ref(&complex)));
        assert_eq!(found[1].name, "s2");
        assert_eq!(found[1].group, "steps");
        assert!(found[1].unsupported.is_some());
    }

    #[test]
    fn objects_without_kind_are_errors() {
        assert_eq!(
            Resource::from_object(
                json!({"metadata": {}}),
                Operation::Create,
                None,
                BTreeMap::new()
            )
            .unwrap_err(),
            ResourceError::NoKind
        );
        assert_eq!(
            Resource::from_object(json!([1]), Operation::Create, None, BTreeMap::new())
                .unwrap_err(),
            ResourceError::NotAnObject
        );
    }

    #[test]
    fn pull_secrets_come_from_the_pod_spec_or_the_template() {
        let of = |object: Value| {
            Resource::from_object(object, Operation::Create, Some("default"), BTreeMap::new())
                .unwrap()
                .pull_secrets()
        };
        assert_eq!(
            of(
                serde_json::json!({"kind": "Pod", "metadata": {"name": "p"}, "spec": {
                    "containers": [{"image": "a"}],
                    "imagePullSecrets": [{"name": "regcred"}, {"name": "other"}, {"name": "regcred"}, {}]
                }})
            ),
            ["regcred", "other"]
        );
        assert_eq!(
            of(
                serde_json::json!({"kind": "Deployment", "metadata": {"name": "d"}, "spec": {
                    "template": {"spec": {"containers": [{"image": "a"}], "imagePullSecrets": [{"name": "t"}]}}
                }})
            ),
            ["t"]
        );
        assert_eq!(
            of(
                serde_json::json!({"kind": "CronJob", "metadata": {"name": "c"}, "spec": {
                    "jobTemplate": {"spec": {"template": {"spec": {"containers": [], "imagePullSecrets": [{"name": "cj"}]}}}}
                }})
            ),
            ["cj"]
        );
        assert!(of(serde_json::json!({"kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": []}})).is_empty());
    }
}
