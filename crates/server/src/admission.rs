//! `admission.k8s.io/v1` AdmissionReview: the request as the API server sends it, turned into the
//! engine's [`Resource`], and the response it expects (uid echoed, allowed, status, warnings,
//! base64 JSONPatch).
//!
//! Hand-written serde types for the fields sealgate reads and writes; unknown fields are ignored,
//! as the API server adds fields over time. Anything that is not a well-formed v1 AdmissionReview
//! with a request is a [`ReviewError`], which the routes answer with HTTP 400 (or 413 for an
//! oversized body) and the message: the API server never sends such a body, so whoever did gets
//! told what is wrong.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sealgate_core::engine::Resource;
use sealgate_core::policy::Operation;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The only AdmissionReview version sealgate speaks.
pub const API_VERSION: &str = "admission.k8s.io/v1";
/// The AdmissionReview kind.
pub const KIND: &str = "AdmissionReview";

/// Why a body is not an AdmissionReview sealgate can decide.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReviewError {
    /// The body is larger than the limit.
    #[error(
        "the AdmissionReview is larger than {limit} bytes; the API server never sends objects that large, so check what is calling the webhook"
    )]
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The body could not be read in time.
    #[error("the request body did not arrive within {budget} (the request's budget)")]
    BodyTimeout {
        /// The time allowed, as the flags write it (`8s`, `400ms`).
        budget: String,
    },
    /// The body could not be read.
    #[error("could not read the request body: {detail}")]
    Body {
        /// What went wrong.
        detail: String,
    },
    /// The body is not JSON (or not an object).
    #[error("the body is not a JSON AdmissionReview: {detail}")]
    Json {
        /// The parser's message, with line and column.
        detail: String,
    },
    /// Another `apiVersion`.
    #[error(
        "unsupported AdmissionReview apiVersion '{found}': sealgate speaks {API_VERSION}; set admissionReviewVersions: [\"v1\"] in the webhook configuration"
    )]
    ApiVersion {
        /// What the body said (empty when missing).
        found: String,
    },
    /// Another `kind`.
    #[error("the body's kind is '{found}', not AdmissionReview")]
    Kind {
        /// What the body said (empty when missing).
        found: String,
    },
    /// No `request`.
    #[error("the AdmissionReview has no request to decide")]
    MissingRequest,
    /// A `request` without a field sealgate needs, or with a field of the wrong type.
    #[error("the AdmissionReview request is malformed: {detail}")]
    Request {
        /// The parser's message.
        detail: String,
    },
}

/// `{group, version, kind}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct GroupVersionKind {
    /// API group ("" for the core group).
    #[serde(default)]
    pub group: String,
    /// Version, e.g. `v1`.
    #[serde(default)]
    pub version: String,
    /// Kind, e.g. `Pod`.
    pub kind: String,
}

/// `{group, version, resource}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct GroupVersionResource {
    /// API group.
    #[serde(default)]
    pub group: String,
    /// Version.
    #[serde(default)]
    pub version: String,
    /// Resource, e.g. `pods`.
    #[serde(default)]
    pub resource: String,
}

/// `request` of an AdmissionReview (the fields sealgate uses; the rest is ignored).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdmissionRequest {
    /// Echoed in the response.
    pub uid: String,
    /// The kind of the object.
    pub kind: GroupVersionKind,
    /// The resource.
    #[serde(default)]
    pub resource: GroupVersionResource,
    /// A subresource (`status`, `ephemeralcontainers`, …), if the request is for one.
    #[serde(default)]
    pub sub_resource: Option<String>,
    /// The object's name (may be empty on CREATE with generateName).
    #[serde(default)]
    pub name: Option<String>,
    /// The namespace of the request.
    #[serde(default)]
    pub namespace: Option<String>,
    /// CREATE, UPDATE, DELETE or CONNECT.
    pub operation: String,
    /// Who asked.
    #[serde(default)]
    pub user_info: Value,
    /// The object as it would be admitted (absent on DELETE).
    #[serde(default)]
    pub object: Option<Value>,
    /// The object before the change (UPDATE and DELETE).
    #[serde(default)]
    pub old_object: Option<Value>,
    /// A dry run: decided, but nothing is persisted.
    #[serde(default)]
    pub dry_run: Option<bool>,
    /// Operation options (CreateOptions, …).
    #[serde(default)]
    pub options: Option<Value>,
}

impl AdmissionRequest {
    /// The operation, if it is one of the four Kubernetes knows.
    pub fn operation(&self) -> Option<Operation> {
        match self.operation.as_str() {
            "CREATE" => Some(Operation::Create),
            "UPDATE" => Some(Operation::Update),
            "DELETE" => Some(Operation::Delete),
            "CONNECT" => Some(Operation::Connect),
            _ => None,
        }
    }

    /// The request's members besides `object`, as Kyverno's `request` variable holds them.
    pub fn variables(&self) -> Value {
        let mut map = serde_json::Map::new();
        let mut put = |name: &str, value: Value| {
            if !value.is_null() {
                map.insert(name.to_string(), value);
            }
        };
        put("uid", Value::String(self.uid.clone()));
        put(
            "kind",
            serde_json::to_value(&self.kind).unwrap_or(Value::Null),
        );
        put(
            "resource",
            serde_json::to_value(&self.resource).unwrap_or(Value::Null),
        );
        if let Some(sub) = &self.sub_resource {
            put("subResource", Value::String(sub.clone()));
        }
        if let Some(name) = &self.name {
            put("name", Value::String(name.clone()));
        }
        if let Some(namespace) = &self.namespace {
            put("namespace", Value::String(namespace.clone()));
        }
        put("operation", Value::String(self.operation.clone()));
        put("userInfo", self.user_info.clone());
        put("oldObject", self.old_object.clone().unwrap_or(Value::Null));
        put(
            "dryRun",
            self.dry_run.map(Value::Bool).unwrap_or(Value::Null),
        );
        put("options", self.options.clone().unwrap_or(Value::Null));
        Value::Object(map)
    }

    /// Whether this is a dry run.
    pub fn is_dry_run(&self) -> bool {
        self.dry_run.unwrap_or(false)
    }

    /// The object to review as the engine's [`Resource`]: `request.object`, with the request's
    /// kind and namespace filled in where the object leaves them out (on CREATE the namespace
    /// often comes only from the URL).
    pub fn resource(&self, operation: Operation) -> Result<Resource, String> {
        self.resource_of(self.object.clone(), operation)
    }

    /// [`AdmissionRequest::resource`], moving the object out of the request instead of copying
    /// it (`request.object` is `None` afterwards).
    pub fn take_resource(&mut self, operation: Operation) -> Result<Resource, String> {
        let object = self.object.take();
        self.resource_of(object, operation)
    }

    fn resource_of(&self, object: Option<Value>, operation: Operation) -> Result<Resource, String> {
        let Some(mut object) = object.filter(|o| !o.is_null()) else {
            return Err(format!(
                "request.object is missing for a {} of {}",
                self.operation, self.kind.kind
            ));
        };
        match object.as_object_mut() {
            Some(map) => match map.get("kind") {
                None | Some(Value::Null) => {
                    map.insert("kind".into(), Value::String(self.kind.kind.clone()));
                }
                Some(Value::String(kind)) if kind.is_empty() => {
                    map.insert("kind".into(), Value::String(self.kind.kind.clone()));
                }
                // Rules are matched by the kind the API server names; an object that claims
                // another would be checked (or skipped) as something it is not.
                Some(Value::String(kind)) if *kind != self.kind.kind => {
                    return Err(format!(
                        "request.object.kind is '{kind}' but request.kind.kind is '{}': the object is not the kind the request names, so it is refused",
                        self.kind.kind
                    ));
                }
                Some(Value::String(_)) => {}
                Some(_) => {
                    return Err("request.object.kind is not a string: refused".into());
                }
            },
            None => return Err("request.object is not a JSON object".into()),
        }
        Resource::from_object(
            object,
            operation,
            self.namespace.as_deref().filter(|n| !n.is_empty()),
            BTreeMap::new(),
        )
        .map(Resource::without_namespace_labels)
        .map_err(|e| format!("request.object: {e}"))
    }
}

/// Parses a v1 AdmissionReview and returns its request.
///
/// The body is parsed once into a JSON tree; the request's large members (`object`,
/// `oldObject`, `userInfo`, `options`) are moved out of that tree, not rebuilt, and the small
/// rest is read into [`AdmissionRequest`].
pub fn parse_review(body: &[u8]) -> Result<AdmissionRequest, ReviewError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| ReviewError::Json {
        detail: e.to_string(),
    })?;
    let Value::Object(mut envelope) = value else {
        return Err(ReviewError::Json {
            detail: format!("expected an object, found {}", json_type(&value)),
        });
    };
    let text = |v: Option<&Value>| {
        v.map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
            .unwrap_or_default()
    };
    let api_version = text(envelope.get("apiVersion"));
    if api_version != API_VERSION {
        return Err(ReviewError::ApiVersion { found: api_version });
    }
    let kind = text(envelope.get("kind"));
    if kind != KIND {
        return Err(ReviewError::Kind { found: kind });
    }
    let request = envelope
        .remove("request")
        .filter(|r| !r.is_null())
        .ok_or(ReviewError::MissingRequest)?;
    let malformed = |e: serde_json::Error| ReviewError::Request {
        detail: e.to_string(),
    };
    let Value::Object(mut fields) = request else {
        return serde_json::from_value(request).map_err(malformed);
    };
    // `null` reads as absent, as serde reads an `Option` from `null`.
    let mut take = |name: &str| fields.remove(name).filter(|v| !v.is_null());
    let object = take("object");
    let old_object = take("oldObject");
    let user_info = take("userInfo");
    let options = take("options");
    let mut request: AdmissionRequest =
        serde_json::from_value(Value::Object(fields)).map_err(malformed)?;
    request.object = object;
    request.old_object = old_object;
    request.user_info = user_info.unwrap_or(Value::Null);
    request.options = options;
    Ok(request)
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// `response.status` of a refused request (a `metav1.Status`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResponseStatus {
    /// Always `Failure`.
    pub status: &'static str,
    /// The reason shown to the user.
    pub message: String,
    /// `Forbidden` for 403, `BadRequest` for 400.
    pub reason: &'static str,
    /// The HTTP code the API server reports to the user.
    pub code: u16,
}

/// `response` of an AdmissionReview.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AdmissionResponse {
    /// The request's uid.
    pub uid: String,
    /// The decision.
    pub allowed: bool,
    /// Why not, when refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<ResponseStatus>,
    /// Shown to the user (kubectl prints them as `Warning: …`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// Base64 of a JSON Patch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patch: Option<String>,
    /// `JSONPatch` when there is a patch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patch_type: Option<&'static str>,
}

impl AdmissionResponse {
    /// Allows the request `uid`.
    pub fn allow(uid: &str) -> AdmissionResponse {
        AdmissionResponse {
            uid: uid.to_string(),
            allowed: true,
            status: None,
            warnings: Vec::new(),
            patch: None,
            patch_type: None,
        }
    }

    /// Refuses the request: 403 for a policy denial.
    #[must_use]
    pub fn deny(mut self, message: impl Into<String>) -> AdmissionResponse {
        self.allowed = false;
        self.status = Some(ResponseStatus {
            status: "Failure",
            message: message.into(),
            reason: "Forbidden",
            code: 403,
        });
        self.patch = None;
        self.patch_type = None;
        self
    }

    /// Refuses a request sealgate cannot review (400), e.g. a CREATE without an object.
    #[must_use]
    pub fn invalid(mut self, message: impl Into<String>) -> AdmissionResponse {
        self.allowed = false;
        self.status = Some(ResponseStatus {
            status: "Failure",
            message: message.into(),
            reason: "BadRequest",
            code: 400,
        });
        self
    }

    /// Adds warnings (one line each: the API server puts them in HTTP headers).
    #[must_use]
    pub fn with_warnings(mut self, warnings: &[String]) -> AdmissionResponse {
        self.warnings
            .extend(warnings.iter().map(|w| w.replace(['\n', '\r'], " ")));
        self
    }

    /// Adds a JSON Patch (nothing when `patch` is empty), typed as kube-core's `with_patch`
    /// takes it; [`review`](crate::review) checks that it applies before adding it.
    #[must_use]
    pub fn with_patch(mut self, patch: &json_patch::Patch) -> AdmissionResponse {
        if patch.0.is_empty() {
            return self;
        }
        // Sized up front: growing the buffer step by step (from 128 bytes) cost more than
        // writing it. Serialising JSON values cannot fail.
        let mut json = Vec::with_capacity(1024);
        let _ = serde_json::to_writer(&mut json, patch);
        self.patch = Some(STANDARD.encode(json));
        self.patch_type = Some("JSONPatch");
        self
    }

    /// The whole AdmissionReview to send back.
    pub fn into_review(self) -> Value {
        serde_json::json!({
            "apiVersion": API_VERSION,
            "kind": KIND,
            "response": self,
        })
    }

    /// The whole AdmissionReview to send back, serialised straight from this response (what
    /// [`AdmissionResponse::into_review`] holds, without building a JSON tree first).
    pub fn to_review_json(&self) -> Vec<u8> {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Review<'a> {
            api_version: &'static str,
            kind: &'static str,
            response: &'a AdmissionResponse,
        }
        // Sized up front (the patch, warnings and message are most of it): growing the buffer
        // from serde_json's 128 bytes took more time than writing the answer. The response holds
        // strings, booleans and numbers only: serialising cannot fail.
        let text: usize = self.patch.as_ref().map_or(0, String::len)
            + self.warnings.iter().map(String::len).sum::<usize>()
            + self.status.as_ref().map_or(0, |s| s.message.len());
        let mut out = Vec::with_capacity(256 + text + text / 8);
        let _ = serde_json::to_writer(
            &mut out,
            &Review {
                api_version: API_VERSION,
                kind: KIND,
                response: self,
            },
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn typed(patch: Value) -> json_patch::Patch {
        serde_json::from_value(patch).unwrap()
    }

    fn review(request: Value) -> Vec<u8> {
        json!({"apiVersion": API_VERSION, "kind": KIND, "request": request})
            .to_string()
            .into_bytes()
    }

    #[test]
    fn a_pod_create_becomes_a_resource_with_the_request_namespace() {
        let body = review(json!({
            "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": "team-a",
            "operation": "CREATE",
            "userInfo": {"username": "admin"},
            "object": {"apiVersion": "v1", "kind": "Pod", "metadata": {"generateName": "web-"},
                       "spec": {"containers": [{"name": "c", "image": "nginx"}]}},
            "oldObject": null,
            "dryRun": true,
            "options": {"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1"},
            "somethingNew": 1
        }));
        let request = parse_review(&body).unwrap();
        assert_eq!(request.uid, "705ab4f5-6393-11e8-b7cc-42010a800002");
        assert!(request.is_dry_run());
        let resource = request.resource(Operation::Create).unwrap();
        assert_eq!(resource.display_name(), "Pod/team-a/web-");
        assert!(
            !resource.namespace_labels_known,
            "a review does not carry the namespace's labels: selectors on them fail closed"
        );
        assert_eq!(request.user_info, json!({"username": "admin"}));
        assert!(request.old_object.is_none(), "null reads as absent");
        assert_eq!(request.options.as_ref().unwrap()["kind"], "CreateOptions");

        let mut request = request;
        let taken = request.take_resource(Operation::Create).unwrap();
        assert_eq!(taken.display_name(), "Pod/team-a/web-");
        assert!(request.object.is_none());
        assert_eq!(
            request.take_resource(Operation::Create).unwrap_err(),
            "request.object is missing for a CREATE of Pod"
        );
    }

    #[test]
    fn what_is_not_a_v1_review_with_a_request_says_what_is_wrong() {
        let cases: [(&[u8], &str); 7] = [
            (b"{not json", "the body is not a JSON AdmissionReview: key must be a string at line 1 column 2"),
            (b"[]", "the body is not a JSON AdmissionReview: expected an object, found an array"),
            (br#"{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview","request":{}}"#,
             "unsupported AdmissionReview apiVersion 'admission.k8s.io/v1beta1': sealgate speaks admission.k8s.io/v1"),
            (br#"{"kind":"AdmissionReview"}"#, "unsupported AdmissionReview apiVersion ''"),
            (br#"{"apiVersion":"admission.k8s.io/v1","kind":"Pod"}"#, "the body's kind is 'Pod', not AdmissionReview"),
            (br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#, "the AdmissionReview has no request to decide"),
            (br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"kind":{"kind":"Pod"},"operation":"CREATE"}}"#,
             "the AdmissionReview request is malformed: missing field `uid`"),
        ];
        for (body, want) in cases {
            let e = parse_review(body).unwrap_err().to_string();
            assert!(
                e.starts_with(want),
                "{}: {e}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn responses_echo_the_uid_and_carry_status_warnings_and_a_base64_patch() {
        let r = AdmissionResponse::allow("u1")
            .with_warnings(&["policy p.r: two\nlines".into()])
            .with_patch(&typed(
                json!([{"op": "add", "path": "/metadata/annotations", "value": {}}]),
            ));
        let v = r.into_review();
        assert_eq!(v["apiVersion"], API_VERSION);
        assert_eq!(v["response"]["uid"], "u1");
        assert_eq!(v["response"]["allowed"], true);
        assert_eq!(v["response"]["warnings"][0], "policy p.r: two lines");
        assert_eq!(v["response"]["patchType"], "JSONPatch");
        let patch = STANDARD
            .decode(v["response"]["patch"].as_str().unwrap())
            .unwrap();
        assert_eq!(
            serde_json::from_slice::<Value>(&patch).unwrap(),
            json!([{"op": "add", "path": "/metadata/annotations", "value": {}}])
        );
        assert!(v["response"].get("status").is_none());
        let r = AdmissionResponse::allow("u1")
            .with_warnings(&["w".into()])
            .with_patch(&typed(json!([{"op": "add", "path": "/x", "value": 1}])));
        assert_eq!(
            serde_json::from_slice::<Value>(&r.to_review_json()).unwrap(),
            r.clone().into_review(),
            "the direct serialisation says the same"
        );

        let v = AdmissionResponse::allow("u2")
            .with_patch(&typed(json!([{"op": "remove", "path": "/x"}])))
            .deny("no")
            .into_review();
        assert_eq!(v["response"]["allowed"], false);
        assert_eq!(v["response"]["status"]["code"], 403);
        assert_eq!(v["response"]["status"]["message"], "no");
        assert!(
            v["response"].get("patch").is_none(),
            "a denial carries no patch"
        );
    }
}
