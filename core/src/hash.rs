//! Pod-template and step hashes.
//!
//! The scheme is Argo's: FNV-32a over the JSON of the object (plus the collision count),
//! the decimal digits of the sum mapped onto a 27-letter alphabet without vowels. The JSON
//! is this crate's canonical serialization (object keys in a fixed order), not Go's
//! `encoding/json` byte stream, so the same template hashes differently here and in Argo.
//! That is a deliberate divergence: an existing ReplicaSet is matched by the hash label
//! first and by semantic equality of the pod template second (see
//! [`crate::rollout::replicasets`]), so ReplicaSets created by Argo are still adopted.

use k8s_openapi::api::core::v1::PodTemplateSpec;

use crate::api::CanaryStep;

const FNV_OFFSET: u32 = 0x811c_9dc5;
const FNV_PRIME: u32 = 0x0100_0193;
const SAFE_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

fn fnv32a(bytes: &[u8], mut h: u32) -> u32 {
    for b in bytes {
        h ^= u32::from(*b);
        h = h.wrapping_mul(FNV_PRIME);
    }
    h
}

/// Maps each decimal digit of `n` onto the safe alphabet (Kubernetes' `rand.SafeEncodeString`).
fn safe_encode(n: u32) -> String {
    n.to_string().bytes().map(|c| SAFE_ALPHABET[usize::from(c) % SAFE_ALPHABET.len()] as char).collect()
}

/// The `rollouts-pod-template-hash` of a pod template.
pub fn pod_template_hash(template: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    let json = serde_json::to_vec(template).unwrap_or_default();
    let mut h = fnv32a(&json, FNV_OFFSET);
    if let Some(c) = collision_count {
        // Argo appends the count as 4 little-endian bytes followed by 4 zero bytes.
        let mut extra = [0u8; 8];
        extra[..4].copy_from_slice(&(c as u32).to_le_bytes());
        h = fnv32a(&extra, h);
    }
    safe_encode(h)
}

/// A short, safe-alphabet hash of any text (used to shorten generated names).
pub fn short_hash(text: &str) -> String {
    safe_encode(fnv32a(text.as_bytes(), FNV_OFFSET))
}

/// The hash of a canary step list (`status.currentStepHash`).
pub fn steps_hash(steps: &[CanaryStep]) -> String {
    let json = serde_json::to_vec(steps).unwrap_or_default();
    safe_encode(fnv32a(&json, FNV_OFFSET))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_matches_reference_vectors() {
        assert_eq!(fnv32a(b"", FNV_OFFSET), 0x811c9dc5);
        assert_eq!(fnv32a(b"a", FNV_OFFSET), 0xe40c292c);
        assert_eq!(fnv32a(b"foobar", FNV_OFFSET), 0xbf9cf968);
    }

    #[test]
    fn hashes_use_the_safe_alphabet_and_depend_on_collisions() {
        let t = PodTemplateSpec::default();
        let a = pod_template_hash(&t, None);
        assert!(a.bytes().all(|c| SAFE_ALPHABET.contains(&c)));
        assert_ne!(a, pod_template_hash(&t, Some(1)));
        assert_eq!(a, pod_template_hash(&t, None));
    }
}
