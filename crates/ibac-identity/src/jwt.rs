//! JWT-SVIDs: short-lived, audience-bound ES256 tokens in the JWS compact
//! form, signed with a P-256 key of the trust domain, and JWT bundles (a JWKS
//! of `use: jwt-svid` keys) to check them. Only what the SPIFFE JWT-SVID spec
//! needs; headers and claims are read strictly, and no input is trusted
//! before its signature verifies against a key of the bundle.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::digest::{SHA256, digest};
use ring::rand::SystemRandom;
use ring::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _,
    UnparsedPublicKey,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::Duration;

use crate::spiffe_id::{SpiffeId, TrustDomain};

/// Default lifetime of a JWT-SVID.
pub const DEFAULT_JWT_TTL: Duration = Duration::minutes(5);
/// The longest token read; anything longer is refused before parsing.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;
/// At most this many audiences in one token.
pub const MAX_AUDIENCES: usize = 16;
/// At most this long, each audience.
pub const MAX_AUDIENCE_LEN: usize = 512;
/// How far in the future `iat` and `nbf` may be, for clocks slightly ahead.
const LEEWAY_SECONDS: i64 = 30;
/// The only signature algorithm ibac signs and accepts.
const ALG: &str = "ES256";
/// The `use` of keys for JWT-SVIDs in a SPIFFE bundle.
const KEY_USE: &str = "jwt-svid";

/// Why a JWT-SVID was not made or not accepted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    /// Longer than [`MAX_TOKEN_LEN`].
    #[error("the token is {0} bytes long; at most {MAX_TOKEN_LEN} are accepted")]
    TooLong(usize),
    /// Not `header.payload.signature` in base64url and JSON.
    #[error("the token is not a signed JWT in compact form: {0}")]
    Malformed(String),
    /// `alg: none`.
    #[error("the token is unsigned (`alg: none`); a JWT-SVID must be signed")]
    Unsigned,
    /// Another algorithm than ES256.
    #[error("the token's algorithm `{0}` is not accepted; ibac's JWT-SVIDs are ES256")]
    Algorithm(String),
    /// A header field JWT-SVIDs do not use, or a bad one.
    #[error("the token header is not accepted: {0}")]
    Header(String),
    /// A claim is missing or of the wrong type.
    #[error("claim `{claim}` {reason}")]
    Claim {
        /// The claim.
        claim: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// `sub` is not a SPIFFE ID.
    #[error("`sub` `{sub}` is not a SPIFFE ID: {reason}")]
    Subject {
        /// The claim's value.
        sub: String,
        /// Why.
        reason: String,
    },
    /// The subject is in a trust domain no bundle is held for.
    #[error("`{id}` is in a foreign trust domain; only tokens of `{trust_domain}` are accepted")]
    ForeignTrustDomain {
        /// The subject.
        id: String,
        /// The trust domain of the bundle.
        trust_domain: TrustDomain,
    },
    /// `kid` names no key of the bundle.
    #[error(
        "key `{kid}` is not in the JWT bundle of `{trust_domain}`: the token was signed by another issuer, or with a key retired since"
    )]
    UnknownKey {
        /// The key id.
        kid: String,
        /// The trust domain.
        trust_domain: TrustDomain,
    },
    /// The signature does not verify.
    #[error("the signature does not verify with key `{0}`")]
    Signature(String),
    /// `exp` has passed.
    #[error("the token expired {ago} s ago (exp {exp})")]
    Expired {
        /// The claim.
        exp: i64,
        /// Seconds since.
        ago: i64,
    },
    /// `nbf` or `iat` is in the future.
    #[error("the token is not valid yet ({claim} {at}, {ahead} s from now)")]
    NotYetValid {
        /// `nbf` or `iat`.
        claim: &'static str,
        /// The claim.
        at: i64,
        /// Seconds ahead.
        ahead: i64,
    },
    /// The audience asked for is not among the token's.
    #[error("the token is for {got}, not for `{want}`")]
    Audience {
        /// The audience the validator stands for.
        want: String,
        /// The token's audiences, listed.
        got: String,
    },
    /// An audience asked for at signing is unusable.
    #[error("{0}")]
    BadAudience(String),
    /// The signing key is unusable.
    #[error("cannot use the JWT signing key: {0}")]
    Key(String),
    /// A JWKS could not be read.
    #[error("the JWT bundle is invalid: {0}")]
    Bundle(String),
}

/// Checks the audiences a token is asked for: one at least, each non-empty.
pub fn check_audience(audience: &[String]) -> Result<(), JwtError> {
    if audience.is_empty() {
        return Err(JwtError::BadAudience(
            "a JWT-SVID needs at least one audience".into(),
        ));
    }
    if audience.len() > MAX_AUDIENCES {
        return Err(JwtError::BadAudience(format!(
            "{} audiences asked for; at most {MAX_AUDIENCES} are allowed",
            audience.len()
        )));
    }
    for aud in audience {
        if aud.is_empty() || aud.len() > MAX_AUDIENCE_LEN || aud.chars().any(char::is_control) {
            return Err(JwtError::BadAudience(format!(
                "`{}` is not a usable audience: it must be 1 to {MAX_AUDIENCE_LEN} bytes without control characters",
                aud.escape_debug()
            )));
        }
    }
    Ok(())
}

/// A public key of a JWT bundle: a P-256 point and its key id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JwtPublicKey {
    kid: String,
    /// The uncompressed point, `04 || x || y`.
    point: Vec<u8>,
}

/// One key of a JWKS, as written and read.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Jwk {
    /// Key type; `EC`.
    pub kty: String,
    /// Key id.
    #[serde(default)]
    pub kid: Option<String>,
    /// Curve; `P-256`.
    #[serde(default)]
    pub crv: Option<String>,
    /// X coordinate, base64url.
    #[serde(default)]
    pub x: Option<String>,
    /// Y coordinate, base64url.
    #[serde(default)]
    pub y: Option<String>,
    /// What the key is for; `jwt-svid`.
    #[serde(default, rename = "use", skip_serializing_if = "Option::is_none")]
    pub key_use: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Jwks {
    keys: Vec<Jwk>,
}

impl JwtPublicKey {
    fn from_point(point: Vec<u8>) -> Result<Self, JwtError> {
        if point.len() != 65 || point[0] != 4 {
            return Err(JwtError::Key("not an uncompressed P-256 point".into()));
        }
        let (x, y) = (
            URL_SAFE_NO_PAD.encode(&point[1..33]),
            URL_SAFE_NO_PAD.encode(&point[33..]),
        );
        // The RFC 7638 thumbprint: the required members, sorted, no spaces.
        let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
        let kid = URL_SAFE_NO_PAD.encode(digest(&SHA256, canonical.as_bytes()));
        Ok(JwtPublicKey { kid, point })
    }

    /// The key id.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// As a JWK with `use: jwt-svid`.
    pub fn to_jwk(&self) -> Jwk {
        Jwk {
            kty: "EC".into(),
            kid: Some(self.kid.clone()),
            crv: Some("P-256".into()),
            x: Some(URL_SAFE_NO_PAD.encode(&self.point[1..33])),
            y: Some(URL_SAFE_NO_PAD.encode(&self.point[33..])),
            key_use: Some(KEY_USE.into()),
        }
    }

    /// Reads a JWK; `None` for a key of another use (an `x509-svid` key of a
    /// SPIFFE bundle).
    pub fn from_jwk(jwk: &Jwk) -> Result<Option<Self>, JwtError> {
        if jwk.key_use.as_deref().is_some_and(|u| u != KEY_USE) {
            return Ok(None);
        }
        if jwk.kty != "EC" || jwk.crv.as_deref() != Some("P-256") {
            return Err(JwtError::Bundle(format!(
                "key type `{}` curve `{}` is not EC P-256",
                jwk.kty,
                jwk.crv.as_deref().unwrap_or("")
            )));
        }
        let coordinate = |c: &Option<String>, name: &str| -> Result<Vec<u8>, JwtError> {
            let bytes = URL_SAFE_NO_PAD
                .decode(c.as_deref().unwrap_or(""))
                .map_err(|e| JwtError::Bundle(format!("`{name}` is not base64url: {e}")))?;
            if bytes.len() != 32 {
                return Err(JwtError::Bundle(format!("`{name}` is not 32 bytes")));
            }
            Ok(bytes)
        };
        let mut point = vec![4u8];
        point.extend(coordinate(&jwk.x, "x")?);
        point.extend(coordinate(&jwk.y, "y")?);
        let mut key = Self::from_point(point)?;
        match jwk.kid.as_deref() {
            Some(kid) if !kid.is_empty() => key.kid = kid.to_string(),
            _ => return Err(JwtError::Bundle("a key has no `kid`".into())),
        }
        Ok(Some(key))
    }
}

/// The key a trust domain signs JWT-SVIDs with.
pub struct JwtKey {
    pair: EcdsaKeyPair,
    pkcs8: Vec<u8>,
    public: JwtPublicKey,
    rng: SystemRandom,
}

impl std::fmt::Debug for JwtKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtKey")
            .field("kid", &self.public.kid)
            .finish()
    }
}

impl JwtKey {
    /// A fresh P-256 key.
    pub fn generate() -> Result<Self, JwtError> {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|_| JwtError::Key("no randomness for a new key".into()))?;
        Self::from_pkcs8(pkcs8.as_ref())
    }

    /// A key from its PKCS#8 DER.
    pub fn from_pkcs8(der: &[u8]) -> Result<Self, JwtError> {
        let rng = SystemRandom::new();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der, &rng)
            .map_err(|e| JwtError::Key(format!("not a PKCS#8 ECDSA P-256 key ({e})")))?;
        let public = JwtPublicKey::from_point(pair.public_key().as_ref().to_vec())?;
        Ok(JwtKey {
            pair,
            pkcs8: der.to_vec(),
            public,
            rng,
        })
    }

    /// The PKCS#8 DER, to keep on disk.
    pub fn pkcs8(&self) -> &[u8] {
        &self.pkcs8
    }

    /// The public half, for the bundle.
    pub fn public(&self) -> &JwtPublicKey {
        &self.public
    }

    /// Signs a JWT-SVID for `id` and `audience`, issued at `now` (unix
    /// seconds), expiring `ttl` later.
    pub fn sign(
        &self,
        id: &SpiffeId,
        audience: &[String],
        now: i64,
        ttl: Duration,
    ) -> Result<String, JwtError> {
        check_audience(audience)?;
        let mut claims = Map::new();
        claims.insert("sub".into(), Value::from(id.as_str()));
        claims.insert("aud".into(), Value::from(audience.to_vec()));
        claims.insert("exp".into(), Value::from(now + ttl.whole_seconds()));
        claims.insert("iat".into(), Value::from(now));
        self.sign_claims(&claims)
    }

    /// Signs arbitrary claims (tests and tools; workloads use [`JwtKey::sign`]).
    pub fn sign_claims(&self, claims: &Map<String, Value>) -> Result<String, JwtError> {
        let header = serde_json::json!({"alg": ALG, "kid": self.public.kid, "typ": "JWT"});
        let header = serde_json::to_vec(&header).map_err(|e| JwtError::Key(e.to_string()))?;
        let claims = serde_json::to_vec(claims).map_err(|e| JwtError::Key(e.to_string()))?;
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(claims)
        );
        let signature = self
            .pair
            .sign(&self.rng, input.as_bytes())
            .map_err(|_| JwtError::Key("signing failed".into()))?;
        Ok(format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature)))
    }
}

/// The keys a trust domain's JWT-SVIDs may be signed with: the current one
/// and retired ones whose tokens may still be alive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JwtBundle {
    trust_domain: TrustDomain,
    keys: Vec<JwtPublicKey>,
}

impl JwtBundle {
    /// A bundle of these keys.
    pub fn new(trust_domain: TrustDomain, keys: Vec<JwtPublicKey>) -> Self {
        JwtBundle { trust_domain, keys }
    }

    /// The trust domain.
    pub fn trust_domain(&self) -> &TrustDomain {
        &self.trust_domain
    }

    /// The keys.
    pub fn keys(&self) -> &[JwtPublicKey] {
        &self.keys
    }

    /// Whether a key of this id is held.
    pub fn has_key(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid == kid)
    }

    /// As JWKS JSON, as the Workload API and the issuer send it.
    pub fn to_jwks(&self) -> Vec<u8> {
        let jwks = Jwks {
            keys: self.keys.iter().map(JwtPublicKey::to_jwk).collect(),
        };
        serde_json::to_vec(&jwks).unwrap_or_default()
    }

    /// Reads JWKS JSON; keys of another use are skipped.
    pub fn from_jwks(trust_domain: TrustDomain, json: &[u8]) -> Result<Self, JwtError> {
        let jwks: Jwks =
            serde_json::from_slice(json).map_err(|e| JwtError::Bundle(e.to_string()))?;
        let mut keys = Vec::new();
        for jwk in &jwks.keys {
            if let Some(key) = JwtPublicKey::from_jwk(jwk)? {
                keys.push(key);
            }
        }
        Ok(JwtBundle::new(trust_domain, keys))
    }
}

/// A JWT-SVID that passed every check.
#[derive(Clone, Debug, PartialEq)]
pub struct ValidJwt {
    /// The subject.
    pub id: SpiffeId,
    /// Its audiences.
    pub audience: Vec<String>,
    /// Unix seconds.
    pub expires: i64,
    /// Every claim, as JSON.
    pub claims: Map<String, Value>,
}

fn malformed(what: &str) -> JwtError {
    JwtError::Malformed(what.into())
}

fn decode_part(part: &str, what: &str) -> Result<Vec<u8>, JwtError> {
    URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| JwtError::Malformed(format!("the {what} is not unpadded base64url")))
}

fn json_object(bytes: &[u8], what: &str) -> Result<Map<String, Value>, JwtError> {
    match serde_json::from_slice(bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(JwtError::Malformed(format!(
            "the {what} is not a JSON object"
        ))),
        Err(e) => Err(JwtError::Malformed(format!("the {what} is not JSON ({e})"))),
    }
}

fn check_header(header: &Map<String, Value>) -> Result<String, JwtError> {
    let alg = match header.get("alg") {
        Some(Value::String(alg)) => alg,
        Some(_) => return Err(JwtError::Header("`alg` is not a string".into())),
        None => return Err(JwtError::Header("`alg` is missing".into())),
    };
    if alg.eq_ignore_ascii_case("none") {
        return Err(JwtError::Unsigned);
    }
    if alg != ALG {
        return Err(JwtError::Algorithm(alg.escape_debug().to_string()));
    }
    for (name, value) in header {
        match (name.as_str(), value) {
            ("alg", _) => {}
            ("kid", Value::String(kid)) if !kid.is_empty() => {}
            ("kid", _) => return Err(JwtError::Header("`kid` is not a key id".into())),
            ("typ", Value::String(t)) if t == "JWT" || t == "JOSE" => {}
            ("typ", _) => return Err(JwtError::Header("`typ` is neither JWT nor JOSE".into())),
            (other, _) => {
                return Err(JwtError::Header(format!(
                    "field `{}` is not used by JWT-SVIDs",
                    other.escape_debug()
                )));
            }
        }
    }
    match header.get("kid") {
        Some(Value::String(kid)) => Ok(kid.clone()),
        _ => Err(JwtError::Header(
            "`kid` is missing; a JWT-SVID names its key".into(),
        )),
    }
}

fn numeric(claims: &Map<String, Value>, claim: &'static str) -> Result<Option<i64>, JwtError> {
    match claims.get(claim) {
        None => Ok(None),
        Some(Value::Number(n)) => match n.as_i64() {
            Some(v) => Ok(Some(v)),
            // NumericDate may have a fraction; whole seconds are enough here.
            None => match n.as_f64() {
                Some(f) if f.is_finite() && f.abs() < 1e15 => Ok(Some(f.floor() as i64)),
                _ => Err(JwtError::Claim {
                    claim,
                    reason: "is not a time in seconds".into(),
                }),
            },
        },
        Some(_) => Err(JwtError::Claim {
            claim,
            reason: "is not a number".into(),
        }),
    }
}

fn audiences(claims: &Map<String, Value>) -> Result<Vec<String>, JwtError> {
    let missing = || JwtError::Claim {
        claim: "aud",
        reason: "is missing or empty; a JWT-SVID is bound to an audience".into(),
    };
    let list = match claims.get("aud") {
        Some(Value::String(a)) => vec![a.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| match v {
                Value::String(a) => Ok(a.clone()),
                _ => Err(JwtError::Claim {
                    claim: "aud",
                    reason: "holds a value that is not a string".into(),
                }),
            })
            .collect::<Result<_, _>>()?,
        Some(_) => {
            return Err(JwtError::Claim {
                claim: "aud",
                reason: "is neither a string nor a list of strings".into(),
            });
        }
        None => return Err(missing()),
    };
    if list.is_empty() || list.iter().any(String::is_empty) {
        return Err(missing());
    }
    Ok(list)
}

/// Checks a JWT-SVID against `bundle` for `audience` at `now` (unix seconds):
/// the header (ES256 with a `kid` only), the subject's trust domain, the key,
/// the signature, then `exp` (required), `nbf` and `iat`, and the audience.
pub fn validate(
    token: &str,
    bundle: &JwtBundle,
    audience: &str,
    now: i64,
) -> Result<ValidJwt, JwtError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(JwtError::TooLong(token.len()));
    }
    let mut parts = token.split('.');
    let (Some(header_b64), Some(claims_b64), Some(signature_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed("it must have three parts separated by dots"));
    };
    let header = json_object(&decode_part(header_b64, "header")?, "header")?;
    let kid = check_header(&header)?;
    let claims = json_object(&decode_part(claims_b64, "payload")?, "payload")?;
    let sub = match claims.get("sub") {
        Some(Value::String(sub)) => sub,
        Some(_) => {
            return Err(JwtError::Claim {
                claim: "sub",
                reason: "is not a string".into(),
            });
        }
        None => {
            return Err(JwtError::Claim {
                claim: "sub",
                reason: "is missing; it holds the SPIFFE ID".into(),
            });
        }
    };
    let id = SpiffeId::parse(sub).map_err(|e| JwtError::Subject {
        sub: sub.escape_debug().to_string(),
        reason: e.to_string(),
    })?;
    if id.trust_domain() != bundle.trust_domain.as_str() {
        return Err(JwtError::ForeignTrustDomain {
            id: id.to_string(),
            trust_domain: bundle.trust_domain.clone(),
        });
    }
    let Some(key) = bundle.keys.iter().find(|k| k.kid == kid) else {
        return Err(JwtError::UnknownKey {
            kid: kid.escape_debug().to_string(),
            trust_domain: bundle.trust_domain.clone(),
        });
    };
    let signature = decode_part(signature_b64, "signature")?;
    let signed = &token.as_bytes()[..header_b64.len() + 1 + claims_b64.len()];
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &key.point)
        .verify(signed, &signature)
        .map_err(|_| JwtError::Signature(key.kid.clone()))?;

    let Some(exp) = numeric(&claims, "exp")? else {
        return Err(JwtError::Claim {
            claim: "exp",
            reason: "is missing; a JWT-SVID must expire".into(),
        });
    };
    if exp <= now {
        return Err(JwtError::Expired {
            exp,
            ago: now.saturating_sub(exp),
        });
    }
    for claim in ["nbf", "iat"] {
        if let Some(at) = numeric(&claims, claim)?
            && at > now.saturating_add(LEEWAY_SECONDS)
        {
            return Err(JwtError::NotYetValid {
                claim,
                at,
                ahead: at.saturating_sub(now),
            });
        }
    }
    let audience_list = audiences(&claims)?;
    if !audience_list.iter().any(|a| a == audience) {
        return Err(JwtError::Audience {
            want: audience.escape_debug().to_string(),
            got: audience_list
                .iter()
                .map(|a| format!("`{}`", a.escape_debug()))
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    Ok(ValidJwt {
        id,
        audience: audience_list,
        expires: exp,
        claims,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use proptest::prelude::*;

    const NOW: i64 = 1_700_000_000;

    fn web() -> SpiffeId {
        SpiffeId::parse("spiffe://ibac.local/ns/shop/workload/web").unwrap()
    }

    fn aud(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    fn setup() -> (JwtKey, JwtBundle) {
        let key = JwtKey::generate().unwrap();
        let bundle = JwtBundle::new(TrustDomain::default(), vec![key.public().clone()]);
        (key, bundle)
    }

    fn forge(header: &str, claims: &str, signature: &[u8]) -> String {
        format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(claims),
            URL_SAFE_NO_PAD.encode(signature)
        )
    }

    #[test]
    fn a_signed_token_validates_for_each_of_its_audiences() {
        let (key, bundle) = setup();
        let token = key
            .sign(&web(), &aud(&["api", "db"]), NOW, DEFAULT_JWT_TTL)
            .unwrap();
        for a in ["api", "db"] {
            let valid = validate(&token, &bundle, a, NOW + 10).unwrap();
            assert_eq!(valid.id, web());
            assert_eq!(valid.audience, aud(&["api", "db"]));
            assert_eq!(valid.expires, NOW + 300);
            assert_eq!(valid.claims["sub"], web().as_str());
        }
        let header: Value = serde_json::from_slice(
            &URL_SAFE_NO_PAD
                .decode(token.split('.').next().unwrap())
                .unwrap(),
        )
        .unwrap();
        assert_eq!(header["alg"], "ES256");
        assert_eq!(header["kid"], key.public().kid());
    }

    #[test]
    fn expired_not_yet_valid_and_wrong_audience_are_refused() {
        let (key, bundle) = setup();
        let token = key
            .sign(&web(), &aud(&["api"]), NOW, DEFAULT_JWT_TTL)
            .unwrap();
        let err = validate(&token, &bundle, "api", NOW + 300).unwrap_err();
        assert!(matches!(err, JwtError::Expired { ago: 0, .. }), "{err}");
        assert!(err.to_string().starts_with("the token expired"), "{err}");
        let err = validate(&token, &bundle, "api", NOW - 31).unwrap_err();
        assert!(
            matches!(err, JwtError::NotYetValid { claim: "iat", .. }),
            "{err}"
        );
        let err = validate(&token, &bundle, "db", NOW).unwrap_err();
        assert_eq!(err.to_string(), "the token is for `api`, not for `db`");
    }

    #[test]
    fn alg_none_and_other_algorithms_are_refused() {
        let (_, bundle) = setup();
        let claims = format!(r#"{{"sub":"{}","aud":"api","exp":{}}}"#, web(), NOW + 60);
        for (alg, unsigned) in [
            ("none", true),
            ("NONE", true),
            ("HS256", false),
            ("RS256", false),
        ] {
            let token = forge(&format!(r#"{{"alg":"{alg}","kid":"k"}}"#), &claims, b"");
            let err = validate(&token, &bundle, "api", NOW).unwrap_err();
            assert_eq!(matches!(err, JwtError::Unsigned), unsigned, "{alg}: {err}");
            assert!(
                matches!(err, JwtError::Unsigned | JwtError::Algorithm(_)),
                "{err}"
            );
        }
        let token = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#),
            URL_SAFE_NO_PAD.encode(&claims)
        );
        assert_eq!(
            validate(&token, &bundle, "api", NOW)
                .unwrap_err()
                .to_string(),
            "the token is unsigned (`alg: none`); a JWT-SVID must be signed"
        );
    }

    #[test]
    fn foreign_trust_domains_unknown_keys_and_bad_signatures_are_refused() {
        let (key, bundle) = setup();
        let other = SpiffeId::parse("spiffe://elsewhere.test/ns/shop/workload/web").unwrap();
        let token = key
            .sign(&other, &aud(&["api"]), NOW, DEFAULT_JWT_TTL)
            .unwrap();
        let err = validate(&token, &bundle, "api", NOW).unwrap_err();
        assert!(matches!(err, JwtError::ForeignTrustDomain { .. }), "{err}");

        let (stranger, _) = setup();
        let token = stranger
            .sign(&web(), &aud(&["api"]), NOW, DEFAULT_JWT_TTL)
            .unwrap();
        let err = validate(&token, &bundle, "api", NOW).unwrap_err();
        assert!(matches!(err, JwtError::UnknownKey { .. }), "{err}");

        // The stranger's signature under our key id.
        let mut claims = Map::new();
        claims.insert("sub".into(), web().as_str().into());
        claims.insert("aud".into(), "api".into());
        claims.insert("exp".into(), (NOW + 60).into());
        let theirs = stranger.sign_claims(&claims).unwrap();
        let ours = key.sign_claims(&claims).unwrap();
        let spliced = format!(
            "{}.{}",
            ours.rsplit_once('.').unwrap().0,
            theirs.rsplit_once('.').unwrap().1
        );
        let err = validate(&spliced, &bundle, "api", NOW).unwrap_err();
        assert_eq!(err, JwtError::Signature(key.public().kid().into()));

        // A changed payload under a genuine signature.
        let (head, rest) = ours.split_once('.').unwrap();
        let sig = rest.rsplit_once('.').unwrap().1;
        claims.insert("aud".into(), "db".into());
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap());
        let tampered = format!("{head}.{payload}.{sig}");
        assert!(matches!(
            validate(&tampered, &bundle, "db", NOW),
            Err(JwtError::Signature(_))
        ));
    }

    #[test]
    fn required_claims_and_strict_headers() {
        let (key, bundle) = setup();
        let sign = |claims: Value| {
            let Value::Object(map) = claims else { panic!() };
            key.sign_claims(&map).unwrap()
        };
        let cases = [
            (
                serde_json::json!({"aud": "api", "exp": NOW + 60}),
                "claim `sub` is missing",
            ),
            (
                serde_json::json!({"sub": web().as_str(), "exp": NOW + 60}),
                "claim `aud` is missing",
            ),
            (
                serde_json::json!({"sub": web().as_str(), "aud": [], "exp": NOW + 60}),
                "claim `aud` is missing",
            ),
            (
                serde_json::json!({"sub": web().as_str(), "aud": "api"}),
                "claim `exp` is missing",
            ),
            (
                serde_json::json!({"sub": web().as_str(), "aud": "api", "exp": "soon"}),
                "claim `exp` is not a number",
            ),
            (
                serde_json::json!({"sub": "web", "aud": "api", "exp": NOW + 60}),
                "`sub` `web` is not a SPIFFE ID",
            ),
            (
                serde_json::json!({"sub": web().as_str(), "aud": "api", "exp": NOW + 60, "nbf": NOW + 120}),
                "the token is not valid yet (nbf",
            ),
        ];
        for (claims, message) in cases {
            let err = validate(&sign(claims), &bundle, "api", NOW).unwrap_err();
            assert!(err.to_string().starts_with(message), "{err} vs {message}");
        }
        let claims = format!(r#"{{"sub":"{}","aud":"api","exp":{}}}"#, web(), NOW + 60);
        for (header, message) in [
            (r#"{"alg":"ES256"}"#.to_string(), "`kid` is missing"),
            (
                format!(
                    r#"{{"alg":"ES256","kid":"{}","crit":["b64"]}}"#,
                    key.public().kid()
                ),
                "field `crit`",
            ),
            (
                format!(
                    r#"{{"alg":"ES256","kid":"{}","jku":"https://x"}}"#,
                    key.public().kid()
                ),
                "field `jku`",
            ),
            (
                format!(
                    r#"{{"alg":"ES256","kid":"{}","typ":"at+jwt"}}"#,
                    key.public().kid()
                ),
                "`typ`",
            ),
            (
                "[1]".to_string(),
                "the token is not a signed JWT in compact form: the header is not a JSON object",
            ),
        ] {
            let err =
                validate(&forge(&header, &claims, &[0; 64]), &bundle, "api", NOW).unwrap_err();
            assert!(err.to_string().contains(message), "{err} vs {message}");
        }
        for bad in ["", "a.b", "a.b.c.d", "!!.e30.e30", "e30=.e30.e30"] {
            assert!(
                matches!(
                    validate(bad, &bundle, "api", NOW),
                    Err(JwtError::Malformed(_))
                ),
                "{bad}"
            );
        }
        let long = "a".repeat(MAX_TOKEN_LEN + 1);
        assert_eq!(
            validate(&long, &bundle, "api", NOW),
            Err(JwtError::TooLong(MAX_TOKEN_LEN + 1))
        );
    }

    #[test]
    fn audiences_asked_for_are_checked() {
        let (key, _) = setup();
        assert!(key.sign(&web(), &[], NOW, DEFAULT_JWT_TTL).is_err());
        assert!(key.sign(&web(), &aud(&[""]), NOW, DEFAULT_JWT_TTL).is_err());
        assert!(
            key.sign(&web(), &aud(&["a\nb"]), NOW, DEFAULT_JWT_TTL)
                .is_err()
        );
        let many: Vec<String> = (0..=MAX_AUDIENCES).map(|i| i.to_string()).collect();
        assert!(key.sign(&web(), &many, NOW, DEFAULT_JWT_TTL).is_err());
    }

    #[test]
    fn bundles_round_trip_as_jwks_with_use_jwt_svid() {
        let (key, bundle) = setup();
        let (second, _) = setup();
        let bundle = JwtBundle::new(
            bundle.trust_domain().clone(),
            vec![key.public().clone(), second.public().clone()],
        );
        let json: Value = serde_json::from_slice(&bundle.to_jwks()).unwrap();
        assert_eq!(json["keys"][0]["use"], "jwt-svid");
        assert_eq!(json["keys"][0]["kty"], "EC");
        assert_eq!(json["keys"][0]["crv"], "P-256");
        assert_eq!(json["keys"][0]["kid"], key.public().kid());
        let back = JwtBundle::from_jwks(TrustDomain::default(), &bundle.to_jwks()).unwrap();
        assert_eq!(back, bundle);
        // A key for X.509 in a SPIFFE bundle is not a JWT key.
        let mixed = br#"{"keys":[{"kty":"EC","use":"x509-svid","x5c":["AA"]}]}"#;
        assert!(
            JwtBundle::from_jwks(TrustDomain::default(), mixed)
                .unwrap()
                .keys()
                .is_empty()
        );
        let bad = br#"{"keys":[{"kty":"RSA","kid":"r","use":"jwt-svid"}]}"#;
        assert!(JwtBundle::from_jwks(TrustDomain::default(), bad).is_err());
        // The key survives its PKCS#8 form.
        let again = JwtKey::from_pkcs8(key.pkcs8()).unwrap();
        assert_eq!(again.public(), key.public());
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, .. ProptestConfig::default() })]

        /// Hostile input never panics and is refused quickly, whatever its shape.
        #[test]
        fn hostile_tokens_are_refused(
            token in prop_oneof![
                ".{0,300}",
                "[A-Za-z0-9_-]{0,200}\\.[A-Za-z0-9_-]{0,200}\\.[A-Za-z0-9_-]{0,100}",
                ".{0,20000}",
            ]
        ) {
            let (_, bundle) = setup_shared();
            let started = std::time::Instant::now();
            prop_assert!(validate(&token, bundle, "api", NOW).is_err());
            prop_assert!(started.elapsed() < std::time::Duration::from_secs(1));
        }

        /// JSON headers and payloads of any shape, well encoded, are refused
        /// without a valid signature.
        #[test]
        fn hostile_json_is_refused(
            header in json_value(),
            claims in json_value(),
            signature in proptest::collection::vec(any::<u8>(), 0..80),
        ) {
            let (_, bundle) = setup_shared();
            let token = forge(&header.to_string(), &claims.to_string(), &signature);
            prop_assert!(validate(&token, bundle, "api", NOW).is_err());
        }

        /// Any bit flipped in a genuine token makes it invalid.
        #[test]
        fn flipped_bytes_are_refused(at in any::<prop::sample::Index>(), bit in 0u8..8) {
            let (key, bundle) = setup_shared();
            let token = key.sign(&web(), &aud(&["api"]), NOW, DEFAULT_JWT_TTL).unwrap();
            let mut bytes = token.into_bytes();
            let i = at.index(bytes.len());
            bytes[i] ^= 1 << bit;
            if let Ok(text) = String::from_utf8(bytes) {
                prop_assert!(validate(&text, bundle, "api", NOW).is_err());
            }
        }
    }

    fn setup_shared() -> &'static (JwtKey, JwtBundle) {
        static SHARED: std::sync::OnceLock<(JwtKey, JwtBundle)> = std::sync::OnceLock::new();
        SHARED.get_or_init(setup)
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>()
                .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
            prop_oneof![
                Just("ES256".to_string()),
                Just("none".to_string()),
                Just("spiffe://ibac.local/ns/shop/workload/web".to_string()),
                ".{0,20}",
            ]
            .prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
                proptest::collection::btree_map(
                    prop_oneof![
                        Just("alg".to_string()),
                        Just("kid".to_string()),
                        Just("sub".to_string()),
                        Just("aud".to_string()),
                        Just("exp".to_string()),
                        "[a-z]{1,4}",
                    ],
                    inner,
                    0..6
                )
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }
}
