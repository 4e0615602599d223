//! Applying CRD manifests (the Gateway API's, for the Envoy data plane) before watching.

use std::path::Path;
use std::time::{Duration, Instant};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams};
use kube::Client;
use tracing::info;

use crate::Error;

/// Server-side applies every CRD of a YAML stream and waits until each is Established.
pub async fn apply(client: &Client, file: &Path) -> Result<(), Error> {
    let text = tokio::fs::read_to_string(file)
        .await
        .map_err(|e| Error::io(file, e))?;
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let mut names = Vec::new();
    for doc in serde_yaml_ng::Deserializer::from_str(&text) {
        let value: serde_json::Value = serde::Deserialize::deserialize(doc)
            .map_err(|e| Error::Crds(format!("{}: {e}", file.display())))?;
        if value.is_null() {
            continue;
        }
        let crd: CustomResourceDefinition = serde_json::from_value(value)
            .map_err(|e| Error::Crds(format!("{}: {e}", file.display())))?;
        let name = crd.metadata.name.clone().unwrap_or_default();
        api.patch(
            &name,
            &PatchParams::apply("rollouts-dataplane").force(),
            &Patch::Apply(&crd),
        )
        .await
        .map_err(Error::Kube)?;
        names.push(name);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    for name in names {
        loop {
            let crd = api.get(&name).await.map_err(Error::Kube)?;
            let conditions = crd.status.and_then(|s| s.conditions).unwrap_or_default();
            if conditions
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True")
            {
                info!(crd = name, "established");
                break;
            }
            if Instant::now() > deadline {
                return Err(Error::Crds(format!(
                    "CRD {name} was not Established within 30 s"
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(())
}
